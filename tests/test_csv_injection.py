"""CSV injection: request names and errors that a spreadsheet would run as formulas are written as text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from conftest import run_lrun

NAMES = ['=HYPERLINK("http://127.0.0.1/x","y")', "+1+2", "-3+4", "@SUM(A1)", "\tTAB", "\rCR", "plain"]


def test_formula_names_are_neutralised_in_every_csv_file_with_locust_columns(tmp_path: Path, demo_url: str) -> None:
    steps = "".join(f"      - get: /missing\n        name: {json.dumps(name)}\n" for name in NAMES)
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"name: cells\nhost: {demo_url}\nusers:\n  u:\n    sequence:\n{steps}")
    prefix = tmp_path / "out"
    done = run_lrun(
        str(scenario), "-i", "2", "--csv", str(prefix), "--csv-full-history", "--json", f"{prefix}.json",
        "--only-summary",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr  # 404s
    results = json.loads(Path(f"{prefix}.json").read_text())
    assert sorted(e["name"] for e in results["requests"]) == sorted(NAMES)  # the results keep the names as given
    expected = {name if name == "plain" else "'" + name for name in NAMES}
    for kind, column in (("stats", "Name"), ("failures", "Name"), ("stats_history", "Name")):
        with open(f"{prefix}_{kind}.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        names = {row[column] for row in rows} - {"Aggregated", ""}
        assert names == expected, (kind, names)
        for row in rows:  # no cell of any row starts as a formula
            assert not any(str(v).startswith(("=", "+", "-", "@", "\t", "\r")) for v in row.values()), row
    with open(f"{prefix}_stats.csv", newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header[:4] == ["Type", "Name", "Request Count", "Failure Count"]  # Locust's columns, unchanged

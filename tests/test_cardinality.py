"""Request names are capped: a templated URL in Python code must not grow the statistics (and every output
fed by them) without bound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_lrun
from runner.stats import OTHER_NAME, RequestStats


def test_names_beyond_the_cap_are_folded_and_the_worst_pattern_is_named() -> None:
    stats = RequestStats(max_names=10)
    stats.log("GET", "/", 1.0, 10, None)
    for i in range(50):
        stats.log("GET", f"/items/{i}", 2.0, 10, None)
    assert len(stats.entries) == 11  # ten names, and the one for the rest
    other = stats.entries[("GET", OTHER_NAME)]
    assert other.num_requests == 41
    assert stats.total.num_requests == 51  # nothing is lost
    assert stats.capped is not None
    assert "GET /items/[id]" in stats.capped and "9 names" in stats.capped


def test_a_merged_delta_is_capped_too() -> None:
    worker, master = RequestStats(), RequestStats(max_names=5)
    for i in range(20):
        worker.log("GET", f"/u/{i}", 1.0, 1, None)
    master.merge(worker.delta())
    assert len(master.entries) == 6
    assert master.total.num_requests == 20


@pytest.mark.parametrize("mode", [[], ["--processes", "1"]], ids=["local", "worker"])
def test_a_run_with_a_name_per_value_warns_once_and_stays_bounded(
    tmp_path: Path, demo_url: str, mode: list[str]
) -> None:
    (tmp_path / "many.py").write_text(
        "import itertools\n"
        "_n = itertools.count()\n"
        "def fetch(user):\n"
        "    for _ in range(20):\n"
        "        user.client.get(f'/items/{next(_n) % 10 + 1}?page={next(_n)}')\n"
    )
    (tmp_path / "s.yaml").write_text(
        f"name: many\nhost: {demo_url}\npython: many.py\nusers:\n  u:\n    sequence:\n      - call: fetch\n"
    )
    out = tmp_path / "r.json"
    done = run_lrun(str(tmp_path / "s.yaml"), "-u", "2", "-i", "40", "--json", str(out), "--only-summary", *mode)
    assert done.returncode == 0, done.stderr
    results = json.loads(out.read_text())
    names = [r["name"] for r in results["requests"]]
    assert len(names) <= 1001 and OTHER_NAME in names
    assert results["total"]["requests"] == 1600
    said = [w for w in results["warnings"] if "more than 1000 request names" in w]
    assert len(said) == 1 and "/items/[id]?page=[id]" in said[0]
    # said once on stderr: by the master, also when a local worker hit it (the worker logs errors only)
    assert done.stderr.count("more than 1000 request names") == 1

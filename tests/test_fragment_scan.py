"""Deciding whether a scenario is a fragment reads no unrelated sibling in full: fast beside big files and YAML
alias bombs, and still right about the files that do include it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import run_lrun


def _crowd(folder: Path) -> None:
    rows = [{"t": i, "name": f"/items/{i}", "values": list(range(20))} for i in range(170_000)]
    (folder / "big.json").write_text(json.dumps({"rows": rows}))  # ~20 MB
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)
    )
    for i in range(20):
        (folder / f"bomb{i}.yaml").write_text(bomb)


def test_a_broken_scenario_beside_big_files_and_alias_bombs_is_refused_fast(tmp_path: Path) -> None:
    _crowd(tmp_path)
    assert (tmp_path / "big.json").stat().st_size > 15_000_000
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nhost: http://127.0.0.1:1\nusers:\n  u:\n    sequence:\n      - gett: /\n")
    started = time.monotonic()
    done = run_lrun("validate", str(broken), timeout=120)
    took = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    assert "broken.yaml:6:9: not a step" in done.stderr and "Traceback" not in done.stderr
    assert took < 15, f"{took:.1f} s"  # the old code parsed every sibling: about a minute


def test_a_fragment_is_still_found_among_them(tmp_path: Path) -> None:
    _crowd(tmp_path)
    (tmp_path / "pools.yaml").write_text("pools:\n  p: {rows: [{a: 1}]}\n")
    (tmp_path / "main.yaml").write_text(
        "include: [./pools.yaml]\nname: m\nhost: http://127.0.0.1:1\nusers:\n  u:\n    sequence:\n      - get: /\n"
    )
    started = time.monotonic()
    done = run_lrun("validate", str(tmp_path / "pools.yaml"), timeout=120)
    assert time.monotonic() - started < 15
    assert "a fragment, included by" in done.stdout + done.stderr and "main.yaml" in done.stdout + done.stderr

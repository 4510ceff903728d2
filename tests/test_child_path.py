"""Child processes (the demo target, ``--processes`` workers) start with an isolated path: a file in the current
directory named like a module (the project's own ``scenarios/xmlrpc.py``) cannot shadow it."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ROOT, run_lrun


def test_the_quickstart_runs_from_inside_scenarios(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = run_lrun("quickstart.yaml", "-t", "2", "--json", str(out), "--only-summary", cwd=ROOT / "scenarios")
    assert "Traceback" not in done.stderr and "cannot start" not in done.stderr, done.stderr
    assert json.loads(out.read_text())["total"]["requests"] > 0  # the demo target (it imports xmlrpc) served them


def test_workers_ignore_modules_of_the_current_directory(tmp_path: Path, demo_url: str) -> None:
    for name in ("msgpack", "zmq", "xmlrpc"):  # what a worker and the demo import
        (tmp_path / f"{name}.py").write_text("raise SystemExit('shadowed: the current directory was on sys.path')\n")
    (tmp_path / "s.yaml").write_text(
        f"name: w\nhost: {demo_url}\nusers:\n  u:\n    think: 50ms\n    sequence:\n      - get: /\n"
    )
    out = tmp_path / "r.json"
    done = run_lrun("s.yaml", "-t", "3", "--processes", "1", "--json", str(out), "--only-summary", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "shadowed" not in done.stderr
    assert json.loads(out.read_text())["total"]["requests"] > 0

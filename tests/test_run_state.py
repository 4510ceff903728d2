"""A run owns its state: the compiled scenario and the settings come out of a run as they went in, and a second
run of the same compiled scenario in the same process starts with fresh checkpoint counts and setup variables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from runner.stats.checks import CheckStats

PROGRAM = """
from gevent import monkey

monkey.patch_all()

import copy, dataclasses, io, json, sys

import runner
from runner.compiler import CompileOptions, compile_scenario
from runner.run import run_local

scenario = runner.load(sys.argv[1])
settings = runner.settings(scenario, host=sys.argv[2], users=2, spawn_rate=10, iterations=3, only_summary=True)
compiled = compile_scenario(scenario, CompileOptions(host=sys.argv[2]))
classes = [c for c in (compiled.setup, *compiled.user_classes) if c is not None]
before = (copy.copy(vars(settings)), dataclasses.astuple(compiled), [dict(vars(c)) for c in classes])
runs = []
for _ in range(2):
    events = runner.Events()
    urls = set()
    events.request.add_listener(lambda user, result: urls.add(result.url.split("?", 1)[1]))
    stopped = []
    events.stop.add_listener(stopped.append)
    code = run_local(scenario, compiled, settings, command="test", out=io.StringIO(), events=events)
    runs.append({"code": code, "checks": stopped[0]["checks"], "queries": sorted(urls)})
after = (copy.copy(vars(settings)), dataclasses.astuple(compiled), [dict(vars(c)) for c in classes])
print(json.dumps({"runs": runs, "unchanged": before == after}))
"""

SCENARIO = """
setup:
  - set: {marks: "{{ marks | default('') }}x"}
users:
  u:
    sequence:
      - get: /items?marks={{ marks }}
        check: [{status: 200}, {status: 404}]
"""


def test_a_second_run_of_one_compiled_scenario_starts_fresh(demo_url: str, tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SCENARIO)
    (tmp_path / "program.py").write_text(PROGRAM)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "program.py"), str(tmp_path / "s.yaml"), demo_url],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    first, second = out["runs"]
    # 2 users x 3 iterations; the first checkpoint passes, the second fails (and, not tracing, stops the list)
    expected = [
        {"method": "GET", "name": "/items?marks={{ marks }}", "check": check, "passed": passed, "failed": failed}
        for check, passed, failed in (("status is 200", 6, 0), ("status is 404", 0, 6))
    ]
    assert first["checks"] == expected, first
    assert second["checks"] == expected, second  # not 12: the counts are the run's, not the scenario's
    assert first["queries"] == second["queries"] == ["marks=x"]  # the setup saw no variable of the first run
    assert out["unchanged"], "a run changed the compiled scenario, its user classes or the settings"


def test_check_stats_send_deltas_and_merge_them() -> None:
    worker = CheckStats([("GET", "/a", "status == 200"), ("GET", "/b", "status == 200")])
    worker.counts[0][0] += 3
    worker.counts[1][1] += 1
    master = CheckStats([("GET", "/a", "status == 200")])
    master.counts[0][1] += 2  # the master's own (setup, teardown) verdicts
    master.merge(worker.deltas())
    assert worker.deltas() == []  # sent once
    worker.counts[0][0] += 1
    master.merge(worker.deltas())
    assert master.results() == [
        {"method": "GET", "name": "/a", "check": "status == 200", "passed": 4, "failed": 2},
        {"method": "GET", "name": "/b", "check": "status == 200", "passed": 0, "failed": 1},
    ]


def test_settings_are_frozen() -> None:
    import dataclasses

    import pytest

    from runner.config import resolve

    settings = resolve({"users": 3})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.run_time = 5.0  # type: ignore[misc]
    assert (settings.users, settings.sources["users"]) == (3, "command line")

"""A run owns its state: the compiled scenario and the settings come out of a run as they went in, and a second
run of the same compiled scenario in the same process starts with fresh checkpoint counts, setup variables, data
pools' rows and rendezvous gates."""

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
from runner.compile.compiler import CompileOptions, compile_scenario
from runner.drive import run_local

scenario = runner.load(sys.argv[1])
settings = runner.settings(scenario, host=sys.argv[2], users=2, spawn_rate=10, iterations=3, only_summary=True)
compiled = compile_scenario(scenario, CompileOptions(host=sys.argv[2]))
classes = compiled.all_classes()


def snapshot():
    fields = {f.name: copy.copy(getattr(compiled, f.name)) for f in dataclasses.fields(compiled)}
    pools = {name: dict(vars(pool)) for name, pool in compiled.pools.items()}
    return copy.copy(vars(settings)), fields, pools, [dict(vars(c)) for c in classes]


before = snapshot()
runs = []
for _ in range(2):
    events = runner.Events()
    urls = set()
    events.request.add_listener(lambda user, result: urls.add(result.url.split("?", 1)[1]))
    stopped = []
    events.stop.add_listener(lambda results: stopped.append(results.to_dict()))
    code = run_local(scenario, compiled, settings, command="test", out=io.StringIO(), events=events)
    results = stopped[0]
    runs.append({
        "code": code,
        "checks": results["checks"],
        "queries": sorted(urls),
        "pools": [(p["name"], p["handed_out"], p["dry"]) for p in results["pools"]],
        "rendezvous": [(r["arrivals"], [x["released"] for x in r["releases"]]) for r in results["rendezvous"]],
    })
print(json.dumps({"runs": runs, "unchanged": before == snapshot()}))
"""

SCENARIO = """
setup:
  - set: {marks: "{{ marks | default('') }}x"}
pools:
  ids: {rows: [1, 2], order: unique, update: once}  # two users hold one row each; a third would be stopped
users:
  u:
    sequence:
      - rendezvous: together
        users: 2
        timeout: 30s
      - get: /items?marks={{ marks }}
        check: [{status: 200}, {status: 404}]
      - get: /about?id={{ ids.value }}
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
    items, about = "/items?marks={{ marks }}", "/about?id={{ ids.value }}"
    expected = [
        {"method": "GET", "name": name, "check": check, "passed": passed, "failed": failed}
        for name, check, passed, failed in (
            (items, "status is 200", 6, 0),
            (items, "status is 404", 0, 6),
            (about, "status < 400", 6, 0),  # the default checkpoint of a request without one
        )
    ]
    assert first["checks"] == expected, first
    assert second["checks"] == expected, second  # not 12: the counts are the run's, not the scenario's
    assert first["queries"] == second["queries"] == ["id=1", "id=2", "marks=x"]  # the setup saw no variable of
    # the first run, and the unique pool handed out its two rows again
    assert first["pools"] == second["pools"] == [["ids", 2, False]]
    assert first["rendezvous"] == second["rendezvous"] == [[6, [2, 2, 2]]]  # a fresh gate: not 12 arrivals
    assert first["code"] == second["code"] == 1  # the failing checkpoint
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
    assert [c.model_dump() for c in master.results()] == [
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


UNIT = """
host: http://127.0.0.1:9
pools:
  ids: {rows: [1, 2, 3, 4], update: each_iteration, when_empty: stop_user}
users:
  u:
    sequence:
      - set: {seen: "{{ ids.value }}"}
      - rendezvous: pair
        users: 2
        timeout: 10s
"""


def test_runs_keep_pools_and_gates_in_their_state_and_never_change_the_compiled_scenario(tmp_path: Path) -> None:
    """Two tests of one compiled scenario in this process (no request made): each starts at the pool's first row
    with a closed gate of its own, and the compiled pools, rendezvous and user classes stay as compiled."""
    import copy
    import dataclasses

    import pytest

    from runner.compile.compiler import compile_scenario
    from runner.engine.runner import LocalRunner
    from runner.scenario import load_scenario
    from runner.stats import RequestStats

    (tmp_path / "s.yaml").write_text(UNIT)
    compiled = compile_scenario(load_scenario(tmp_path / "s.yaml"))

    def snapshot() -> tuple:
        pools = {name: (dict(vars(pool)), copy.deepcopy(vars(pool.data))) for name, pool in compiled.pools.items()}
        return dict(compiled.rendezvous), pools, [dict(vars(c)) for c in compiled.all_classes()]

    before = snapshot()
    states = []
    for _ in range(2):
        state = compiled.fresh_state()
        runner = LocalRunner(compiled.user_classes, RequestStats(), iterations=2, run_state=state)
        for point in state.points.values():
            point.enabled = True
            point.population = lambda: (2, 2)
        runner.start(2, 100.0, None)
        assert runner.wait(20), "the users did not finish their two iterations"
        states.append(state)
    first, second = states
    assert first.points["pair"] is not second.points["pair"] and first.pools["ids"] is not second.pools["ids"]
    for state in states:
        (point,) = compiled.rendezvous_results(state)
        assert (point.arrivals, [r.released for r in point.releases]) == (4, [2, 2])
        # 2 users x 2 iterations: the four rows, in each test (a shared source would have run dry in the second)
        assert [(p.handed_out, p.dry) for p in compiled.pool_results(state)] == [(4, False)]
    assert snapshot() == before, "a run changed the compiled pools, rendezvous or user classes"
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.rendezvous["pair"].value = 1  # type: ignore[misc]


def test_the_web_ui_runs_the_next_test_afresh_without_compiling_again(tmp_path: Path) -> None:
    """Two tests of a web UI session in this process: the user classes are compiled once (the form's weights
    ride on subclasses), and each test's pools and gates are its own."""
    import io

    from runner.config import resolve
    from runner.scenario import load_scenario
    from runner.web.control import Controller, LocalBackend

    (tmp_path / "s.yaml").write_text(UNIT)
    loaded = load_scenario(tmp_path / "s.yaml")
    settings = resolve({"users": 2, "spawn_rate": 100, "iterations": 2, "only_summary": True})
    controller = Controller(loaded, settings, LocalBackend(loaded), command="test", demo_url=None, out=io.StringIO())
    runs = []
    for form in (None, {"user_count": "2", "spawn_rate": "100", "weight.u": "3"}):
        run = controller.start(form)
        controller.wait(60)
        results = controller.results(run)  # a finished test's results are packed: read back as on download
        assert results is not None and run.packed, run.error
        runs.append((run, results))
    (first, _), (second, _) = runs
    (compiled_class,) = first.compiled.user_classes
    (weighted,) = second.compiled.user_classes
    assert issubclass(weighted, compiled_class) and (weighted.weight, compiled_class.weight) == (3, 1)
    for _, results in runs:
        (pool,) = results.pools or []
        assert (pool.handed_out, pool.dry) == (4, False)  # 2 users x 2 iterations, from the first row again
        (point,) = results.rendezvous or []
        assert point.arrivals == 4

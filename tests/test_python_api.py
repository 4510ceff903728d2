"""The Python API (runner.api) and any protocol from Python (user.measure / user.report).

The API runs in a process patched for gevent, so it is run as a real program (examples/python_api.py) against
the demo target; the timing of calls is tested on real users in-process, and end to end with XML-RPC.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
import xmlrpc.client
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, run_lrun
from runner.compile.compiler import CompileOptions, compile_scenario
from runner.engine.calls import RequestResult
from runner.scenario import load_scenario


def demo(url: str, path: str, method: str = "GET") -> Any:
    with urllib.request.urlopen(urllib.request.Request(url + path, method=method), timeout=10) as response:
        return json.load(response)


def test_the_example_counts_what_the_demo_target_served(demo_url: str) -> None:
    demo(demo_url, "/__reset", "POST")
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python_api.py"), demo_url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    total = int(lines[-1])
    served = demo(demo_url, "/__stats")["requests"]
    assert total > 10 and total == served, done.stdout
    assert "users spawned: [5]" in lines
    assert f"request listener: {total} requests, 0 failed" in lines  # every request reached the listener
    assert "stopped: run time reached" in lines
    assert "Traceback" not in done.stderr


def test_the_api_says_what_it_needs_from_its_process(tmp_path: Path) -> None:
    import runner

    scenario = runner.load(ROOT / "scenarios" / "quickstart.yaml")
    settings = runner.settings(scenario, users=2, run_time="1s")
    assert (settings.users, settings.run_time, settings.spawn_rate) == (2, 1.0, 10.0)  # spawn rate: the scenario's
    with pytest.raises(runner.RunError, match=r"monkey\.patch_all\(\)"):  # pytest's process is not patched
        runner.run(scenario, settings)
    with pytest.raises(runner.LrunError, match="--users"):
        runner.settings(scenario, users="many")
    (tmp_path / "bad.yaml").write_text("users: {u: {sequence: [{get: /, chek: {status: 200}}]}}\n")
    with pytest.raises(runner.ScenarioError, match=r"bad\.yaml:1:\d+: .*chek"):
        runner.load(tmp_path / "bad.yaml")


class Recorder:
    """A runtime that keeps every reported result and transaction."""

    trace = False
    think = False

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.transactions: list[tuple[str, str | None]] = []

    def on_request(self, user: Any, result: Any) -> None:
        self.results.append(result)

    def on_response(self, user: Any, method: str, name: str, response: Any, failure: str | None) -> None:
        self.results.append(RequestResult.of(method, name, response, failure))

    def on_think(self, user: Any, seconds: float) -> None:
        pass

    def on_warning(self, user: Any, message: str) -> None:
        pass

    def on_error(self, user: Any, error: BaseException) -> None:
        raise AssertionError(f"unexpected error: {error}")

    def on_transaction(self, user: Any, transaction: Any, failure: str | None) -> None:
        self.transactions.append((transaction.name, failure))


MODULE = """
import time

from runner.engine.flow import StopUser

def timed(user):
    with user.measure("grpc", "Quote") as call:
        time.sleep(0.02)
        call.size = 7

def refused(user):
    with user.measure("sql", "select"):
        raise ConnectionRefusedError("no database")
    user.vars["after"] = "went on"

def wrong(user):
    with user.measure("sql", "insert") as call:
        call.fail("0 rows inserted")

def reported(user):
    user.report("queue", "publish", 12.5, size=3, failure=None)

def stops(user):
    with user.measure("ws", "send"):
        raise StopUser("done")
"""


def test_measure_reports_any_call_under_its_own_method(tmp_path: Path) -> None:
    (tmp_path / "calls.py").write_text(MODULE)
    (tmp_path / "s.yaml").write_text(
        """
host: http://127.0.0.1:9
python: calls.py
users:
  u:
    sequence:
      - call: timed
      - transaction: write
        steps: [{call: refused}, {call: wrong}]
      - call: reported
      - call: stops
"""
    )
    (cls,) = compile_scenario(load_scenario(tmp_path / "s.yaml"), CompileOptions()).user_classes
    runtime = Recorder()
    user = cls(runtime, 1)
    user.run(iterations=1)
    got = [(r.method, r.name, r.size, r.failure) for r in runtime.results]
    assert got == [
        ("grpc", "Quote", 7, None),
        ("sql", "select", 0, "ConnectionRefusedError: no database"),  # the exception went no further
        ("sql", "insert", 0, "0 rows inserted"),
        ("queue", "publish", 3, None),
        ("ws", "send", 0, None),  # a flow signal is no failure; it still stops the user
    ]
    assert 20 <= runtime.results[0].elapsed_ms < 5000 and runtime.results[3].elapsed_ms == 12.5
    assert user.vars["after"] == "went on"
    assert runtime.transactions == [("write", "ConnectionRefusedError: no database")]
    assert user.done  # stopped by the signal raised inside the measured block


def test_the_demo_serves_xml_rpc(demo_url: str) -> None:
    demo(demo_url, "/__reset", "POST")
    proxy = xmlrpc.client.ServerProxy(f"{demo_url}/RPC2", allow_none=True)
    assert proxy.add(2, 3) == 5 and proxy.echo({"a": [1, None]}) == {"a": [1, None]}
    assert proxy.item(3)["name"] == "Green notebook"
    with pytest.raises(xmlrpc.client.Fault, match="no item 99"):
        proxy.item(99)
    assert {"add", "echo", "item", "system.listMethods"} <= set(proxy.system.listMethods())
    served = demo(demo_url, "/__stats")
    assert served["xmlrpc"] == {"calls": {"add": 1, "echo": 1, "item": 2}, "faults": {"item": 1}}
    assert served["by_path"]["POST /RPC2"] == 5


def test_xmlrpc_calls_are_counted_like_the_server_counts_them(demo_url: str, tmp_path: Path) -> None:
    demo(demo_url, "/__reset", "POST")
    out = tmp_path / "results.json"
    done = run_lrun(
        "scenarios/xmlrpc.yaml",
        "-H",
        demo_url,
        "-t",
        "3s",
        "--stop-timeout",
        "10s",
        "--only-summary",
        "--json",
        str(out),
    )  # users end their iteration: no call is cut off
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    entries = {(e["method"], e["name"]): e for e in results["requests"]}
    assert set(entries) == {("xmlrpc", "add"), ("xmlrpc", "item")}
    served = demo(demo_url, "/__stats")["xmlrpc"]
    for name in ("add", "item"):
        assert entries[("xmlrpc", name)]["requests"] == served["calls"][name] > 3
    assert entries[("xmlrpc", "add")]["failures"] == 0 == served["faults"].get("add", 0)
    assert entries[("xmlrpc", "item")]["failures"] == 0 == served["faults"].get("item", 0)  # ids 1..10 exist
    assert results["errors"] == []
    assert [t["passed"] for t in results["thresholds"]] == [True, True, True]


PROGRAM = """
from gevent import monkey

monkey.patch_all()

import io, json, sys

import runner

scenario = runner.load(sys.argv[1])
settings = runner.settings(scenario, host=sys.argv[2], users=4, spawn_rate=4, iterations=3, processes=2)
events = runner.Events()
seen = {"spawn": [], "stop": [], "requests": 0}
events.spawn.add_listener(seen["spawn"].append)
events.stop.add_listener(lambda results: seen["stop"].append(results.total.requests))
events.request.add_listener(lambda user, result: seen.__setitem__("requests", seen["requests"] + 1))
outcome = runner.run(scenario, settings, events=events, out=io.StringIO())
typed = outcome.typed
assert typed.total.requests == outcome.results["total"]["requests"]
print(json.dumps({"code": outcome.exit_code, "total": typed.total.requests, "workers": len(typed.workers or []),
                  "stop_code": typed.code.value, **seen}))
"""


def test_the_api_runs_with_local_workers(demo_url: str, tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("users:\n  u:\n    sequence: [{get: /items}, {get: /about}]\n")
    (tmp_path / "program.py").write_text(PROGRAM)
    demo(demo_url, "/__reset", "POST")
    done = subprocess.run(
        [sys.executable, str(tmp_path / "program.py"), str(tmp_path / "s.yaml"), demo_url],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    served = demo(demo_url, "/__stats")["by_path"]
    assert served == {"GET /items": 12, "GET /about": 12}  # 4 users x 3 iterations, made by the workers
    assert seen == {
        "code": 0,
        "total": 24,
        "workers": 2,
        "stop_code": "users_done",
        "spawn": [4],
        "stop": [24],
        "requests": 0,
    }


def test_runner_run_stays_the_api_function_whatever_was_imported_first() -> None:
    """``runner.run`` is the API's function: no submodule named ``run`` may replace it once imported (the web UI's
    modules imported ``runner.run`` the module, and ``runner.run(scenario, settings)`` became "'module' object is
    not callable" for the rest of the process)."""
    import importlib
    import pkgutil

    import runner
    import runner.web.control  # imports the run's driving module

    assert "run" not in {m.name for m in pkgutil.iter_modules(runner.__path__)}
    assert callable(runner.run) and runner.run is importlib.import_module("runner.api").run

"""Honest accounting of the load that actually ran (issue 23): requests in flight at the stop, arrivals that never
started, users that ended early, users actually running beside users asked, and a verdict that says so.

Real lrun processes against a real server on loopback that counts what it received and how many requests it held
at once; lrun's counts are compared with the server's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import figures, run_json, wait_until, write

from conftest import run_lrun
from runner.report.model import Results
from runner.report.shortfalls import load_warnings
from runner.thresholds import evaluate, parse_rule

# A gevent server: /slow/<seconds> answers after that long; /__stats says how many requests it received and the
# most it held at once; /__reset starts the counts anew.
COUNTING_SERVER = r"""
import json, time
import gevent
from gevent.pywsgi import WSGIServer

seen = {"count": 0, "active": 0, "peak": 0}

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/__stats":
        body = json.dumps(seen).encode()
    elif path == "/__reset":
        seen.update(count=0, peak=seen["active"])
        body = b"{}"
    else:
        seen["count"] += 1
        seen["active"] += 1
        seen["peak"] = max(seen["peak"], seen["active"])
        try:
            gevent.sleep(float(path.rsplit("/", 1)[-1]) if path.startswith("/slow/") else 0.0)
        finally:
            seen["active"] -= 1
        body = b"ok"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]

server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None)
server.start()
print(server.server_port, flush=True)
server.serve_forever()
"""


@pytest.fixture
def server() -> Iterator[str]:
    process = subprocess.Popen([sys.executable, "-c", COUNTING_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield f"http://127.0.0.1:{int(process.stdout.readline())}"
    finally:
        process.kill()
        process.wait(10)


def stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/__stats", timeout=10) as response:
        return json.loads(response.read())


def test_requests_in_flight_at_the_stop_are_counted(tmp_path: Path, server: str) -> None:
    """20 users on a 3 s endpoint, -t 5s: the second round of 20 is in flight at the stop. Before, lrun counted
    20 and said nothing while the server received 40; now completed + interrupted is what the server received."""
    scenario = write(tmp_path, f"host: {server}\nusers: {{u: {{think: 0, sequence: [{{get: /slow/3}}]}}}}\n")
    result, results = run_json(tmp_path, str(scenario), "-u", "20", "-r", "100", "-t", "5s")
    received = stats(server)["count"]
    cut = results["interrupted"]
    assert results["total"]["requests"] + cut["total"] == received, (results["total"], cut, received)
    assert cut["total"] >= 10, cut  # 20 in flight, but the machine is busy: at least half
    assert cut["requests"] == [{"method": "GET", "name": "/slow/3", "count": cut["total"]}]
    assert f"Interrupted: {cut['total']} requests were in flight" in result.stdout
    assert result.returncode == 0  # cutting requests at the stop is how a timed run ends, not a warning
    assert not results.get("load_warnings")


CAPPED = """host: {host}
load: {{arrival_rate: 32, run_time: 5s, max_users: 5}}
users: {{u: {{think: 0, sequence: [{{get: /slow/3}}]}}}}
"""


def test_capped_open_model_says_which_arrivals_never_started(tmp_path: Path, server: str) -> None:
    """160 arrivals planned, 5 slots held 3 s each: about 10 start. Before: "PASSED … exit code 0", no warning."""
    scenario = write(tmp_path, CAPPED.format(host=server))
    result, results = run_json(tmp_path, str(scenario))
    arrivals = results["arrivals"]
    assert arrivals["planned"] == 160
    assert 5 <= arrivals["started"] <= 15, arrivals
    assert arrivals["dropped"] == 160 - arrivals["started"]
    assert stats(server)["peak"] <= 5
    assert results["load_warnings"] == [
        {
            "kind": "arrivals_dropped",
            "message": f"{arrivals['dropped']} of 160 planned arrivals never started",
            "count": arrivals["dropped"],
        }
    ]
    verdict = result.stdout.strip().splitlines()[-1]
    assert verdict.startswith(f"PASSED with warnings: {arrivals['dropped']} of 160 planned arrivals never started")
    assert result.returncode == 0 and results["passed"]

    strict, results = run_json(tmp_path, str(scenario), "--strict")
    assert strict.returncode == 1 and not results["passed"] and results["exit_code"] == 1
    assert strict.stdout.strip().splitlines()[-1].startswith("FAILED with warnings:")


def test_a_threshold_gates_on_dropped_arrivals(tmp_path: Path, server: str) -> None:
    text = CAPPED.format(host=server).replace("run_time: 5s", "run_time: 4s")
    text += 'thresholds: [{expect: "arrivals_dropped < 1%"}]\n'
    result, results = run_json(tmp_path, str(write(tmp_path, text)))
    (verdict,) = results["thresholds"]
    assert not verdict["passed"] and verdict["actual"] > 0.5
    assert "never started" in verdict["detail"]
    assert result.returncode == 1


def test_dropped_arrivals_threshold_reads_the_arrivals() -> None:
    rule = parse_rule("arrivals_dropped < 1%")
    assert rule.limit == 0.01
    assert evaluate(rule, None, figures({"arrivals": {"planned": 200, "started": 199, "dropped": 1}}))["passed"]
    assert not evaluate(rule, None, figures({"arrivals": {"planned": 200, "started": 190, "dropped": 10}}))["passed"]
    closed = evaluate(rule, None, figures({"total": {"requests": 5}}))
    assert closed["passed"] is False and "open model" in closed["detail"]
    with pytest.raises(ValueError, match="percentage"):
        parse_rule("arrivals_dropped < 1")


def test_users_stopped_by_a_dry_pool_are_a_warning(tmp_path: Path, server: str) -> None:
    """3 unique rows, 5 users, stop_user: 2 users end at once while the test goes on; the server saw 3 at most."""
    text = f"""host: {server}
pools: {{ids: {{rows: [a, b, c], order: unique, update: once, when_empty: stop_user}}}}
users: {{u: {{think: 0, sequence: [{{get: "/slow/0.2?id={{{{ ids.value }}}}"}}]}}}}
"""
    result, results = run_json(tmp_path, str(write(tmp_path, text)), "-u", "5", "-r", "50", "-t", "3s")
    assert stats(server)["peak"] <= 3
    users = results["user_counts"]
    assert users["asked"] == 5 and users["ended_early"] == 2, users
    kinds = {w["kind"]: w for w in results["load_warnings"]}
    assert kinds["pool_users_stopped"]["count"] == 2 and "users_ended_early" not in kinds  # said once, with its cause
    assert "PASSED with warnings: 2 users stopped for lack of rows in data pool ids" in result.stdout
    assert result.returncode == 0
    from runner.report.html import render_html

    page = render_html(Results.model_validate(results))
    assert "peak users · of 5 asked" in page and "5 started in all, 2 ended early" in page


def test_verdict_and_warnings_come_back_from_a_saved_file(tmp_path: Path) -> None:
    """The warnings are read from the typed results: a part adds a kind there; ``lrun report`` sees the same."""
    base = {
        "lrun_version": "x",
        "scenario": "s",
        "start": "2024-01-01T00:00:00.000Z",
        "end": "2024-01-01T00:00:10.000Z",
        "duration_s": 10,
        "measured_s": 10,
        "total": {
            "method": "",
            "name": "Aggregated",
            "requests": 1,
            "failures": 0,
            "failure_ratio": 0,
            "rps": 0.1,
            "failures_per_s": 0,
        },
        "passed": True,
        "exit_code": 0,
        "stop_reason": "run time reached",
    }
    fine = Results.model_validate({**base, "user_counts": {"asked": 10, "peak": 10, "started": 10}})
    assert load_warnings(fine) == []
    short = Results.model_validate(
        {
            **base,
            "user_counts": {"asked": 12, "peak": 9},
            "workers": [{"id": "w1", "state": "running"}, {"id": "w2", "state": "missing"}],
            "pools": [
                {
                    "name": "p",
                    "source": "inline",
                    "rows": 3,
                    "order": "unique",
                    "update": "once",
                    "when_empty": "cycle",
                    "users_stopped": 4,
                }
            ],
        }
    )
    kinds = [(w.kind, w.count) for w in load_warnings(short)]
    assert kinds == [("users_short", 3), ("worker_lost", 1), ("pool_users_stopped", 4)]
    hot = Results.model_validate({**base, "saturation": {"saturated": True, "saturated_s": 4}})
    assert [w.kind for w in load_warnings(hot)] == ["generator_saturated"]
    stopped = Results.model_validate({**base, "stop_reason": "interrupted", "user_counts": {"asked": 12, "peak": 3}})
    assert load_warnings(stopped) == []  # Ctrl-C during the ramp: not a shortfall of the load


def test_short_lived_users_count_in_a_cluster(tmp_path: Path, server: str) -> None:
    """20 users of one 10 ms iteration over 2 worker processes live well under a heartbeat: the master heard of
    almost none (users_max 0 or 1). Each worker reports every user it started and its own peak."""
    text = f"host: {server}\nusers: {{u: {{think: 0, sequence: [{{get: /slow/0.01}}]}}}}\n"
    out = tmp_path / "r.json"
    args = ["run", str(write(tmp_path, text)), "-u", "20", "-r", "200", "-i", "1", "--processes", "2"]
    result = run_lrun(*args, "--json", str(out), "--only-summary", timeout=120)
    results = json.loads(out.read_text())
    assert results["total"]["requests"] == stats(server)["count"] == 20, result.stdout + result.stderr
    workers = results["workers"]
    assert sum(w["users_started"] for w in workers) == results["user_counts"]["started"] == 20
    assert results["users_max"] >= max(w["users_max"] for w in workers) >= 1
    assert not results.get("load_warnings"), results["load_warnings"]  # -i 1: users end by design


def test_users_running_in_a_cluster_match_what_the_server_held(tmp_path: Path, server: str) -> None:
    """10 users, a unique pool of 10 rows with cycle, --processes 2, no think time on a 0.5 s endpoint: every
    running user holds a request at the server. lrun said "12 at most (10 asked)" while the server held 5 to 9."""
    text = f"""host: {server}
pools: {{ids: {{rows: [a, b, c, d, e, f, g, h, i, j], order: unique, when_empty: cycle}}}}
users: {{u: {{think: 0, sequence: [{{get: "/slow/0.5?id={{{{ ids.value }}}}"}}]}}}}
"""
    out = tmp_path / "r.json"
    args = ["run", str(write(tmp_path, text)), "-u", "10", "-r", "100", "-t", "6s", "--processes", "2"]
    result = run_lrun(*args, "--json", str(out), "--only-summary", timeout=120)
    results = json.loads(out.read_text())
    held = stats(server)
    assert held["peak"] <= results["users_max"] <= held["peak"] + 1, (held, results["users_max"], result.stderr)
    assert max(point["users"] for point in results["series"]) <= results["users_max"]
    users = results["user_counts"]
    assert users["peak"] == results["users_max"] and users["asked"] == 10
    assert results["total"]["requests"] + results["interrupted"]["total"] == held["count"]
    if users["ended_early"]:  # users that gave up for lack of rows are said, not hidden behind PASSED
        assert "PASSED with warnings" in result.stdout and users["started"] - users["ended_early"] <= held["peak"]


DRY = """host: {host}
pools: {{ids: {{rows: [a, b, c], order: unique, update: once, when_empty: stop_user}}}}
users: {{u: {{think: 0, sequence: [{{get: "/slow/0.2?id={{{{ ids.value }}}}"}}]}}}}
"""


def test_the_web_ui_history_says_what_ran(tmp_path: Path, server: str) -> None:
    """A History row said the users asked; it now says how many ran of them, and why the load fell short."""
    from web_process import WebLrun, http, wait_for

    with WebLrun(str(write(tmp_path, DRY.format(host=server)))) as web:
        form = {"user_count": 5, "spawn_rate": 50, "run_time": "3s"}
        assert http(f"{web.url}/swarm", method="POST", data=form).status == 200
        wait_for(lambda: http(f"{web.url}/api/state").json()["snapshot"]["state"] == "stopped", timeout=60)
        snapshot = http(f"{web.url}/api/state").json()["snapshot"]
        (row,) = snapshot["history"]
        assert any(w.startswith("load not as planned: 2 users stopped") for w in snapshot["run"]["warnings"])
        assert row["users"] == 5 and row["users_asked"] == 5
        assert row["users_ran"] == f"{row['users_max']} of 5" and 3 <= row["users_max"] <= 5  # a dry one starts too
        assert row["load_warnings"] == ["2 users stopped for lack of rows in data pool ids"]
    assert stats(server)["peak"] <= 3


def test_junit_and_html_show_the_load_warnings(tmp_path: Path, server: str) -> None:
    from runner.report.html import render_html
    from runner.report.junit import junit_xml

    _, saved = run_json(tmp_path, str(write(tmp_path, CAPPED.format(host=server))))
    results = Results.model_validate(saved)
    message = results.load_warnings[0].message if results.load_warnings else ""
    assert message.endswith("of 160 planned arrivals never started")
    xml = junit_xml(results)
    assert '<testsuite name="load"' in xml and 'testcase name="arrivals_dropped"' in xml
    assert f"warning: {message}" in xml and "LoadNotAsPlanned" not in xml  # passed: said, not red
    strict = junit_xml(results.model_copy(update={"passed": False, "exit_code": 1}))
    assert f'<failure message="{message}" type="LoadNotAsPlanned"' in strict
    page = render_html(results)
    assert "PASSED with warnings" in page and message in page
    assert "never started" in page and 'data-kind="arrivals_dropped"' in page


def test_rendezvous_warning_and_monitor_list_follow_the_command_line(tmp_path: Path, server: str) -> None:
    """-u 30 against a point waiting for 20: no "the load has 1 at most" (the scenario gives no users); -u 5 is
    warned with 5. ``--monitor 1,2,3`` (the README's form) watches three processes, not one named "1,2,3"."""
    steps = "[{rendezvous: gate, users: 20, timeout: 1s}, {get: /slow/0}]"
    text = f"host: {server}\nusers: {{u: {{think: 0, sequence: {steps}}}}}\n"
    scenario = str(write(tmp_path, text))
    enough, results = run_json(
        tmp_path, scenario, "-u", "30", "-r", "300", "-t", "2s", "--monitor", f"{os.getpid()},no-such-lrun-process"
    )
    assert "rendezvous 'gate'" not in enough.stderr, enough.stderr
    assert [t["spec"] for t in results["resources"]["targets"]] == [str(os.getpid()), "no-such-lrun-process"]
    few, _ = run_json(tmp_path, scenario, "-u", "5", "-r", "100", "-t", "2s")
    assert "waits for 20 users, but the load has 5:" in few.stderr and "1 at most" not in few.stderr
    checked = run_lrun("validate", scenario)
    assert "the load has 1 at most" in checked.stdout + checked.stderr  # no run: the scenario's own load


def test_an_interrupted_open_model_drops_only_the_arrivals_that_were_due(tmp_path: Path, server: str) -> None:
    """Ctrl-C after about 2 s of a 5 s schedule: arrivals not yet due were not dropped, those left waiting were."""
    import signal
    import time

    from conftest import lrun_command

    out, log = tmp_path / "r.json", tmp_path / "stderr.txt"
    command = [*lrun_command(), "run", str(write(tmp_path, CAPPED.format(host=server))), "--json", str(out)]
    with log.open("w") as stderr:
        process = subprocess.Popen([*command, "--only-summary"], stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        wait_until(lambda: "open model: arrivals for" in log.read_text(), 60, "the arrivals to begin")
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    results = json.loads(out.read_text())
    arrivals = results["arrivals"]
    assert results["stop_code"] == "interrupted"
    assert arrivals["dropped"] == arrivals["waiting_at_end"] < arrivals["planned"] - arrivals["started"], arrivals


def test_the_progress_line_shows_users_running_of_those_asked() -> None:
    from runner.report.console import progress_line

    assert "  users 5/10  " in progress_line(3, 10, 5, 1.0, 0.0, asked=10)
    assert "  users 10  " in progress_line(3, 10, 10, 1.0, 0.0, asked=10)  # all there: said once

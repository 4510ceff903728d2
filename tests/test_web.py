"""The web UI over HTTP, as scripts and browsers (their headers) talk to it: real ``lrun --web`` processes on
loopback against the demo target. The page itself is in ``test_web_browser.py``."""

from __future__ import annotations

import csv
import io
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from web_process import WebLrun, http, wait_for

from conftest import SCENARIOS, run_lrun
from runner.web.security import Guard

pytestmark = pytest.mark.e2e
QUICKSTART = str(SCENARIOS / "quickstart.yaml")


def stats(url: str) -> dict:
    reply = http(f"{url}/stats/requests")
    assert reply.status == 200
    return reply.json()


def aggregated(data: dict) -> dict:
    rows = [r for r in data["stats"] if r["name"] == "Aggregated"]
    assert rows, data
    return rows[0]


def test_rest_api_as_a_locust_user_scripts_it() -> None:
    """swarm, watch, change users, download, stop, swarm again: Locust's endpoints and answers."""
    with WebLrun(QUICKSTART) as web:
        url = web.url
        assert stats(url)["state"] == "ready"
        started = http(f"{url}/swarm", method="POST", data={"user_count": 2, "spawn_rate": 10, "host": "demo"})
        assert started.status == 200, started.text
        assert started.json()["success"] is True
        data = wait_for(
            lambda: (d := stats(url))["state"] == "running" and aggregated(d)["num_requests"] > 5 and d,
            what="requests counted",
        )
        assert data["user_count"] == 2
        assert data["stats"][-1]["name"] == "Aggregated"  # Locust's order: the total last
        assert {"total_rps", "fail_ratio", "errors", "current_response_time_percentiles"} <= set(data)
        changed = http(f"{url}/swarm", method="POST", data={"user_count": 5, "spawn_rate": 50})
        assert changed.status == 200, changed.text
        wait_for(lambda: stats(url)["user_count"] == 5, what="5 users")
        before = wait_for(lambda: (n := aggregated(stats(url))["num_requests"]) > 20 and n, what="20 requests")
        assert http(f"{url}/stats/reset").json()["success"] is True
        assert aggregated(stats(url))["num_requests"] < before  # counting starts again
        wait_for(lambda: aggregated(stats(url))["num_requests"] > 0, what="requests after the reset")

        table = list(csv.reader(io.StringIO(http(f"{url}/stats/requests/csv").text)))
        assert table[0][:4] == ["Type", "Name", "Request Count", "Failure Count"]
        assert table[-1][1] == "Aggregated" and int(table[-1][2]) > 0
        assert {"/items", "/login"} <= {row[1] for row in table[1:]}
        failures = list(csv.reader(io.StringIO(http(f"{url}/stats/failures/csv").text)))
        assert failures[0] == ["Method", "Name", "Error", "Occurrences"]
        report = http(f"{url}/stats/report")
        assert report.status == 200 and b"<html" in report.body[:500].lower() and b"/items" in report.body

        assert http(f"{url}/stop").json()["success"] is True
        wait_for(lambda: stats(url)["state"] == "stopped", what="stopped")
        again = http(f"{url}/swarm", method="POST", data={"user_count": 1, "spawn_rate": 1, "run_time": "2s"})
        assert again.status == 200 and again.json()["run"] == 2
        wait_for(lambda: stats(url)["state"] == "stopped", what="the second test's end", timeout=30)
        state = http(f"{url}/api/state").json()["snapshot"]
        assert [run["id"] for run in state["history"]] == [1, 2]
        first = http(f"{url}/api/runs/1/results.json").json()
        assert first["total"]["requests"] > 0 and first["stop_reason"] == "stopped from the web UI"
        assert first["stats_start"] > first["start"]  # counted from the reset
        second = http(f"{url}/api/runs/2/results.json").json()
        assert second["stop_reason"] == "run time reached"
        assert 0 < second["total"]["requests"] < before  # its own statistics: 1 user for 2 s
    assert web.process.returncode in (0, 1)
    assert "Traceback" not in "".join(web.stderr)


def test_bad_values_get_a_400_with_a_message_per_field_and_the_ui_stays_up() -> None:
    with WebLrun(QUICKSTART) as web:
        cases = [
            ({"user_count": "many", "spawn_rate": 1}, "user_count"),
            ({"user_count": 2, "spawn_rate": "0"}, "spawn_rate"),
            ({"user_count": 2, "spawn_rate": 1, "host": "example.com"}, "host"),
            ({"user_count": 2, "spawn_rate": 1, "run_time": "soon"}, "run_time"),
            ({"user_count": 2, "spawn_rate": 1, "weight.shopper": "-1"}, "weight.shopper"),
            ({"user_count": 2, "weight.shopper": "0", "weight.browser": "0"}, "weight.shopper"),
        ]
        for form, field in cases:
            reply = http(f"{web.url}/swarm", method="POST", data=form)
            assert reply.status == 400, (form, reply.text)
            body = reply.json()
            assert body["success"] is False and field in body["errors"], body
        assert stats(web.url)["state"] == "ready"  # nothing started
        empty = http(f"{web.url}/swarm", method="POST", data={}, headers={"Content-Type": "application/json"})
        assert empty.status == 400 and "user_count" in empty.json()["errors"]
        assert stats(web.url)["state"] == "ready"
        assert http(f"{web.url}/").status == 200


FAILING = """
name: failing
load: {users: 2, spawn_rate: 10}
users:
  u:
    think: 0.05s
    tasks:
      - {weight: 1, get: "/fail?status=503", name: /fail}
      - {weight: 1, get: /}
"""


def test_failures_are_grouped_with_counts_and_times(tmp_path: Path, demo_url: str) -> None:
    scenario = tmp_path / "failing.yaml"
    scenario.write_text(FAILING)
    with WebLrun(str(scenario), "-H", demo_url, "--autostart", "-t", "60s") as web:
        data = wait_for(lambda: (d := stats(web.url))["errors"] and d, what="a failure")
        (error,) = data["errors"]
        assert (error["method"], error["name"]) == ("GET", "/fail") and "503" in error["error"]
        wait_for(lambda: stats(web.url)["errors"][0]["occurrences"] >= 3, what="three failures")
        rows = list(csv.reader(io.StringIO(http(f"{web.url}/stats/failures/csv").text)))
        assert rows[1][:2] == ["GET", "/fail"] and int(rows[1][3]) >= 3
        run = http(f"{web.url}/api/state").json()["snapshot"]["run"]
        (group,) = run["errors"]
        assert group["count"] >= 3 and group["first_seen"] < group["last_seen"]
        for row in run["requests"]:  # where the time went, on average: a 503 is a response, timed too
            assert row["ttfb_avg_ms"] > 0 and row["connect_avg_ms"] >= 0
        assert aggregated(stats(web.url))["num_failures"] >= 3


def test_a_page_of_another_site_cannot_drive_the_test() -> None:
    """A foreign Origin, a cross-site Sec-Fetch-Site and a rebinding Host are refused; scripts are not."""
    with WebLrun(QUICKSTART) as web:
        url = web.url
        host = url.split("://", 1)[1]
        form = {"user_count": 1, "spawn_rate": 1}
        evil = http(f"{url}/swarm", method="POST", data=form, headers={"Origin": "http://evil.example"})
        assert evil.status == 403, evil.text
        cross = http(f"{url}/swarm", method="POST", data=form, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status == 403
        null = http(f"{url}/swarm", method="POST", data=form, headers={"Origin": "null"})
        assert null.status == 403
        assert stats(url)["state"] == "ready"
        rebound = http(f"{url}/stats/requests", headers={"Host": "evil.example:8089"})
        assert rebound.status == 403
        same = http(f"{url}/swarm", method="POST", data=form, headers={"Origin": f"http://{host}"})
        assert same.status == 200, same.text
        wait_for(lambda: stats(url)["state"] == "running", what="running")
        # Locust's state-changing GETs too
        assert http(f"{url}/stop", headers={"Origin": "http://evil.example"}).status == 403
        assert http(f"{url}/stats/reset", headers={"Sec-Fetch-Site": "same-site"}).status == 403
        assert stats(url)["state"] == "running"
        assert http(f"{url}/stop", headers={"Sec-Fetch-Site": "same-origin"}).status == 200


def test_binding_beyond_loopback_needs_auth() -> None:
    result = run_lrun(QUICKSTART, "--web", "--web-host", "0.0.0.0", "--web-port", "0", timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--web-auth" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_lrun(QUICKSTART, "--web", "--web-port", str(port), "-H", "http://127.0.0.1:9", timeout=60)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert f"--web-port {port}: cannot listen on 127.0.0.1:{port}" in last and "--web-port" in last
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--web", "--headless"], "--headless"),
        (["--web", "--web-auth", "nopassword"], "USER:PASSWORD"),
        (["--web", "--tls-cert", "cert.pem"], "--tls-key"),
        (["--autostart"], "goes with --web"),
    ],
)
def test_web_usage_errors_are_one_line(args: list[str], expected: str) -> None:
    result = run_lrun(QUICKSTART, *args, "--web-port", "0", timeout=60)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_auth_is_asked_for_every_page_and_endpoint() -> None:
    with WebLrun(QUICKSTART, "--web-auth", "tester:s3cret") as web:
        for path in ("/", "/api/state", "/stats/requests", "/static/app.js", "/api/events"):
            reply = http(f"{web.url}{path}")
            assert reply.status == 401, path
            assert reply.headers.get("WWW-Authenticate", "").startswith("Basic")
        assert http(f"{web.url}/stats/requests", auth=("tester", "wrong")).status == 401
        assert http(f"{web.url}/stop", auth=("other", "s3cret")).status == 401
        assert http(f"{web.url}/stats/requests", auth=("tester", "s3cret")).status == 200
        assert http(f"{web.url}/", auth=("tester", "s3cret")).status == 200


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl makes the test certificate")
def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    request = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run(
        [*request, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with WebLrun(QUICKSTART, "--tls-cert", str(cert), "--tls-key", str(key)) as web:
        assert web.url.startswith("https://127.0.0.1:")
        trusting = ssl.create_default_context(cafile=str(cert))
        trusting.check_hostname = False  # the certificate names localhost; the URL is 127.0.0.1
        assert http(f"{web.url}/stats/requests", context=trusting).json()["state"] == "ready"
        with pytest.raises(OSError):
            http(web.url.replace("https://", "http://") + "/stats/requests", timeout=5)


def test_auth_from_the_environment() -> None:
    with WebLrun(QUICKSTART, env={"LRUN_WEB_AUTH": "env:pw"}) as web:
        assert http(f"{web.url}/stats/requests").status == 401
        assert http(f"{web.url}/stats/requests", auth=("env", "pw")).status == 200


def read_event(url: str, results: list, timeout: float = 20.0) -> None:
    """Read the first ``snapshot`` event of the stream with a raw socket (bounded)."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n\r\n".encode())
        data = b""
        deadline = time.monotonic() + timeout
        while not complete_event(data) and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    payload = data.split(b"\ndata: ", 1)[1]
    results.append(json.loads(payload.split(b"\n", 1)[0]))


def complete_event(data: bytes) -> bool:
    """The stream so far holds a whole ``data:`` line (one event)."""
    return b"\ndata: " in data and b"\n" in data.split(b"\ndata: ", 1)[1]


def test_two_streams_show_the_same_state(tmp_path: Path) -> None:
    with WebLrun(QUICKSTART, "--autostart", "-u", "2", "-t", "30s") as web:
        wait_for(lambda: stats(web.url)["state"] == "running", what="running")
        results: list = []
        readers = [threading.Thread(target=read_event, args=(web.url, results)) for _ in range(2)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(30)
        assert len(results) == 2
        a, b = results
        assert a["run"]["id"] == b["run"]["id"] == 1
        assert a["state"] == b["state"] == "running"
        assert [r["name"] for r in a["run"]["requests"]] or [r["name"] for r in b["run"]["requests"]]


def test_autostart_and_autoquit_end_like_a_headless_run(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    web = WebLrun(QUICKSTART, "--autostart", "--autoquit", "1", "-u", "2", "-r", "10", "-t", "3s", "--json", str(out))
    code = web.process.wait(90)
    results = json.loads(out.read_text())
    assert results["stop_reason"] == "run time reached" and results["total"]["requests"] > 0
    assert code == results["exit_code"]


def test_the_host_guard() -> None:
    loopback = Guard("127.0.0.1")
    assert loopback.host_allowed("127.0.0.1:8089") and loopback.host_allowed("localhost:8089")
    assert loopback.host_allowed("[::1]:8089") and loopback.host_allowed("10.1.2.3")  # an address cannot rebind
    assert not loopback.host_allowed("evil.example:8089") and not loopback.host_allowed("")
    named = Guard("127.0.0.1", allowed=["lrun.internal"])
    assert named.host_allowed("lrun.internal:8089") and not named.host_allowed("lrun.internal.evil.example")


NEXT_TEST = """
name: web next test
pools:
  accounts: {{csv: {accounts}, order: sequential, update: once}}
load: {{users: 4, spawn_rate: 50, iterations: 1}}
users:
  customer:
    sequence:
      - get: /items
      - rendezvous: gate
        users: 4
        timeout: 20s
      - get: "/about?who={{{{ accounts.username }}}}"
        name: /about
"""


def swarm(url: str, **form: object) -> object:
    """POST /swarm; the reply when it started, else None (the workers are not all ready yet)."""
    reply = http(f"{url}/swarm", method="POST", data=form)
    return reply if reply.status == 200 else None


def test_the_master_page_shows_every_worker_and_workers_stay_for_the_next_test(tmp_path: Path, demo_url: str) -> None:
    """--processes 2: both workers on the page; two tests in a row, each with its own pools, rendezvous, stats."""
    scenario = tmp_path / "next.yaml"
    scenario.write_text(NEXT_TEST.format(accounts=SCENARIOS / "data" / "accounts.csv"))
    with WebLrun(str(scenario), "-H", demo_url, "--processes", "2", "--heartbeat-interval", "0.5") as web:
        url = web.url
        wait_for(lambda: len(stats(url)["workers"]) == 2, what="two workers", timeout=60)
        workers = stats(url)["workers"]
        assert {w["state"] for w in workers} == {"ready"} and len({w["pid"] for w in workers}) == 2
        results = []
        for run in (1, 2):
            started = wait_for(lambda: swarm(url, user_count=4, spawn_rate=50), what="a test starting")
            assert started.json()["run"] == run
            wait_for(lambda: stats(url)["state"] == "stopped", what=f"test {run} ending", timeout=60)
            results.append(http(f"{url}/api/runs/{run}/results.json").json())
        for result in results:
            assert result["stop_reason"] == "all users finished", result["stop_reason"]
            assert {e["name"]: e["requests"] for e in result["requests"]} == {"/items": 4, "/about": 4}
            (pool,) = result["pools"]
            assert 4 <= pool["handed_out"] <= 100 and not pool["dry"]  # workers take rows in blocks
            (gate,) = result["rendezvous"]
            assert gate["arrivals"] == 4 and [(r["released"], r["reason"]) for r in gate["releases"]] == [(4, "policy")]
            assert [w["requests"] for w in result["workers"]] == [4, 4]  # 2 users each; this test's only

        handed = [result["pools"][0]["handed_out"] for result in results]
        assert handed[0] == handed[1]  # a fresh pool: the second test starts again from the first row
        page = http(f"{url}/api/state").json()["snapshot"]
        assert len(page["workers"]) == 2 and all(w["heartbeat_ago_s"] < 30 for w in page["workers"])
    assert web.process.returncode == 0, "".join(web.stderr)


def test_transactions_pools_and_their_charts(tmp_path: Path) -> None:
    """register.yaml: transactions in the table with their threshold and their own series; a fresh pool per test."""
    with WebLrun(str(SCENARIOS / "register.yaml"), "--autostart", "-u", "3", "-r", "10", "-t", "60s") as web:

        def run() -> dict:
            return http(f"{web.url}/api/state").json()["snapshot"]["run"]

        wait_for(lambda: any(t["requests"] >= 2 for t in run()["transactions"]), what="transactions")
        current = run()
        assert {t["name"] for t in current["transactions"]} >= {"sign up"}
        (scoped,) = [v for v in current["thresholds"] if v["request"] == "sign up"]
        assert scoped["actual"] is not None
        key = next(t["key"] for t in current["transactions"] if t["name"] == "sign up")
        series = f"{web.url}/api/series?key={urllib.parse.quote(key)}"
        points = wait_for(lambda: http(series).json()["points"], what="its series")
        columns = http(series).json()["columns"]
        assert len(columns) == 14 and columns[-2:] == ["ttfb_ms", "receive_ms"]  # 8 figures, then 6 phases
        assert all(len(p) == 14 and p[8:] == [None] * 6 for p in points)  # a transaction has no phases of its own
        assert http(f"{web.url}/api/series?key=nothing").status == 404
        phones = wait_for(
            lambda: [p["handed_out"] for p in run()["pools"] if p["name"] == "phones" and p["handed_out"] >= 20],
            what="20 phones used",
        )
        assert phones
        http(f"{web.url}/stop")
        wait_for(lambda: stats(web.url)["state"] == "stopped", what="stopped")
        used = http(f"{web.url}/api/runs/1/results.json").json()
        used_phones = next(p["handed_out"] for p in used["pools"] if p["name"] == "phones")
        http(f"{web.url}/swarm", method="POST", data={"user_count": 1, "spawn_rate": 1})
        assert used_phones >= 20
        # test 2 starts the unique pool from its first row: its user sends phones that test 1 registered, and the
        # demo target refuses them (409); a pool that went on from test 1's rows would bring new phones only. (How
        # many rows test 2 took by a first look is no proof: a refused phone ends its iteration without think time.)
        refused = wait_for(
            lambda: (
                [e for e in run()["errors"] if e["name"] == "/register" and "status 409" in e["message"]]
                if run()["id"] == 2
                else []
            ),
            what="test 2 sending test 1's phones again",
        )
        assert refused[0]["method"] == "POST"

"""``--metrics-port``: a live Prometheus endpoint, scraped from a real run (local and distributed)."""

from __future__ import annotations

import base64
import json
import statistics
import time
from http.client import HTTPConnection
from pathlib import Path

import pytest
from helpers import free_port
from outputs_helpers import get, scrape_until, start_lrun
from prometheus_client.parser import text_string_to_metric_families

from conftest import run_lrun

SCENARIO = """\
name: metrics
host: {host}
pools:
  ids: {{csv: ids.csv, order: sequential, when_empty: cycle}}
users:
  u:
    think: 50ms
    sequence:
      - get: "/items/{{{{ ids.id }}}}"
        name: /items/[id]
      - transaction: browse
        steps:
          - get: /about
            check: [{{status: 200}}]
      - get: /missing
        check: [{{status: 200}}]
"""


def _scenario(tmp_path: Path, host: str) -> Path:
    (tmp_path / "ids.csv").write_text("id\n1\n2\n3\n4\n5\n")
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.format(host=host))
    return path


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _value(samples: dict, metric: str, **labels: str) -> float:
    return samples[(metric, tuple(sorted(labels.items())))]


@pytest.mark.e2e
@pytest.mark.parametrize("mode", [[], ["--processes", "2"]], ids=["local", "processes"])
def test_metrics_are_live_and_agree_with_the_run(tmp_path: Path, demo_url: str, mode: list[str]) -> None:
    port = free_port()
    results = tmp_path / "r.json"
    args = [str(_scenario(tmp_path, demo_url)), "-u", "4", "-t", "8", "--metrics-port", str(port)]
    lrun = start_lrun(*args, *mode, "--json", str(results), "--only-summary")
    try:
        text = scrape_until(f"http://127.0.0.1:{port}/metrics", 'lrun_transactions_total{name="browse"}')
        # a second scrape a little later: counters only grow
        later = scrape_until(f"http://127.0.0.1:{port}/metrics", "lrun_users")
        _, stderr = lrun.communicate(timeout=90)
    finally:
        lrun.kill()
    assert lrun.returncode == 1, stderr  # /missing fails its checkpoint
    assert f"Prometheus metrics at http://127.0.0.1:{port}/metrics" in stderr
    first, second = _samples(text), _samples(later)
    final = json.loads(results.read_text())
    by_name = {(r["method"], r["name"]): r for r in final["requests"]}
    for method, name in [("GET", "/items/[id]"), ("GET", "/about"), ("GET", "/missing")]:
        seen = _value(first, "lrun_requests_total", method=method, name=name)
        assert 0 < seen <= _value(second, "lrun_requests_total", method=method, name=name)
        assert _value(second, "lrun_requests_total", method=method, name=name) <= by_name[(method, name)]["requests"]
        count = _value(first, "lrun_response_time_seconds_count", method=method, name=name)
        assert count == seen == _value(first, "lrun_response_time_seconds_bucket", method=method, name=name, le="+Inf")
        for phase in ("dns", "connect", "tls", "send", "ttfb", "receive"):  # every response, each phase
            assert _value(first, "lrun_request_phase_seconds_count", method=method, name=name, phase=phase) == seen
    missing = _value(first, "lrun_request_failures_total", method="GET", name="/missing")
    assert missing == _value(first, "lrun_requests_total", method="GET", name="/missing")
    assert _value(first, "lrun_request_failures_total", method="GET", name="/about") == 0
    failed = _value(
        first, "lrun_checkpoints_total", method="GET", name="/missing", check="status is 200", result="failed"
    )
    assert failed > 0
    assert 1 <= _value(second, "lrun_users") <= 4
    assert _value(first, "lrun_pool_rows_left", pool="ids") in range(0, 6)
    assert _value(first, "lrun_pool_rows_handed_out_total", pool="ids") > 0
    if mode:
        assert _value(second, "lrun_workers", state="running") == 2
    else:
        assert not [k for k in second if k[0] == "lrun_workers"]
    names = {family.name for family in text_string_to_metric_families(later)}
    assert {"lrun_requests", "lrun_response_time_seconds", "lrun_requests_per_second", "lrun_transactions"} <= names


def test_beyond_loopback_needs_auth(tmp_path: Path, demo_url: str) -> None:
    done = run_lrun(str(_scenario(tmp_path, demo_url)), "-t", "1", "--metrics-port", "0", "--metrics-host", "0.0.0.0")
    assert done.returncode == 2
    assert "--metrics-host 0.0.0.0 listens beyond loopback: set --web-auth USER:PASSWORD" in done.stderr
    assert "Traceback" not in done.stderr
    bad = run_lrun(str(_scenario(tmp_path, demo_url)), "-t", "1", "--metrics-port", "0", "--web-auth", "nopassword")
    assert bad.returncode == 2 and "--web-auth: expected USER:PASSWORD" in bad.stderr


def test_basic_auth_guards_the_endpoint(tmp_path: Path, demo_url: str) -> None:
    port = free_port()
    lrun = start_lrun(
        str(_scenario(tmp_path, demo_url)), "-t", "30", "--metrics-port", str(port), "--metrics-host", "0.0.0.0",
        "--only-summary", env={"LRUN_WEB_AUTH": "tester:s3cret"},
    )  # fmt: skip
    try:
        good = {"Authorization": "Basic " + base64.b64encode(b"tester:s3cret").decode()}
        text = scrape_until(f"http://127.0.0.1:{port}/metrics", "lrun_requests_total", headers=good)
        assert "lrun_users" in text
        assert get(f"http://127.0.0.1:{port}/metrics")[0] == 401
        # a kept-alive scraper is answered at once (TCP_NODELAY: the body no longer waits for a delayed ACK, 44 ms)
        conn = HTTPConnection("127.0.0.1", port, timeout=10)
        times = []
        for _ in range(11):
            began = time.perf_counter()
            conn.request("GET", "/metrics", headers=good)
            reply = conn.getresponse()
            reply.read()
            times.append(time.perf_counter() - began)
            assert reply.status == 200
        conn.close()
        assert statistics.median(times) < 0.025, [round(t * 1000, 1) for t in times]
        # failed logins are logged and slowed, as on the web UI: after 5 in a row the address waits
        for guess in range(5):
            wrong = {"Authorization": "Basic " + base64.b64encode(f"tester:guess{guess}".encode()).decode()}
            assert get(f"http://127.0.0.1:{port}/metrics", wrong)[0] == 401
        assert get(f"http://127.0.0.1:{port}/metrics", good)[0] == 429  # even the right one, while it waits
        time.sleep(1.2)
        assert get(f"http://127.0.0.1:{port}/metrics", good)[0] == 200
    finally:
        lrun.terminate()
        _, stderr = lrun.communicate(timeout=60)
    assert "s3cret" not in stderr and "guess" not in stderr
    assert stderr.count("/metrics: failed login from 127.0.0.1 as 'tester'") == 5, stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.evil.example", False),  # a name that starts like an address (the master's old rule said loopback)
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("", False),
    ],
)
def test_one_loopback_rule_for_everything_lrun_serves(host: str, loopback: bool) -> None:
    from runner.serving import is_loopback

    assert is_loopback(host) is loopback

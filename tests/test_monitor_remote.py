"""Servers under test watched from anywhere: Debian's node_exporter and Prometheus, started on loopback here,
beside an endpoint that answers garbage and one that is down."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import free_port
from outputs_helpers import Receiver, get

from conftest import ROOT, run_lrun
from runner.monitor.remote import EndpointError, host_values, parse_node_exporter, parse_query_answer

NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
PROMETHEUS = shutil.which("prometheus")
needs_exporter = pytest.mark.skipif(NODE_EXPORTER is None, reason="apt-get install prometheus-node-exporter")
needs_prometheus = pytest.mark.skipif(PROMETHEUS is None, reason="apt-get install prometheus")


def _wait_ready(url: str, process: subprocess.Popen[bytes], deadline_s: float = 60.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if process.poll() is not None:
            raise AssertionError(f"{process.args[0]} exited with {process.returncode}")
        try:
            if get(url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {deadline_s:g}s")


def _end(process: subprocess.Popen[bytes]) -> None:
    process.terminate()  # by its PID: we started it
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def node_exporter() -> Iterator[str]:
    assert NODE_EXPORTER is not None
    port = free_port()
    process = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        _wait_ready(url, process)
        yield url
    finally:
        _end(process)


def _wait_scraped(url: str, deadline_s: float = 30.0) -> None:
    """Until Prometheus has scraped the node_exporter once (its first scrape can come seconds after it is ready)."""
    import urllib.parse
    import urllib.request

    query = urllib.parse.quote('count(up{job="node"} == 1)')
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/query?query={query}", timeout=2) as reply:
                if json.load(reply)["data"]["result"]:
                    return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.3)


@pytest.fixture
def prometheus(tmp_path: Path, node_exporter: str) -> Iterator[tuple[str, int]]:
    """A real Prometheus scraping the node_exporter and lrun's own --metrics-port (every second)."""
    assert PROMETHEUS is not None
    port, lrun_port = free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    exporter = node_exporter.split("//")[1].split("/")[0]
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - {{job_name: node, static_configs: [{{targets: ['{exporter}']}}]}}\n"
        f"  - {{job_name: lrun, static_configs: [{{targets: ['127.0.0.1:{lrun_port}']}}]}}\n"
    )
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{url}/-/ready", process)
        _wait_scraped(url)
        yield url, lrun_port
    finally:
        _end(process)


@pytest.fixture
def garbage() -> Iterator[str]:
    """An endpoint that answers 200 with something that is not metrics."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html><body>It works!</body></html>\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    server.shutdown()
    server.server_close()


def test_parsing_node_exporter_rates_and_query_answers() -> None:
    text = (
        'node_cpu_seconds_total{cpu="0",mode="idle"} 100\nnode_cpu_seconds_total{cpu="0",mode="user"} 50\n'
        'node_network_receive_bytes_total{device="lo"} 999999\nnode_network_receive_bytes_total{device="eth0"} 1000\n'
        "node_memory_MemTotal_bytes 1000\nnode_memory_MemAvailable_bytes 250\nnode_load1 1.5\n"
    )
    gauges, before, _ = parse_node_exporter(text)
    assert gauges == {"memory_used_bytes": 750, "memory_total_bytes": 1000, "load1": 1.5}
    assert before is not None
    later = type(before)(before.t + 2, before.cpu_busy + 3, before.cpu_total + 4, 3000, 0, 0, 0)
    values = host_values(gauges, later, before)
    assert values["cpu_percent"] == 75.0 and values["network_rx_bytes_per_s"] == 1000.0
    assert host_values(gauges, before, None)["cpu_percent"] is None  # one scrape: no rate yet
    with pytest.raises(EndpointError, match="not Prometheus metrics"):
        parse_node_exporter("<html>It works!</html>")
    with pytest.raises(EndpointError, match="no node_exporter metrics"):
        parse_node_exporter("up 1\n")
    vector = b'{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"2"]},{"value":[1,"7.5"]}]}}'
    assert parse_query_answer(vector) == 7.5
    assert parse_query_answer(b'{"status":"success","data":{"resultType":"vector","result":[]}}') is None
    with pytest.raises(EndpointError, match="query failed: bad_data"):
        parse_query_answer(b'{"status":"error","errorType":"bad_data"}')
    with pytest.raises(EndpointError, match="not a Prometheus query result"):
        parse_query_answer(b"<html>")


@needs_exporter
@needs_prometheus
@pytest.mark.e2e
def test_hosts_and_queries_are_watched_and_a_host_rule_aborts(
    tmp_path: Path, demo_url: str, node_exporter: str, prometheus: tuple[str, int], garbage: str
) -> None:
    prometheus_url, lrun_port = prometheus
    down = f"http://127.0.0.1:{free_port()}/metrics"
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"""\
name: remote
host: {demo_url}
users:
  u:
    think: 20ms
    sequence:
      - get: /items
monitor:
  hosts:
    - {{name: db, node_exporter: "{node_exporter}"}}
    - {{name: junk, node_exporter: "{garbage}"}}
    - {{name: gone, node_exporter: "{down}"}}
  prometheus:
    url: {prometheus_url}
    queries:
      seen: sum(lrun_requests_total)
      nodes_up: count(up{{job="node"}} == 1)
  thresholds:
    - {{metric: host_memory, server: db, above: 1MB, for: 6s, action: abort}}
    - {{metric: query, query: nodes_up, above: 5}}
"""
    )
    results = tmp_path / "r.json"
    html = tmp_path / "r.html"
    hook = Receiver()
    try:
        done = run_lrun(
            str(scenario), "-u", "2", "-t", "60", "--metrics-port", str(lrun_port), "--json", str(results),
            "--html", str(html), "--only-summary", "--webhook", hook.url,
        )  # fmt: skip
    finally:
        hook.close()
    tripped = [b["text"] for b in hook.bodies if b["lrun"]["event"] == "rule"]
    assert tripped == [tripped[0]] and tripped[0].startswith("resource threshold host_memory[db] above 1MB for 6s")
    assert done.returncode == 1, done.stderr
    data = json.loads(results.read_text())
    assert data["stop_reason"].startswith("resource threshold host_memory[db] above 1MB for 6s failed")
    remote = data["remote"]
    assert [h["name"] for h in remote["hosts"]] == ["db", "junk", "gone"]
    series = remote["series"]
    assert len(series) >= 6
    db = [p["hosts"]["db"] for p in series]
    assert all(v["memory_used_bytes"] and v["memory_used_bytes"] > 1e6 for v in db)
    assert [v for v in db if v["cpu_percent"] is not None and 0 <= v["cpu_percent"] <= 100]
    assert [v for v in db if v["network_rx_bytes_per_s"] is not None and v["network_rx_bytes_per_s"] >= 0]
    assert all(v["load1"] is not None for v in db)
    for name in ("junk", "gone"):  # gaps, every second
        assert all(all(value is None for value in p["hosts"][name].values()) for p in series)
    warnings = data["warnings"]
    assert len([w for w in warnings if "'junk'" in w]) == 1
    assert "not Prometheus metrics" in next(w for w in warnings if "'junk'" in w)
    assert len([w for w in warnings if "'gone'" in w and "down" in w]) == 1
    # Prometheus scraped the node_exporter and lrun's own endpoint: the queries saw both
    assert max(p["queries"]["nodes_up"] or 0 for p in series) == 1
    assert 0 < max(p["queries"]["seen"] or 0 for p in series) <= data["total"]["requests"]
    verdicts = {v["expression"]: v for v in data["resource_thresholds"]}
    assert verdicts["query[nodes_up] above 5"]["passed"] is True
    assert verdicts["host_memory[db] above 1MB for 6s"]["passed"] is False
    assert "Traceback" not in done.stderr
    summary = done.stdout.split("Monitored servers (peak)", 1)[1]  # the end-of-run summary names each peak
    assert "  db: cpu " in summary and "  junk: no data (" in summary
    assert re.search(r"  db: cpu \d+%, memory [\d.,]+ [KMGT]iB of [\d.,]+ [KMGT]iB, load \d", summary), summary
    assert "  nodes_up: 1\n" in summary
    page = html.read_text()
    assert "Monitored hosts: CPU" in page and "no data from junk, gone" in page and "Prometheus queries" in page


@needs_exporter
@needs_prometheus
@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["one process", "master"])
def test_the_web_ui_shows_the_servers_beside_the_local_resources(
    tmp_path: Path, demo_url: str, node_exporter: str, prometheus: tuple[str, int], mode: str
) -> None:
    """In a real browser: the resources tab's tables and charts carry the node_exporter's and the query's values,
    live, on the time axis of the request charts; on a master's page (--processes) as on a single process's."""
    from browser import colored_pixels, launch
    from web_process import WebLrun, http

    prometheus_url, _ = prometheus
    down = f"http://127.0.0.1:{free_port()}/metrics"
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"""\
host: {demo_url}
users: {{u: {{think: 20ms, sequence: [{{get: /items}}]}}}}
monitor:
  hosts:
    - {{name: db, node_exporter: "{node_exporter}"}}
    - {{name: gone, node_exporter: "{down}"}}
  prometheus:
    url: {prometheus_url}
    queries:
      nodes_up: count(up{{job="node"}} == 1)
"""
    )
    wait = 60_000  # ms: generous, the machine is shared
    extra = ["--processes", "1"] if mode == "master" else []
    with (
        WebLrun(str(scenario), "-u", "2", "-t", "120", "--autostart", *extra) as web,
        launch(viewport={"width": 1280, "height": 1000}, bypass_csp=True) as context,
    ):
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.goto(web.url)
        page.click("#tabs button[data-tab=resources]")
        cells = "name => Array.from(document.querySelector(`#hosts tbody tr[data-host='${name}']`)?.children || [])"
        db_row = f"({cells})('db').map(td => td.textContent)"
        page.wait_for_function(f"{db_row}.length && !isNaN(parseFloat({db_row}[1]))", timeout=wait)  # a CPU figure
        name, cpu, memory, load, network, disk = page.evaluate(db_row)
        assert name == "db" and 0 <= float(cpu) <= 100 and " of " in memory and float(load) >= 0
        assert network.endswith("/s") and " / " in disk
        assert page.evaluate(f"({cells})('gone').map(td => td.textContent)")[1:4] == ["–", "–", "–"]  # a gap
        page.wait_for_function("document.querySelector('#queries tbody tr')?.children[1].textContent === '1'")

        # charts: this machine beside db (and gone, without values), points added live, the request charts' clock
        chart = "ui.charts['chart-machine-cpu']"
        page.wait_for_function(f"{chart} && {chart}.data[0].length >= 3 && {chart}.data[2].some(v => v !== null)")
        assert page.evaluate(f"{chart}.series.slice(1).map(s => s.label)") == ["this machine", "db", "gone"]
        assert page.evaluate(f"{chart}.data[3].every(v => v === null)")
        seen = page.evaluate(f"{chart}.data[0].length")
        page.wait_for_function(f"{chart}.data[0].length > {seen}", timeout=wait)
        page.wait_for_function("ui.series.total.length > 0", timeout=wait)
        last_resource, last_request = page.evaluate(f"[{chart}.data[0].slice(-1)[0], ui.series.total.slice(-1)[0][0]]")
        # epoch seconds on both: the same clock (a master draws requests a report interval, 4 s, late)
        assert last_resource > 1e9 and abs(last_resource - last_request) < 10
        db_cpu = page.evaluate(f"{chart}.data[2].filter(v => v !== null)")
        assert db_cpu and all(0 <= v <= 100 for v in db_cpu)
        queries = page.evaluate("ui.charts['chart-queries'].data[1].filter(v => v !== null)")
        assert queries and set(queries) == {1}
        assert page.evaluate("ui.charts['chart-host-network'].data[1].some(v => v !== null && v >= 0)")
        assert page.evaluate("ui.charts['chart-res-cpu'].series[1].label") == "lrun"
        for drawn in ("chart-machine-cpu", "chart-machine-memory", "chart-host-load", "chart-queries"):
            assert colored_pixels(page, drawn) > 50, drawn
        page.screenshot(
            path=str(ROOT / "tests" / "artifacts" / f"web_resources_{mode.replace(' ', '_')}.png"), full_page=True
        )
        assert problems == []
        report = http(f"{web.url}/stats/report").text  # the live HTML report has the servers' charts too
        assert "Monitored hosts: CPU" in report and "Prometheus queries" in report

"""The report's written summary (runner.report.explain) on the results of a real run against a scripted server
whose latency rises after a few seconds, and on hand-made results for the parts a loopback run cannot show."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lxml import html as lxml_html
from report_data import full_results

from conftest import run_lrun
from runner.report.apdex import apdex
from runner.report.explain import explain
from runner.report.html import render_html
from runner.report.model import Histogram as HistogramModel
from runner.report.model import Remote, RemoteHost, RemotePoint, Results, WindowBreach, WindowVerdict
from runner.report.scatter import bent_line
from runner.stats.histogram import Histogram

SLOW_AFTER_S = 3.0  # /orders answers in 10 ms, then in 150 ms from this many seconds after the first request
FAIL_EVERY = 50  # every 50th /health answers 500


class Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection lrun closed at its end


class Rising:
    """A loopback server: /orders gets slower after SLOW_AFTER_S; /health is fast, every FAIL_EVERY-th fails."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.served: Counter[str] = Counter()
        self.lock = threading.Lock()
        rising = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with rising.lock:
                    now = time.monotonic()
                    rising.first = rising.first if rising.first is not None else now
                    rising.served[self.path] += 1
                    n = rising.served[self.path]
                if self.path == "/orders":
                    time.sleep(0.150 if now - rising.first >= SLOW_AFTER_S else 0.010)
                failed = self.path == "/health" and n % FAIL_EVERY == 0
                status = b"500 Internal Server Error" if failed else b"200 OK"
                self.wfile.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def rising_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Results, Counter[str], Path]]:
    server = Rising()
    folder = tmp_path_factory.mktemp("explain")
    scenario = folder / "rising.yaml"
    scenario.write_text(
        f"name: rising\nhost: {server.url}\nload: {{users: 3, spawn_rate: 100, run_time: 8s}}\n"
        "users:\n  shopper:\n    tasks:\n      - get: /orders\n      - get: /health\n      - get: /health\n"
    )
    out, html = folder / "results.json", folder / "report.html"
    try:
        done = run_lrun(
            "run", str(scenario), "--json", str(out), "--html", str(html), "--csv-full-history",
            "--csv", str(folder / "run"), "--only-summary", timeout=120,
        )  # fmt: skip
        assert out.exists(), done.stdout + done.stderr
        yield Results.model_validate(json.loads(out.read_text())), Counter(server.served), html
    finally:
        server.close()


def test_the_summary_names_the_request_that_rose_and_when(rising_run: tuple[Results, Counter[str], Path]) -> None:
    results, served, _ = rising_run
    assert results.total.requests <= sum(served.values())  # the server saw every request counted
    sentences = explain(results)
    orders = next(s for s in sentences if "p95 of GET /orders" in s)
    match = re.search(r"rose from ([\d.]+) ms to ([\d.]+) ms at (\d\d:\d\d:\d\d) \((\d+):(\d\d) into the run\)", orders)
    assert match, sentences
    early, peak = float(match[1]), float(match[2])
    assert early < 75 and peak >= 150, sentences  # 10 ms before, 150 ms after
    into = int(match[4]) * 60 + int(match[5])
    assert 2 <= into <= 7, sentences  # the rise came SLOW_AFTER_S after the first request (the run has a start-up)
    assert re.search(r"when \d+ users were running", orders)
    health = next(s for s in sentences if "p95 of GET /health" in s)
    assert "stayed near" in health, sentences
    errors = next(s for s in sentences if "failed" in s)
    failed = served["/health"] // FAIL_EVERY
    assert abs(results.total.failures - failed) <= 1
    assert "GET /health" in errors and "500" in errors and "first at" in errors and "last at" in errors


def test_the_report_shows_the_summary_at_the_top(rising_run: tuple[Results, Counter[str], Path]) -> None:
    results, _, html = rising_run
    doc = lxml_html.fromstring(html.read_text())
    section = doc.get_element_by_id("explain")
    items = [" ".join(li.itertext()) for li in section.iter("li")]
    assert items == explain(results)
    sections = [s.get("id") for s in doc.iter("section")]
    assert sections.index("explain") < sections.index("summary")


def test_the_summary_is_deterministic_and_speaks_of_windows_and_hosts() -> None:
    results = full_results(30)
    start = results.series[0].t
    results = results.model_copy(
        update={
            "windows": [
                WindowVerdict(
                    expression="p95 < 300ms over 10s", metric="p95", operator="<", limit=300, over_s=10,
                    judged=20, worst=812.0, worst_at=start + 12, passed=False,
                    breaches=[WindowBreach(start=start + 10, end=start + 15, worst=812.0, worst_at=start + 12,
                                           windows=5, counted=True)],
                )
            ],
            "remote": Remote(
                interval_s=1, hosts=[RemoteHost(name="db")],
                series=[RemotePoint(t=start + i, hosts={"db": {"cpu_percent": 50.0 + i * 3}}) for i in range(16)],
            ),
        }
    )  # fmt: skip
    sentences = explain(results)
    assert sentences == explain(results)
    window = next(s for s in sentences if "SLO window" in s)
    assert "p95 < 300ms over 10s" in window and "once" in window and "812.0 ms" in window
    host = next(s for s in sentences if "db host" in s)
    assert "CPU reached 95 %" in host
    assert explain(results.model_copy(update={"remote": None, "windows": None})) == [
        s for s in sentences if s not in (window, host)
    ]
    assert "What happened" in render_html(results)


# ----------------------------------------------------------------------------------------------- Apdex


def test_apdex_counts_satisfied_tolerating_and_failures_as_frustrated() -> None:
    histogram = Histogram()
    for ms in [100.0] * 6 + [600.0] * 2 + [3000.0] * 2:  # 6 satisfied, 2 tolerating, 2 frustrated at T = 500 ms
        histogram.record(ms)
    entry = full_results(30).total.model_copy(
        update={"histogram": HistogramModel.model_validate(histogram.to_dict()), "failures": 0}
    )
    assert apdex(entry) == pytest.approx((6 + 2 / 2) / 10)
    assert apdex(entry, 1000.0) == pytest.approx((8 + 2 / 2) / 10)  # 600 ms within T, 3 s within 4 T
    assert apdex(entry.model_copy(update={"failures": 1})) == pytest.approx((5 + 2 / 2) / 10)
    assert apdex(entry.model_copy(update={"histogram": None})) is None


def table_apdex(html: str) -> dict[str, str]:
    doc = lxml_html.fromstring(html)
    table = doc.get_element_by_id("table-requests")
    column = [" ".join(th.itertext()).strip() for th in table.find("thead").iter("th")].index("Apdex")
    rows = {}
    for tr in [*table.find("tbody").iter("tr"), *table.find("tfoot").iter("tr")]:
        cells = [" ".join(td.itertext()).strip() for td in tr.iter("td")]
        rows[cells[1]] = cells[column]
    return rows


def test_the_report_has_apdex_per_request_and_its_t_is_an_option(
    rising_run: tuple[Results, Counter[str], Path],
) -> None:
    results, _, html = rising_run
    shown = table_apdex(html.read_text())
    assert set(shown) == {"/health", "/orders", "All requests"}
    assert shown["/orders"] == "1.00"  # 150 ms at most, T = 500 ms
    assert float(shown["/health"]) < 1.0  # its failures are frustrated
    out = html.parent / "t50.html"
    done = run_lrun("report", str(html.parent / "results.json"), "-o", str(out), "--apdex-t", "100ms")
    assert done.returncode == 0, done.stderr
    orders = next(e for e in results.requests if e.name == "/orders")
    assert table_apdex(out.read_text())["/orders"] == f"{apdex(orders, 100.0):.2f}"
    assert 0.5 <= (apdex(orders, 100.0) or 1.0) < 0.99  # the 150 ms after the rise are tolerating at T = 100 ms
    for bad in ("500", "0ms", "soon"):
        done = run_lrun("report", str(html.parent / "results.json"), "-o", str(out), "--apdex-t", bad)
        assert done.returncode == 2 and "--apdex-t" in done.stderr and len(done.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------------------------- under load


def test_the_median_line_follows_the_bands_of_x() -> None:
    assert bent_line([(1, 10.0), (1, 30.0), (2, 50.0), (3, 70.0)]) == [(1, 20.0), (2, 50.0), (3, 70.0)]
    many = [(float(x), float(x * 2)) for x in range(100)]
    line = bent_line(many)
    assert len(line) == 12 and [y for _, y in line] == sorted(y for _, y in line)
    assert bent_line([]) == []


def test_response_time_against_throughput_shows_where_it_bent(
    rising_run: tuple[Results, Counter[str], Path],
) -> None:
    results, _, html = rising_run
    doc = lxml_html.fromstring(html.read_text())
    users = doc.get_element_by_id("chart-rt-users")
    timed = [p for p in results.series if p.requests and p.p95_ms is not None]
    dots = users.find(".//g[@data-label='p95']").findall("circle")
    assert 0 < len(dots) <= len(timed)  # a dot per interval, those on the same pixel once
    rps = doc.get_element_by_id("chart-rt-rps")
    line = points(rps.find(".//path[@data-label='median p95']"))
    assert len(line) >= 2
    # three closed-model users: when /orders slowed from 10 to 150 ms the throughput fell, so the median p95 of
    # the lowest band of throughput is above that of the highest (the y axis grows upwards: a smaller svg y)
    assert line[0][1] < line[-1][1] - 20, line


def points(path: Any) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML]([\d.-]+) ([\d.-]+)", path.get("d"))]


# ----------------------------------------------------------------------------------------------- top errors


def test_top_errors_per_request_with_first_and_last_seen(rising_run: tuple[Results, Counter[str], Path]) -> None:
    results, served, html = rising_run
    doc = lxml_html.fromstring(html.read_text())
    rows = doc.get_element_by_id("table-top-errors").find("tbody").findall("tr")
    assert len(rows) == 1  # only /health failed
    cells = [" ".join(" ".join(td.itertext()).split()) for td in rows[0].findall("td")]
    health = next(e for e in results.requests if e.name == "/health")
    assert cells[0] == "GET /health" and cells[1] == str(health.failures)
    assert abs(health.failures - served["/health"] // FAIL_EVERY) <= 1  # the server's own count
    assert cells[2] == f"{health.failures / health.requests * 100:.2f}%"
    assert "HTTP 500" in cells[3] and "(100%)" in cells[3]
    first, last = (int(m) * 60 + int(s) for m, s in (c.split(":") for c in cells[4:6]))
    assert 0 <= first < last <= 9  # a failure every FAIL_EVERY-th /health, from the start to the end


def test_percentiles_over_time_per_request(rising_run: tuple[Results, Counter[str], Path]) -> None:
    _, _, html = rising_run
    doc = lxml_html.fromstring(html.read_text())
    titles = {f.get("data-chart"): " ".join(f.find("figcaption").itertext()) for f in doc.iter("figure")}
    charts = {titles[c]: c for c in titles if c and c.startswith("chart-pct-")}
    assert set(charts) == {"GET /health: percentiles", "GET /orders: percentiles"}
    orders = doc.get_element_by_id(charts["GET /orders: percentiles"])
    p95 = points(orders.find(".//path[@data-label='p95']"))
    assert {p.get("data-label") for p in orders.findall(".//path")} == {"p50", "p95", "p99"}
    assert min(y for _, y in p95[:2]) > max(y for _, y in p95[-2:])  # higher on the page (smaller y) at the end

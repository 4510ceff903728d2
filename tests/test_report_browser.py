"""The HTML report in a real browser: headless Chromium driven over the DevTools protocol.

Checks what a person would see: no console errors, no network request, every chart drew its lines, clicking a
column header sorts the table, hovering a chart shows its values. A screenshot of each page is saved under
``tests/artifacts/`` (git-ignored) for a person to look at.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it where missing); without it these tests skip
and say so.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_data import empty_results, full_results, run_results

from conftest import ROOT
from runner.report.html import render_html

websocket = pytest.importorskip("websocket", reason="websocket-client (the test extra) drives Chromium")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "tests" / "artifacts"
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: apt-get install chromium (.ci/run does) to test the report"
)


class Browser:
    """One headless Chromium with one page, spoken to over a DevTools websocket; every wait is bounded."""

    def __init__(self, profile: Path) -> None:
        self.process = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--window-size=1280,1800",
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.events: list[dict[str, Any]] = []
        self.next_id = 0
        try:
            port = self._port(profile / "DevToolsActivePort")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                pages = [t for t in json.load(response) if t.get("type") == "page"]
            self.socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=20)
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def _port(self, path: Path) -> int:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}")
            if path.exists() and path.read_text().strip():
                return int(path.read_text().split()[0])
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port within 30 s")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)
        raise TimeoutError(f"{method}: no answer within 30 s")

    def wait_for(self, event: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        seen = len(self.events)
        while time.monotonic() < deadline:
            if any(e.get("method") == event for e in self.events[seen:]):
                return
            self.events.append(json.loads(self.socket.recv()))
        raise TimeoutError(f"no {event} within {timeout} s")

    def open(self, path: Path) -> None:
        self.events.clear()
        self.call("Page.navigate", url=path.as_uri())
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (after scrolling it into view)."""
        left, top, width, height = self.box(selector)
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=left + width / 2,
                y=top + height / 2,
                button="left",
                clickCount=1,
            )

    def hover(self, selector: str, fraction: float) -> None:
        left, top, width, height = self.box(selector)
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=left + width * fraction, y=top + height / 2)

    def box(self, selector: str) -> list[float]:
        """Left, top, width, height of an element in the viewport, after scrolling it into view."""
        return self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left, r.top, r.width, r.height]; })()"
        )

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and any request that left the file (network)."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
                found.append(f"console {params['type']}: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails')}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(f"log: {params['entry'].get('text')}")
            elif method == "Network.requestWillBeSent":
                url = params.get("request", {}).get("url", "")
                if not url.startswith(("file:", "data:", "about:")):
                    found.append(f"network request: {url}")
        return found

    def screenshot(self, path: Path) -> bytes:
        height = self.js("document.documentElement.scrollHeight")
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=min(int(height), 12000), deviceScaleFactor=1,
                  mobile=False)  # fmt: skip
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        self.call("Emulation.clearDeviceMetricsOverride")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    def close(self) -> None:
        sock = getattr(self, "socket", None)
        if sock is not None:
            sock.close()
        if self.process.poll() is None:
            self.process.terminate()  # the browser we started, by its PID
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    chrome = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield chrome
    finally:
        chrome.close()


CHARTS = """Array.from(document.querySelectorAll('svg.chart')).map(svg => ({
  id: svg.id, empty: svg.classList.contains('empty'), width: svg.getBoundingClientRect().width,
  lines: Array.from(svg.querySelectorAll('path.line')).map(p => ({
    label: p.dataset.label, length: p.getTotalLength(), width: p.getBBox().width,
    stroke: getComputedStyle(p).stroke})),
  bars: Array.from(svg.querySelectorAll('rect.bar')).filter(r => r.getBBox().height > 0).length}))"""


def column(browser: Browser, table: str, index: int) -> list[float]:
    values = browser.js(
        f"Array.from(document.querySelectorAll('#{table} tbody tr')).map(r => r.cells[{index}].dataset.v)"
    )
    return [float(v) for v in values]


def test_the_report_in_a_browser(browser: Browser, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text(render_html(full_results(120, full_history=True)), encoding="utf-8")
    browser.open(report)
    assert browser.js("document.title") == "lrun report: shop checkout"
    charts = browser.js(CHARTS)
    assert len(charts) == 11  # ten over time and the distribution
    for chart in charts:
        assert not chart["empty"] and chart["width"] > 300, chart
        if chart["id"] == "chart-distribution":
            assert chart["bars"] >= 3
            continue
        assert chart["lines"], chart["id"]
        for line in chart["lines"]:
            # drawn: a path with length across most of the plot, in a colour (not the default black or none)
            assert line["length"] > 100 and line["width"] > 200, (chart["id"], line)
            assert line["stroke"] not in ("none", "rgb(0, 0, 0)"), (chart["id"], line)

    # sorting: a numeric column sorts descending first, then ascending; text sorts ascending first
    p95 = 9  # method, name, count, failures, failed, avg, min, p50, p90, p95
    browser.click("#table-requests thead th:nth-child(10)")
    values = column(browser, "table-requests", p95)
    assert values == sorted(values, reverse=True) and values[0] > values[-1]
    browser.click("#table-requests thead th:nth-child(10)")
    assert column(browser, "table-requests", p95) == sorted(values)
    browser.click("#table-requests thead th:nth-child(2)")
    names = browser.js(
        "Array.from(document.querySelectorAll('#table-requests tbody tr')).map(r => r.cells[1].textContent)"
    )
    assert names == sorted(names)
    assert browser.js("document.querySelector('#table-requests thead th:nth-child(2)').getAttribute('aria-sort')") == (
        "ascending"
    )

    # hover: the read-out shows the time and each line's value under the mouse
    browser.hover("#chart-throughput", 0.5)
    tip = browser.js("(() => { const t = document.getElementById('tip'); return [t.hidden, t.innerText]; })()")
    assert tip[0] is False and "requests/s:" in tip[1] and "failures/s:" in tip[1], tip
    assert browser.problems() == []
    data = browser.screenshot(ARTIFACTS / "report.png")
    assert data.startswith(b"\x89PNG") and len(data) > 50_000


def test_comparison_and_empty_reports_in_a_browser(browser: Browser, tmp_path: Path) -> None:
    comparison = tmp_path / "comparison.html"
    comparison.write_text(render_html([run_results(60), run_results(60, slow=1.4)], labels=["before", "after"]))
    browser.open(comparison)
    charts = browser.js(CHARTS)
    assert [c["id"] for c in charts] == ["chart-cmp-rps", "chart-cmp-p95", "chart-cmp-users"]
    for chart in charts:
        assert [line["label"] for line in chart["lines"]] == ["before", "after"]
        assert all(line["length"] > 100 for line in chart["lines"]), chart
    browser.click("#table-requests thead tr:nth-child(2) th:nth-child(4)")  # p95 of the second run
    values = column(browser, "table-requests", 4)
    assert values == sorted(values, reverse=True)
    assert browser.problems() == []
    browser.screenshot(ARTIFACTS / "comparison.png")

    empty = tmp_path / "empty.html"
    empty.write_text(render_html(empty_results()))
    browser.open(empty)
    charts = browser.js(CHARTS)
    assert charts and all(c["empty"] and not c["lines"] for c in charts)
    assert "This run made no requests" in browser.js("document.getElementById('verdict').innerText")
    browser.hover("#chart-throughput", 0.5)  # nothing to read out, and no error either
    assert browser.problems() == []
    browser.screenshot(ARTIFACTS / "empty.png")

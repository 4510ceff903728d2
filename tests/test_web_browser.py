"""The web UI in a real browser: Playwright driving Debian's chromium against a real ``lrun --web`` process and
the demo target. What a person does: a bad value, start from the form, rows fill, charts draw, more users live,
a row's own chart, stop, download the CSV, reload and find the history. Without playwright or chromium the tests
skip (fail under CI=true: tests/browser.py)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import colored_pixels, launch
from web_process import WebLrun, http

from conftest import ROOT, SCENARIOS

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "tests" / "artifacts"
WAIT = 30_000  # ms: generous, the machine is shared


@pytest.fixture
def context() -> Iterator[Any]:
    """A browser context; the page's CSP forbids eval, and Playwright's own probes (wait_for_function) need it."""
    with launch(viewport={"width": 1280, "height": 1000}, accept_downloads=True, bypass_csp=True) as context:
        yield context


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_a_test_from_the_form_to_the_history(context: Any, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with WebLrun(str(SCENARIOS / "quickstart.yaml")) as web:
        page = context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        refused: list[str] = []  # the bad value's 400, which the browser logs as a console error
        page.on("response", lambda response: refused.append(response.url) if response.status >= 400 else None)
        page.goto(web.url)

        # a bad value: the error shows at its field and nothing starts
        page.fill("#start-form input[name=user_count]", "lots")
        page.click("#start-form button[type=submit]")
        error = page.locator('#start-form .error[data-for="user_count"]')
        expect(error).to_contain_text("expected a whole number", timeout=WAIT)
        assert http(f"{web.url}/stats/requests").json()["state"] == "ready"

        page.fill("#start-form input[name=user_count]", "3")
        page.fill("#start-form input[name=spawn_rate]", "10")
        page.click("#start-form button[type=submit]")
        expect(page.locator("#state")).to_have_text("running", timeout=WAIT)
        rows_with = """names => names.every(name => Array.from(document.querySelectorAll('#stats-table tbody tr'))
            .some(tr => tr.children[1].textContent === name && Number(tr.children[2].textContent) > 0))"""
        page.wait_for_function(rows_with, arg=["/items", "/login", "/items/[id]"], timeout=WAIT)

        page.click("#tabs button[data-tab=charts]")
        page.wait_for_function("ui.charts['chart-rps'].data[0].length >= 3", timeout=WAIT)
        assert colored_pixels(page, "chart-rps") > 50
        assert colored_pixels(page, "chart-rt") > 50
        # where the time went, over time: the TTFB line (the 6th series) draws the seconds' averages
        page.wait_for_function("ui.charts['chart-phases'].data[5].some(v => v > 0)", timeout=WAIT)
        assert colored_pixels(page, "chart-phases") > 50

        # more users, live: the users figure and the users line move
        page.fill("#change-form input[name=user_count]", "6")
        page.click("#change-form button[type=submit]")
        expect(page.locator("#users")).to_have_text("6", timeout=WAIT)
        page.wait_for_function("ui.charts['chart-users'].data[1].slice(-1)[0] === 6", timeout=WAIT)

        # one row's own charts
        page.click("#tabs button[data-tab=stats]")
        page.locator("#stats-table tbody tr", has_text="/items/[id]").first.click()
        expect(page.locator("#entry-title")).to_contain_text("/items/[id]", timeout=WAIT)
        page.wait_for_function("ui.charts['chart-entry-rt'].data[0].length >= 1", timeout=WAIT)
        page.wait_for_function("ui.charts['chart-entry-phases'].data[5].some(v => v > 0)", timeout=WAIT)  # its TTFB
        page.screenshot(path=str(ARTIFACTS / "web_charts.png"), full_page=True)

        # lrun's own panels: resources, checkpoints, the log
        page.click("#tabs button[data-tab=resources]")
        expect(page.locator("#resources tbody tr").first).to_contain_text("lrun", timeout=WAIT)
        page.click("#tabs button[data-tab=checks]")
        expect(page.locator("#checks tbody tr", has_text="GET /login").first).to_be_visible(timeout=WAIT)
        page.click("#tabs button[data-tab=log]")
        expect(page.locator("#log")).to_contain_text("test 1 started from the web UI", timeout=WAIT)

        page.click("#stop")
        expect(page.locator("#state")).to_have_text("stopped", timeout=WAIT)
        # the end adds its last points at once (the part-second among them): the page gets them all, unreloaded
        server = [point[0] for point in http(f"{web.url}/api/series?key=total").json()["points"]]
        page.wait_for_function(
            "t => JSON.stringify(ui.series.total.map(p => p[0])) === t",
            arg=json.dumps(server, separators=(",", ":")),
            timeout=WAIT,
        )
        # each second's phase averages are the server's own (its series points' timings), as the page holds them
        body = http(f"{web.url}/api/series?key=total").json()
        ttfb = body["columns"].index("ttfb_ms")
        served = [point[ttfb] for point in body["points"]]
        assert any(served) and served == page.evaluate("ui.series.total.map(p => p[C.ttfb_ms])")

        page.click("#tabs button[data-tab=history]")
        with page.expect_download(timeout=WAIT) as download:
            page.click("#dl-stats")
        saved = tmp_path / "stats.csv"
        download.value.save_as(saved)
        rows = list(csv.reader(saved.open(encoding="utf-8")))
        assert rows[0][:3] == ["Type", "Name", "Request Count"]
        assert rows[-1][1] == "Aggregated" and int(rows[-1][2]) > 0

        # a reload keeps what was seen: the history and the chart lines (the server keeps the series)
        seen = page.evaluate("ui.series.total.length")
        page.reload()
        page.click("#tabs button[data-tab=history]")
        expect(page.locator("#history tbody tr")).to_have_count(1, timeout=WAIT)
        expect(page.locator("#history tbody tr").first).to_contain_text("stopped from the web UI")
        page.wait_for_function(f"ui.series.total.length >= {seen}", timeout=WAIT)
        page.click("#tabs button[data-tab=charts]")
        page.wait_for_function("ui.charts['chart-rps'].data[0].length >= 3", timeout=WAIT)

        # and a new test after the end
        page.click("#new-test")
        page.fill("#start-form input[name=user_count]", "1")
        page.fill("#start-form input[name=run_time]", "2s")
        page.click("#start-form button[type=submit]")
        page.click("#tabs button[data-tab=history]")
        expect(page.locator("#history tbody tr")).to_have_count(2, timeout=WAIT)
        page.screenshot(path=str(ARTIFACTS / "web_history.png"), full_page=True)
        assert refused == [f"{web.url}/swarm"]
        assert [p for p in problems if "status of 400" not in p] == []


def test_the_master_page_shows_every_worker(context: Any, demo_url: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with WebLrun(str(SCENARIOS / "quickstart.yaml"), "-H", demo_url, "--processes", "2") as web:
        page = context.new_page()
        page.goto(web.url)
        page.click("#tabs button[data-tab=resources]")
        workers = page.locator("#workers tbody tr")
        expect(workers).to_have_count(2, timeout=WAIT)
        for row in workers.all():
            expect(row).to_contain_text("ready", timeout=WAIT)
        page.fill("#start-form input[name=user_count]", "4")
        page.fill("#start-form input[name=spawn_rate]", "20")
        page.fill("#start-form input[name=run_time]", "")
        page.click("#start-form button[type=submit]")
        expect(page.locator("#users")).to_have_text("4", timeout=WAIT)
        # each worker runs its share: the users column (4th) says 2 on both rows
        page.wait_for_function(
            "Array.from(document.querySelectorAll('#workers tbody tr')).every(r => r.children[3].textContent === '2')",
            timeout=WAIT,
        )
        page.screenshot(path=str(ARTIFACTS / "web_workers.png"), full_page=True)
        page.click("#stop")
        expect(page.locator("#state")).to_have_text("stopped", timeout=WAIT)

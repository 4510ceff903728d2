"""The HTML report in a real browser: Playwright for Python driving Debian's headless Chromium.

Checks what a person would see: no console errors, no network request, every chart drew its lines, clicking a
column header sorts the table, hovering a chart shows its values. A screenshot of each page is saved under
``tests/artifacts/`` (git-ignored) for a person to look at. Without Chromium the tests skip, and fail under CI.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import launch, watch
from report_data import empty_results, full_results, run_results

from conftest import ROOT
from runner.report.html import render_html

ARTIFACTS = ROOT / "tests" / "artifacts"


class Page:
    """One page of the report in the browser, with the problems seen since it was opened."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.seen: list[str] = watch(page)

    def open(self, path: Path) -> None:
        self.seen.clear()
        self.page.goto(path.as_uri(), wait_until="load")

    def js(self, expression: str) -> Any:
        return self.page.evaluate(expression)

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (Playwright scrolls it into view first)."""
        self.page.click(selector)

    def hover(self, selector: str, fraction: float) -> None:
        element = self.page.locator(selector)
        element.scroll_into_view_if_needed()
        box = element.bounding_box()
        assert box is not None, f"{selector} is not displayed"
        self.page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] / 2)

    def problems(self) -> list[str]:
        return list(self.seen)

    def screenshot(self, path: Path) -> bytes:
        path.parent.mkdir(parents=True, exist_ok=True)
        return self.page.screenshot(path=str(path), full_page=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Page]:
    with launch(viewport={"width": 1280, "height": 1800}) as context:
        yield Page(context.new_page())


CHARTS = """Array.from(document.querySelectorAll('svg.chart:not(.scatter)')).map(svg => ({
  id: svg.id, empty: svg.classList.contains('empty'), width: svg.getBoundingClientRect().width,
  lines: Array.from(svg.querySelectorAll('path.line')).map(p => ({
    label: p.dataset.label, length: p.getTotalLength(), width: p.getBBox().width,
    stroke: getComputedStyle(p).stroke})),
  bars: Array.from(svg.querySelectorAll('rect.bar')).filter(r => r.getBBox().height > 0).length}))"""


def column(browser: Page, table: str, index: int) -> list[float]:
    values = browser.js(
        f"Array.from(document.querySelectorAll('#{table} tbody tr')).map(r => r.cells[{index}].dataset.v)"
    )
    return [float(v) for v in values]


def test_the_report_in_a_browser(browser: Page, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text(render_html(full_results(120, full_history=True)), encoding="utf-8")
    browser.open(report)
    assert browser.js("document.title") == "lrun report: shop checkout"
    charts = browser.js(CHARTS)
    # ten over time, where the time went (all requests and the two timed ones), percentiles of the three requests,
    # and the distribution
    assert len(charts) == 17
    phases = {c["id"]: sorted(line["label"] for line in c["lines"]) for c in charts if c["id"].startswith("chart-ph")}
    assert phases == {key: ["Receive", "Send", "TTFB"] for key in ("chart-phases", "chart-phases-0", "chart-phases-1")}
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


def test_comparison_and_empty_reports_in_a_browser(browser: Page, tmp_path: Path) -> None:
    comparison = tmp_path / "comparison.html"
    comparison.write_text(render_html([run_results(60), run_results(60, slow=1.4)], labels=["before", "after"]))
    browser.open(comparison)
    charts = browser.js(CHARTS)
    assert [c["id"] for c in charts] == ["chart-cmp-rps", "chart-cmp-p95", "chart-cmp-users"]
    for chart in charts:
        assert [line["label"] for line in chart["lines"]] == ["before", "after"]
        assert all(line["length"] > 100 for line in chart["lines"]), chart
    browser.click("#table-requests thead tr:nth-child(2) th:nth-child(5)")  # p95 of the second run
    values = column(browser, "table-requests", 5)
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


def test_the_browser_sees_what_breaks_a_page(browser: Page, tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<html><body><img src='http://127.0.0.1:9/x.png'>"
        "<script>console.error('drawn wrong'); undefinedFunction();</script></body></html>"
    )
    browser.open(broken)
    found = browser.problems()
    assert any(p.startswith("console error: drawn wrong") for p in found), found
    assert any(p.startswith("exception:") and "undefinedFunction" in p for p in found), found
    assert "request: http://127.0.0.1:9/x.png" in found, found

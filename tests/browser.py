"""Pages in a real browser for tests: Playwright for Python on Debian's ``chromium`` (no browser download).

``launch()`` gives a headless Chromium; ``watch(page)`` collects what a person would call a broken page: console
errors and warnings, uncaught exceptions, and any request that leaves the page's own files. Without Chromium or
Playwright the tests skip and say why, except under CI (``CI=true``), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = os.environ.get("LRUN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
LOCAL = ("file:", "data:", "about:", "blob:")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the browser tests must run in CI)", pytrace=False)
    pytest.skip(reason)


@contextmanager
def launch(**context: Any) -> Iterator[Any]:
    """A headless Chromium (Playwright's sync API) and one browser context with ``context`` options."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[test]'")
    if CHROMIUM is None:
        _unavailable("no chromium on PATH: apt-get install chromium (.ci/run does) to test pages")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-quic"], timeout=60_000
        )
        try:
            ctx = browser.new_context(**context)
            ctx.set_default_timeout(30_000)
            yield ctx
            ctx.close()  # writes the HAR of record_har_path=
        finally:
            browser.close()


def watch(page: Any) -> list[str]:
    """A list that fills with the page's problems from now on (console errors, exceptions, network requests)."""
    found: list[str] = []

    def console(message: Any) -> None:
        if message.type in ("error", "assert", "warning"):
            found.append(f"console {message.type}: {message.text}")

    def request(sent: Any) -> None:
        if not sent.url.startswith(LOCAL):
            found.append(f"request: {sent.url}")

    page.on("console", console)
    page.on("pageerror", lambda error: found.append(f"exception: {error}"))
    page.on("request", request)
    return found


def colored_pixels(page: Any, chart: str) -> int:
    """Pixels of the chart's canvas that are neither blank nor grey: drawn series."""
    return page.evaluate(
        """id => {
            const canvas = document.querySelector(`#${id} canvas`);
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            let n = 0;
            for (let i = 0; i < data.length; i += 4) {
                const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
                if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) n++;
            }
            return n;
        }""",
        chart,
    )

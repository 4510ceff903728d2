"""A recording made by a real browser: Chromium (Playwright) walks the demo shop with HAR recording on; the
imported scenario then runs against a fresh demo target, where its logins and orders must succeed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT, run_lrun

pytest.importorskip("playwright", reason="playwright (the test extra) drives Chromium")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("chromium") is None or not Path("/usr/bin/chromium").exists(),
        reason="no /usr/bin/chromium: apt-get install chromium (.ci/run does)",
    ),
]


def demo_stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/__stats", timeout=10) as answer:
        return json.load(answer)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from runner.demo import start_demo

    har = tmp_path_factory.mktemp("browser") / "shop.har"
    with start_demo() as demo:
        walk = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "record_shop.py"), demo.url, str(har)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert walk.returncode == 0, walk.stderr
        assert "Thank you: order 1 ok" in walk.stdout
        assert demo_stats(demo.url)["logins"] == 1
    return har


def test_browser_recording_replays_against_a_fresh_demo(recording: Path, tmp_path: Path) -> None:
    from runner.demo import start_demo

    scenario = tmp_path / "shop.yaml"
    result = run_lrun("import", str(recording), "-o", str(scenario), "--think", "none")
    assert result.returncode == 0, result.stderr
    for name, extractor in [
        ("session", 'xpath: //input[@name="session"]/@value'),
        ("token", "jsonpath: $.token"),
        ("csrf_token", 'xpath: //meta[@name="csrf-token"]/@content'),
        ("cart_id", "boundary"),
        ("order_id", "header: Location, regex: ^(?:https?://[^/]+)?/shop/orders/(\\d+)(?=[?#]|$)"),
    ]:
        assert f"correlated {name} = " in result.stderr and extractor in result.stderr, (name, result.stderr)
    assert "static assets" in result.stderr  # the stylesheet, twice
    assert run_lrun("validate", str(scenario)).returncode == 0
    text = scenario.read_text()
    assert "transaction: Shop login" in text and "transaction: Checkout" in text
    assert "/shop/orders/[^/?&#]+$" in text  # the order's redirect is checked by where it goes, not only 303
    assert text.count("on_fail: stop_iteration") == 1  # the login's checks (one: it answers JSON, no redirect)
    with start_demo() as demo:
        run = run_lrun(str(scenario), "-H", demo.url, "-u", "2", "-i", "2", "--only-summary")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "0 failed" in run.stdout
        stats = demo_stats(demo.url)
        assert stats["logins"] == 4
        assert [(o["user"], o["item"]) for o in stats["orders"]] == [("alice", 3)] * 4


def test_browser_recording_verifies(recording: Path) -> None:
    from runner.demo import start_demo

    with start_demo() as demo:
        result = run_lrun("import", str(recording), "--think", "none", "--verify", "-H", demo.url)
        assert result.returncode == 0, result.stderr
        assert "verify: every status as recorded" in result.stderr

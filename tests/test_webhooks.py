"""``--webhook``: a real receiver on loopback gets the tripped rule and the run's end, Slack/Teams style."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port
from outputs_helpers import Receiver

from conftest import run_lrun


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver(fail_first=1)
    yield hook
    hook.close()


def test_a_tripped_threshold_and_the_end_reach_the_webhook(tmp_path: Path, demo_url: str, receiver: Receiver) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        f"name: hooked\nhost: {demo_url}\nusers:\n  u:\n    sequence:\n      - get: /missing\n"
        "thresholds:\n  - {expect: 'errors < 1%', abort: true}\n"
    )
    report = tmp_path / "report.html"
    done = run_lrun(str(scenario), "-t", "30", "--webhook", receiver.url, "--html", str(report), "--only-summary")
    assert done.returncode == 1, done.stderr
    assert receiver.attempts == len(receiver.bodies) + 1  # the first one was refused, and retried
    tripped, end = sorted(receiver.bodies, key=lambda b: b["lrun"]["event"] == "finished")  # retried: any order
    assert "threshold errors < 1% tripped" in tripped["text"] and tripped["lrun"]["event"] == "rule"
    assert end["lrun"]["event"] == "finished" and end["lrun"]["passed"] is False
    assert end["text"].startswith("lrun hooked: FAILED (threshold errors < 1% failed")
    assert f"{end['lrun']['requests']} requests, {end['lrun']['failures']} failed" in end["text"]
    assert end["lrun"]["requests"] > 0 and end["lrun"]["failures"] == end["lrun"]["requests"]
    assert end["lrun"]["report"] == [str(report.resolve())] and str(report.resolve()) in end["text"]
    assert "webhook" not in done.stderr  # delivered: nothing to warn about
    assert receiver.url not in done.stderr  # a webhook URL is a secret: never logged


def test_a_webhook_that_is_down_is_one_warning_and_never_fails_the_run(tmp_path: Path, demo_url: str) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"name: quiet\nhost: {demo_url}\nusers:\n  u:\n    sequence:\n      - get: /\n")
    down = f"http://127.0.0.1:{free_port()}/hook"
    done = run_lrun(str(scenario), "-t", "2", "--webhook", down, "--only-summary")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("webhook: 1 notice(s) not delivered") == 1
    assert "Traceback" not in done.stderr

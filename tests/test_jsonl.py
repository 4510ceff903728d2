"""``--jsonl FILE``: a JSON line of figures a second, written while the run goes on; the lines add up to the
results' totals, and to what the target itself counted. Real ``lrun`` processes against the demo target."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from helpers import demo_reset, demo_stats, requests_sent, write

from conftest import ROOT, lrun_command, run_lrun

SCENARIO = "users: {u: {think: 50ms, sequence: [{get: /items}, {get: /about}]}}\n"


def lines(path: Path) -> list[dict]:
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.endswith("}")]


def test_jsonl_is_written_live_and_adds_up_to_the_results(tmp_path: Path, demo_url: str) -> None:
    scenario = write(tmp_path, SCENARIO)
    stream, results = tmp_path / "live.jsonl", tmp_path / "r.json"
    demo_reset(demo_url)
    command = [*lrun_command(), "run", str(scenario), "-H", demo_url, "-u", "3", "-r", "10", "-t", "6s"]
    process = subprocess.Popen(
        [*command, "--jsonl", str(stream), "--json", str(results), "--only-summary"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while len(lines(stream)) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        seen_live = lines(stream)
        running = process.poll() is None
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == 0, out + err
    assert running and len(seen_live) >= 2, "no line while the run went on"
    assert all("final" not in line and line["users"] >= 0 and line["rps"] >= 0 for line in seen_live)

    written = lines(stream)
    done = json.loads(results.read_text())
    total = done["total"]
    assert written[-1]["final"] is True and sum("final" in line for line in written) == 1
    assert sum(line["requests"] for line in written) == total["requests"] == written[-1]["total_requests"] > 0
    assert sum(line["failures"] for line in written) == total["failures"]
    times = [line["t"] for line in written[:-1]]
    assert times == sorted(times) and len(times) >= 3  # a line a second over 6 s
    # the target's own count: every request counted, and those cut off at the stop (which it may have answered)
    served = demo_stats(demo_url)["requests"]
    assert total["requests"] <= served <= sum(requests_sent(done).values())


def test_a_bad_jsonl_path_stops_the_run_before_any_load(tmp_path: Path) -> None:
    scenario = write(tmp_path, "host: demo\n" + SCENARIO)
    result = run_lrun("run", str(scenario), "-t", "30s", "--jsonl", "/nonexistent/dir/live.jsonl")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "lrun: --jsonl /nonexistent/dir/live.jsonl: no directory /nonexistent/dir/" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("option", ["--json", "--jsonl"])
def test_every_file_option_is_checked_from_the_registry(option: str) -> None:
    from runner.output_paths import output_options

    assert option in output_options().values()

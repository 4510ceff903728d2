"""Output paths: checked before any load is sent; a writer failing at the end does not stop the others."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from helpers import write

from conftest import ROOT, lrun_command, run_lrun

SCENARIO = "host: demo\nusers: {u: {think: 50ms, sequence: [{get: /items}]}}\n"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--json", "lrun: --json /nonexistent/dir/r.json: no directory /nonexistent/dir/ (create it first)"),
        ("--html", "lrun: --html /nonexistent/dir/r.json: no directory"),
        ("--junit", "lrun: --junit /nonexistent/dir/r.json: no directory"),
        ("--csv", "lrun: --csv /nonexistent/dir/r.json: no directory"),
        ("--logfile", "lrun: --logfile /nonexistent/dir/r.json: no directory"),
    ],
)
def test_a_bad_output_path_stops_the_run_before_any_load(tmp_path: Path, option: str, message: str) -> None:
    path = write(tmp_path, SCENARIO)
    others = ["--json", str(tmp_path / "ok.json"), "--html", str(tmp_path / "ok.html")]
    if option in ("--json", "--html"):
        others = ["--junit", str(tmp_path / "ok.xml")]
    started = time.monotonic()
    result = run_lrun("run", str(path), "-t", "30s", *others, option, "/nonexistent/dir/r.json")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and message in result.stderr
    assert "Traceback" not in result.stderr and "demo target started" not in result.stderr
    assert time.monotonic() - started < 20  # not the 30 s run
    assert not list(tmp_path.glob("ok.*"))


def test_a_directory_or_read_only_place_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, SCENARIO)
    result = run_lrun("run", str(path), "--json", str(tmp_path))
    assert result.returncode == 2 and f"--json {tmp_path}: is a directory" in result.stderr
    result = run_lrun("run", str(path), "--html", "/proc/lrun.html")
    assert result.returncode == 2 and "--html /proc/lrun.html: cannot write in /proc/" in result.stderr


def test_report_output_is_checked_before_rendering(tmp_path: Path) -> None:
    result = run_lrun("report", str(tmp_path / "r.json"), "-o", "/nonexistent/dir/r.html")
    assert result.returncode == 2
    assert result.stderr.strip() == "lrun: -o /nonexistent/dir/r.html: no directory /nonexistent/dir/ (create it first)"


def test_a_writer_failing_at_the_end_does_not_stop_the_others(tmp_path: Path, demo_url: str) -> None:
    path = write(tmp_path, SCENARIO)
    doomed, kept = tmp_path / "doomed", tmp_path / "kept"
    doomed.mkdir()
    kept.mkdir()
    command = [*lrun_command(), "run", str(path), "-H", demo_url, "-u", "2", "-t", "4s"]
    command += ["--json", str(doomed / "r.json"), "--html", str(kept / "r.html")]
    command += ["--junit", str(kept / "r.xml"), "--csv", str(kept / "run")]
    returncode, stdout, stderr = _run_removing(command, doomed)
    assert returncode == 1, stdout + stderr
    assert f"results NOT written to {doomed / 'r.json'}" in stderr and "Traceback" not in stderr
    assert f"outputs lost: --json {doomed / 'r.json'}; the rest went to: CSV {kept / 'run'}_*.csv" in stdout
    assert (kept / "r.html").stat().st_size > 0 and "<testsuite" in (kept / "r.xml").read_text()
    assert (kept / "run_stats.csv").exists()
    assert "Aggregated" in stdout  # the summary is still printed
    assert not doomed.exists()


def test_the_check_leaves_no_file_behind(tmp_path: Path) -> None:
    path = write(tmp_path, SCENARIO)
    result = run_lrun("run", str(path), "--json", str(tmp_path / "r.json"), "--html", "/nonexistent/r.html")
    assert result.returncode == 2 and "--html /nonexistent/r.html" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scenario.yaml"]


def test_the_json_says_the_exit_code_when_another_output_was_lost(tmp_path: Path, demo_url: str) -> None:
    path = write(tmp_path, SCENARIO)
    doomed, kept = tmp_path / "doomed", tmp_path / "kept"
    doomed.mkdir()
    kept.mkdir()
    command = [*lrun_command(), "run", str(path), "-H", demo_url, "-u", "2", "-t", "4s"]
    command += ["--csv", str(doomed / "run"), "--json", str(kept / "r.json")]
    returncode, stdout, stderr = _run_removing(command, doomed)
    assert returncode == 1, stdout + stderr
    assert f"outputs lost: --csv {doomed / 'run'}_*.csv; the rest went to: results {kept / 'r.json'}" in stdout
    results = json.loads((kept / "r.json").read_text())
    assert results["total"]["requests"] > 0 and results["total"]["failures"] == 0
    assert results["exit_code"] == 1 and results["passed"] is False  # what the process exits with


def _run_removing(command: list[str], doomed: Path) -> tuple[int, str, str]:
    """Run ``command``; once its load starts, remove ``doomed`` so an output cannot be written at the end."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        assert process.stderr is not None
        for line in process.stderr:
            if "starting" in line or time.monotonic() > deadline:
                break
        shutil.rmtree(doomed)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    return process.returncode, stdout, stderr

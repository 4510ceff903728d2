"""End to end: ``lrun run --html/--junit``, ``lrun report`` and ``lrun validate --format``, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from helpers import write
from lxml import etree
from lxml import html as lxml_html
from report_data import empty_results, run_results

from conftest import ROOT, lrun_command, run_lrun
from runner.report.results import write_json

JUNIT_XSD = etree.XMLSchema(etree.parse(str(ROOT / "tests" / "data" / "junit.xsd")))
SCENARIO = """
host: demo
users:
  u:
    think: 20ms
    sequence:
      - get: /items
        check: {status: 200}
      - get: "/fail?status=503"
        name: /fail
thresholds:
  - p95 < 2s
  - errors < 1%
"""


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


def test_a_run_writes_the_html_report_and_junit(tmp_path: Path, demo_url: str) -> None:
    path = write(tmp_path, SCENARIO)
    html, xml = tmp_path / "report.html", tmp_path / "junit.xml"
    result = run_lrun(
        "run", str(path), "-H", demo_url, "-u", "2", "-t", "3s", "--only-summary", "--html", str(html),
        "--junit", str(xml), "--json", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr  # errors < 1% fails: half the requests fail
    assert f"HTML report written to {html}" in result.stderr and f"JUnit XML written to {xml}" in result.stderr
    doc = lxml_html.fromstring(html.read_text())
    verdict = " ".join(doc.get_element_by_id("verdict").text_content().split())
    assert verdict.startswith("FAILED") and "errors < 1%" in verdict
    names = [" ".join(r.text_content().split()) for r in doc.get_element_by_id("table-requests").find("tbody")]
    assert names[0].startswith("GET /fail") and names[1].startswith("GET /items")
    assert doc.get_element_by_id("chart-throughput").findall(".//path")
    assert doc.get_element_by_id("chart-cpu").findall(".//path")  # resources are monitored in every run
    root = etree.parse(str(xml)).getroot()
    JUNIT_XSD.assertValid(root)
    failed = {c.get("name") for c in root.iter("testcase") if c.find("failure") is not None}
    assert "errors < 1% [all requests]" in failed and "GET /fail: status < 400" in failed  # a checkpoint
    assert "p95 < 2s [all requests]" not in failed
    # the results the run handed its writers are the file: rendered again from it, the same report (but for the
    # time it was generated) and the same JUnit XML
    later, later_xml = tmp_path / "later.html", tmp_path / "later.xml"
    again = run_lrun("report", str(tmp_path / "r.json"), "-o", str(later), "--junit", str(later_xml))
    assert again.returncode == 0, again.stderr

    def body(text: str) -> str:
        return text.split("<footer>")[0]

    assert body(later.read_text()) == body(html.read_text())
    assert later_xml.read_text() == xml.read_text()


def apdex_column(path: Path) -> dict[str, str]:
    """Request name -> its Apdex cell in the report's requests table."""
    table = lxml_html.fromstring(path.read_text()).get_element_by_id("table-requests")
    column = [" ".join(th.itertext()).strip() for th in table.find("thead").iter("th")].index("Apdex")
    rows = [[" ".join(td.itertext()).strip() for td in tr.iter("td")] for tr in table.find("tbody").iter("tr")]
    return {cells[1]: cells[column] for cells in rows}


def test_run_apdex_t_goes_into_the_report_and_the_results(tmp_path: Path, demo_url: str) -> None:
    """``lrun run --apdex-t 100ms``: the run's HTML report judges by it (150 ms responses are tolerating: 0.50), the
    results record it, and ``lrun report`` renders the file with it again unless given another T."""
    path = write(tmp_path, "host: demo\nusers:\n  u:\n    sequence:\n      - get: /slow?ms=150\n        name: /slow\n")
    html, results = tmp_path / "run.html", tmp_path / "r.json"
    done = run_lrun(
        "run", str(path), "-H", demo_url, "-u", "2", "-i", "4", "-t", "20s", "--only-summary",
        "--apdex-t", "100ms", "--html", str(html), "--json", str(results),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(results.read_text())
    assert data["total"]["requests"] == 8 and data["apdex_t_ms"] == 100
    assert apdex_column(html) == {"/slow": "0.50"}  # 150 ms: above T, within 4 T
    assert "Apdex with T = 100 ms" in " ".join(lxml_html.fromstring(html.read_text()).text_content().split())
    again, other = tmp_path / "again.html", tmp_path / "other.html"
    assert run_lrun("report", str(results), "-o", str(again)).returncode == 0
    assert again.read_text().split("<footer>")[0] == html.read_text().split("<footer>")[0]  # the run's T
    assert run_lrun("report", str(results), "-o", str(other), "--apdex-t", "1s").returncode == 0
    assert apdex_column(other) == {"/slow": "1.00"}  # told another T
    # a settings file's value is checked before any load, with its source named
    (tmp_path / "lrun.conf").write_text("apdex-t = 100\n")
    bad = run_lrun("run", str(path), "-H", demo_url, "-i", "1", "--html", str(tmp_path / "no.html"), cwd=tmp_path)
    no_traceback(bad)
    assert bad.returncode == 2 and not (tmp_path / "no.html").exists(), bad.stderr
    assert "--apdex-t from" in bad.stderr and "lrun.conf" in bad.stderr and "give a unit" in bad.stderr


def test_ctrl_c_still_writes_the_report_and_junit(tmp_path: Path, demo_url: str) -> None:
    path = write(tmp_path, "host: demo\nusers: {u: {think: 50ms, sequence: [{get: /items}]}}\n")
    env = {**os.environ, "LRUN_HTML": str(tmp_path / "r.html"), "LRUN_JUNIT": str(tmp_path / "j.xml")}
    process = subprocess.Popen(
        [*lrun_command(), "run", str(path), "-H", demo_url, "-u", "2", "-t", "60s", "--only-summary"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        for line in process.stderr:
            if "users running" in line or time.monotonic() > deadline:
                break
        time.sleep(1.5)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0
    doc = lxml_html.fromstring((tmp_path / "r.html").read_text())
    assert "interrupted" in doc.get_element_by_id("verdict").text_content()
    JUNIT_XSD.assertValid(etree.parse(str(tmp_path / "j.xml")))


def test_report_from_saved_results(tmp_path: Path) -> None:
    saved = tmp_path / "results.json"
    write_json(run_results(10), saved)
    result = run_lrun("report", str(saved), "-o", str(tmp_path / "out.html"), "--junit", str(tmp_path / "j.xml"))
    assert result.returncode == 0, result.stderr
    assert f"report written to {tmp_path / 'out.html'}" in result.stdout
    assert "shop checkout" in (tmp_path / "out.html").read_text()
    JUNIT_XSD.assertValid(etree.parse(str(tmp_path / "j.xml")))
    default = run_lrun("report", str(saved), cwd=tmp_path)  # -o defaults to report.html here
    assert default.returncode == 0 and (tmp_path / "report.html").is_file()


def test_report_compares_two_runs(tmp_path: Path) -> None:
    write_json(run_results(10), tmp_path / "before.json")
    write_json(run_results(10, slow=2.0), tmp_path / "after.json")
    result = run_lrun("report", str(tmp_path / "before.json"), str(tmp_path / "after.json"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "comparison of 2 runs written to comparison.html" in result.stdout
    doc = lxml_html.fromstring((tmp_path / "comparison.html").read_text())
    heads = [th.text for th in doc.get_element_by_id("table-summary").find("thead").iter("th")]
    assert heads == ["Metric", "before", "after"]
    worse = doc.xpath("//table[@id='table-summary']//tr[td[1]='p95']//span[@class='delta worse']")
    assert worse and worse[0].text.startswith("+")


def test_report_of_a_run_without_requests(tmp_path: Path) -> None:
    write_json(empty_results(), tmp_path / "empty.json")
    result = run_lrun("report", str(tmp_path / "empty.json"), "-o", str(tmp_path / "e.html"))
    assert result.returncode == 0, result.stderr
    assert "This run made no requests" in (tmp_path / "e.html").read_text()


def test_report_bad_input_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    write_json(run_results(3), good)
    text = good.read_text()
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    (tmp_path / "foreign.json").write_text(json.dumps({"name": "package.json", "version": "1.0.0"}))
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    cases = {
        "cut.json": "truncated: the JSON ends early; not a complete lrun results file",
        "foreign.json": 'not an lrun results file (no "format": "lrun-results" in it)',
        "list.json": "not an lrun results file",
        "missing.json": "no such results file",
    }
    for name, message in cases.items():
        result = run_lrun("report", str(tmp_path / name), "-o", str(tmp_path / "x.html"))
        assert result.returncode == 2, (name, result.stderr)
        assert result.stderr.startswith(f"lrun: {tmp_path / name}: {message}"), result.stderr
        no_traceback(result)
    assert not (tmp_path / "x.html").exists()
    mixed = run_lrun("report", str(good), str(tmp_path / "cut.json"), "-o", str(tmp_path / "x.html"))
    assert mixed.returncode == 2 and "truncated" in mixed.stderr
    unwritable = run_lrun("report", str(good), "-o", str(tmp_path / "no" / "such" / "dir.html"))
    assert unwritable.returncode == 2 and "no directory" in unwritable.stderr  # checked before rendering
    no_traceback(unwritable)
    two_junit = run_lrun("report", str(good), str(good), "--junit", str(tmp_path / "j.xml"))
    assert two_junit.returncode == 2 and "--junit takes one results file" in two_junit.stderr


def test_validate_formats_for_ci(tmp_path: Path) -> None:
    write(tmp_path, "host: demo\nusers: {u: {sequence: [{get: /, hedaers: {}}]}}\n", "bad.yaml")
    write(tmp_path, "users: {u: {sequence: [{get: /}]}}\n", "nohost.yaml")  # a warning: no host
    write(tmp_path, "host: demo\nusers: {u: {sequence: [{get: /}]}}\n", "good.yaml")
    as_json = run_lrun("validate", "--format", "json", str(tmp_path))
    assert as_json.returncode == 2
    report = json.loads(as_json.stdout)
    files = {Path(f["path"]).name: f for f in report["files"]}
    assert report["valid"] is False and files["good.yaml"] == {"path": files["good.yaml"]["path"], "valid": True,
                                                                "problems": []}  # fmt: skip
    problem = files["bad.yaml"]["problems"][0]
    assert (problem["line"], problem["col"], problem["severity"]) == (2, 33, "error")
    assert problem["message"] == "unknown key 'hedaers'" and problem["hint"] == "did you mean 'headers'?"
    assert files["nohost.yaml"]["valid"] is True and files["nohost.yaml"]["problems"][0]["severity"] == "warning"
    strict = json.loads(run_lrun("validate", "--format", "json", "--strict", str(tmp_path / "nohost.yaml")).stdout)
    assert strict["valid"] is False
    as_junit = run_lrun("validate", "--format", "junit", str(tmp_path))
    assert as_junit.returncode == 2
    root = etree.fromstring(as_junit.stdout.encode())
    JUNIT_XSD.assertValid(root)
    failing = {Path(c.get("name")).name for c in root.iter("testcase") if c.find("failure") is not None}
    assert failing == {"bad.yaml"}
    ok = run_lrun("validate", "--format", "junit", str(tmp_path / "good.yaml"))
    assert ok.returncode == 0 and 'failures="0"' in ok.stdout
    assert run_lrun("validate", "--format", "yaml", str(tmp_path)).returncode == 2

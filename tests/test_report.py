"""The HTML report and the JUnit XML, rendered from typed results: every part shown, small, self-contained, valid."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lxml import etree
from lxml import html as lxml_html
from report_data import START, empty_results, full_results, run_results

from conftest import ROOT
from runner.report import charts, formats
from runner.report.apdex import apdex
from runner.report.html import delta, render_html
from runner.report.junit import junit_xml, validation_junit
from runner.report.model import Results
from runner.stats.histogram import Histogram

JUNIT_XSD = etree.XMLSchema(etree.parse(str(ROOT / "tests" / "data" / "junit.xsd")))


def page(text: str) -> Any:
    return lxml_html.fromstring(text)


def points(path: Any) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(r"[ML]([\d.-]+) ([\d.-]+)", path.get("d"))]


def section_text(doc: Any, section: str) -> str:
    return " ".join(" ".join(doc.get_element_by_id(section).itertext()).split())


# ----------------------------------------------------------------------------------------------- charts


def test_downsample_keeps_extremes_order_and_gaps() -> None:
    data = [(float(t), float(t % 7)) for t in range(1000)]
    data[500] = (500.0, 99.0)  # a spike
    data[700] = (700.0, None)  # a gap
    out = charts.downsample(data, 50)
    assert len(out) <= 2 * 50 + 50
    assert (500.0, 99.0) in out
    assert [p[0] for p in out] == sorted(p[0] for p in out)
    assert any(y is None for _, y in out)
    assert charts.downsample(data[:20], 50) == data[:20]


def test_axes_read_well() -> None:
    assert [charts.nice_step(s) for s in (1, 7, 95, 1234)] == [0.2, 2.0, 20.0, 250.0]
    assert charts.nice_time_step(3600) == 600 and charts.nice_time_step(30) == 5
    assert formats.clock(59.6) == "1:00" and formats.clock(3725) == "1:02:05"
    assert formats.fmt_bytes(1536 * 2**20) == "1.5 GiB" and formats.fmt_bytes(None, missing="N/A") == "N/A"


def test_line_chart_draws_each_line_on_its_scales() -> None:
    svg = charts.line_chart(
        "c", [charts.Line("a", [(100.0, 0.0), (110.0, 50.0)]), charts.Line("b", [(100.0, None)])], unit="ms",
        x_origin=100.0,
    )  # fmt: skip
    root = etree.fromstring(svg)
    assert float(root.get("data-y1")) == 50 and float(root.get("data-x0")) == 100 and float(root.get("data-x1")) == 110
    paths = root.findall("path")
    assert [p.get("data-label") for p in paths] == ["a"]  # a line without data is not drawn
    (x0, y0), (x1, y1) = points(paths[0])
    assert x0 == charts.LEFT and x1 == charts.WIDTH - charts.RIGHT  # first and last point span the plot
    assert y0 == charts.HEIGHT - charts.BOTTOM and y1 == charts.TOP
    assert "no data" in charts.line_chart("e", [charts.Line("a", [])])


def test_distribution_bins_count_every_response() -> None:
    histogram = Histogram()
    for ms in (0.6, 0.9, 1.2, 1.4, 3.0, 45.0, 45.5, 2400.0):
        histogram.record(ms)
    bins = charts.distribution(histogram.to_dict()["counts"])
    assert sum(n for _, n in bins) == 8
    labels = dict(bins)
    assert labels["≤1 ms"] == 1 and labels["≤1.5 ms"] == 2 and labels["≤50 ms"] == 2 and labels["≤3 s"] == 1
    assert charts.distribution({}) == [] and charts.distribution({"1000": 0}) == []


# ----------------------------------------------------------------------------------------------- the run report


def test_report_shows_every_part_of_a_full_run() -> None:
    results = full_results(30)
    text = render_html(results)
    doc = page(text)
    assert doc.findtext(".//title") == "lrun report: shop checkout"
    header = " ".join(" ".join(doc.find(".//header").itertext()).split())
    for fact in (
        "http://127.0.0.1:8089",
        "2024-05-01 12:00:00 UTC",
        "30.0 s",
        "10 at most",
        "0.1.0",
        "--html report.html",
    ):
        assert fact in header
    verdict = section_text(doc, "verdict")
    assert verdict.startswith("FAILED exit code 1 · run time reached")
    assert "errors < 1% all requests 8.16% < 1.00% FAIL" in verdict
    assert "p99 < 800ms aborts the run POST /checkout no request named 'POST /checkout' was made" in verdict
    assert "generator_cpu above 90% for 10s" in verdict and "WARN" in verdict  # breached, action warn
    assert "target_memory[nginx] above 500MiB" in verdict
    assert "resource threshold generator_cpu above 90% for 10s: measured 97.0% for 10s" in verdict  # warnings
    summary = section_text(doc, "summary")
    for tile in (
        "390 requests",
        "30 failures · 7.69%",
        "13.0 requests/s",
        "2.00 transactions/s",
        "100 ms p95",
        "108 ms p99",
    ):
        assert tile in summary
    requests = doc.get_element_by_id("table-requests")
    names = [row.findall("td")[1].text for row in requests.find("tbody").findall("tr")]
    assert names == ["/fail", "/items", "/login"]
    assert " ".join(requests.find("tfoot").itertext()).split()[:3] == ["All", "requests", "390"]
    assert "12.5 s" in section_text(doc, "transactions")  # think time of the transaction
    assert "GET /fail status 200 0 30 0.0%" in section_text(doc, "checks")
    failures = section_text(doc, "failures")
    assert "GET /fail HTTP 500 Internal Server Error 30 +0:01 +0:30" in failures  # count, first and last seen
    assert "transaction checkout POST /login failed 2 +0:03 +0:09" in failures
    exceptions = doc.get_element_by_id("exceptions")
    assert "ZeroDivisionError: division by zero" in exceptions.find(".//pre").text  # the traceback
    rendezvous = section_text(doc, "rendezvous")
    assert "flash_sale release at 50 users, timeout 30.0 s · 75 arrivals" in rendezvous
    assert "+0:25 25 timeout 30.0 s" in rendezvous
    pools = section_text(doc, "pools")
    assert "accounts data/accounts.csv 100 unique once stop_user 100 yes, at +0:20" in pools
    assert "items inline 3 random each_iteration cycle 412 no" in pools
    resources = section_text(doc, "resources")
    assert "lrun (load generator) 97% 60 MiB" in resources and "4321 not found not found" in resources
    assert "worker-0 127.0.0.1 missing 5 50.0% 70 MiB" in section_text(doc, "workers")
    assert len(doc.get_element_by_id("chart-distribution").findall(".//rect")) > 3


def test_every_chart_of_a_full_run_draws_its_lines() -> None:
    doc = page(render_html(full_results(30, full_history=True)))
    expected = {
        "chart-throughput": ["requests/s", "failures/s"],
        "chart-response-times": ["p50", "p95", "p99", "average"],
        "chart-per-request": ["GET /fail", "GET /items", "POST /login"],
        "chart-users": ["users"],
        "chart-tps": ["transactions/s", "failed/s"],
        "chart-cpu": ["lrun", "nginx"],  # the target that was never found has no line
        "chart-memory": ["lrun", "nginx"],
        "chart-machine": ["CPU", "memory used"],
        "chart-worker-cpu": ["worker-0", "worker-1"],
        "chart-worker-memory": ["worker-0", "worker-1"],
    }
    for chart_id, labels in expected.items():
        svg = doc.get_element_by_id(chart_id)
        paths = svg.findall(".//path")
        assert sorted(p.get("data-label") for p in paths) == sorted(labels), chart_id
        assert all(len(points(p)) >= 2 for p in paths), chart_id
        legend = svg.getparent().find("div[@class='legend']")
        assert sorted(legend.itertext()) == sorted(labels), chart_id  # no legend for a line never drawn


def test_the_report_is_self_contained() -> None:
    text = render_html(full_results(30))
    doc = page(text)
    assert not doc.xpath("//script[@src] | //link | //img | //iframe | //object | //embed")
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", text)
    assert not re.search(r"url\(\s*[\"']?(https?:)?//", text)
    assert "@media print" in text
    assert len(doc.xpath("//script")) == 1  # sorting and hover, inline


def test_values_from_the_results_are_escaped() -> None:
    results = run_results(3)
    results.scenario = "<script>alert(1)</script>"
    results.errors[0].message = "<img src=x onerror=alert(1)>"
    text = render_html(results)
    assert "<script>alert(1)</script>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_a_run_without_requests_still_gives_a_valid_report() -> None:
    doc = page(render_html(empty_results()))
    verdict = section_text(doc, "verdict")
    assert "FAILED" in verdict and "This run made no requests" in verdict and "no request was made" in verdict
    assert "No requests were made." in section_text(doc, "requests")
    assert "No request failed." in section_text(doc, "failures")
    assert "0 requests" in section_text(doc, "summary") and "— p95" in section_text(doc, "summary")
    for chart in doc.xpath("//svg[contains(@class, 'chart')]"):
        assert "empty" in chart.get("class") and not chart.findall(".//path")


def test_results_with_only_the_required_keys_render() -> None:
    total = {"method": "", "name": "Aggregated", "requests": 0, "failures": 0, "failure_ratio": 0.0, "rps": 0.0}
    minimal = {
        "lrun_version": "0.1.0", "scenario": "bare", "start": "2024-05-01T12:00:00.000Z",
        "end": "2024-05-01T12:00:01.000Z", "duration_s": 1.0, "measured_s": 1.0,
        "total": {**total, "failures_per_s": 0.0}, "passed": False, "exit_code": 1,
    }  # fmt: skip
    assert set(minimal) == Results.required()
    doc = page(render_html(Results.model_validate(minimal)))
    assert "FAILED" in section_text(doc, "verdict") and "No requests were made." in section_text(doc, "requests")
    newer = {**run_results(3).to_dict(), "from_a_newer_lrun": {"x": 1}, "workers": [{"id": "w", "state": "running"}]}
    assert "w running" in section_text(page(render_html(Results.model_validate(newer))), "workers")


def test_a_one_hour_run_stays_small() -> None:
    results = full_results(3600, full_history=True)
    assert results.resources is not None
    assert len(results.series) == 3600 and len(results.resources.series) == 3600
    text = render_html(results)
    assert len(text.encode()) < 240_000, len(text.encode())  # docs: about 228 KB with every optional part
    plain = run_results(3600)
    plain.resources = results.resources
    assert len(render_html(plain).encode()) < 120_000  # docs: about 113 KB
    doc = page(text)
    for path in doc.xpath("//svg//path"):
        assert 2 <= len(points(path)) <= charts.MAX_DRAWN, path.get("data-label")
    # the spike of generator CPU (seconds 5 to 15 at 97 %) is still drawn
    cpu = next(p for p in doc.get_element_by_id("chart-cpu").findall(".//path") if p.get("data-label") == "lrun")
    assert min(y for _, y in points(cpu)) < min(y for _, y in points(cpu)[10:])


# ----------------------------------------------------------------------------------------------- comparison


def test_comparison_shows_both_runs_with_deltas() -> None:
    before, after = run_results(30), run_results(30, slow=1.5)
    after.start = "2024-05-02T09:00:00.000Z"
    doc = page(render_html([before, after], labels=["before", "after"]))
    assert doc.findtext(".//title") == "lrun comparison: shop checkout vs shop checkout"
    header = " ".join(" ".join(doc.find(".//header").itertext()).split())
    assert "before after" in header and "2024-05-02 09:00:00 UTC" in header
    rows = {
        row.findall("td")[0].text: row.findall("td")[1:]
        for row in doc.get_element_by_id("table-summary").find("tbody").findall("tr")
    }
    p95_after = rows["p95"][1]
    assert p95_after.find("span").get("class") == "delta worse" and p95_after.find("span").text.startswith("+")
    assert rows["requests"][1].find("span").text == "±0"
    table = doc.get_element_by_id("table-requests")
    login = next(r for r in table.find("tbody").findall("tr") if r.findall("td")[0].text == "POST /login")
    cells = login.findall("td")
    assert cells[5].find("span").get("class") == "delta worse"  # p95 of the second run
    assert float(cells[5].get("data-v")) > float(cells[1].get("data-v"))
    entries = [next(e for e in r.requests if e.name == "/login") for r in (before, after)]
    t_ms = float(entries[0].percentiles["50"])  # half of the requests before are satisfied
    doc = page(render_html([before, after], labels=["before", "after"], apdex_t_ms=t_ms))
    login = next(r for r in doc.get_element_by_id("table-requests").find("tbody").findall("tr")
                 if r.findall("td")[0].text == "POST /login")  # fmt: skip
    cells = login.findall("td")
    scores = [apdex(e, t_ms) for e in entries]
    assert [float(cells[4].get("data-v")), float(cells[8].get("data-v"))] == scores
    assert scores[1] < scores[0] and cells[8].find("span").get("class") == "delta worse"
    assert cells[8].find("span").text == f"{scores[1] - scores[0]:+.2f}"
    thresholds = section_text(doc, "verdict")
    assert "errors < 1% [all requests] FAIL 8.16% FAIL 8.16%" in thresholds
    for chart_id in ("chart-cmp-rps", "chart-cmp-p95", "chart-cmp-users"):
        labels = [p.get("data-label") for p in doc.get_element_by_id(chart_id).findall(".//path")]
        assert labels == ["before", "after"]


def test_delta_directions() -> None:
    assert delta(100, 120, "lower") == {"text": "+20.0%", "css": "worse"}
    assert delta(100, 80, "lower") == {"text": "-20.0%", "css": "better"}
    assert delta(10, 20, "higher") == {"text": "+100.0%", "css": "better"}
    assert delta(0, 5, "lower")["css"] == "worse" and delta(None, 5, "lower")["text"] == ""
    assert delta(5, 5, "lower") == {"text": "±0", "css": "same"}


def test_comparison_of_runs_with_different_requests() -> None:
    a, b = run_results(5), empty_results()
    doc = page(render_html([a, b]))
    rows = doc.get_element_by_id("table-requests").find("tbody").findall("tr")
    assert len(rows) == 3 and all(r.findall("td")[5].text.startswith("—") for r in rows)  # p95 of the second


# ----------------------------------------------------------------------------------------------- JUnit


def junit(results: Results) -> Any:
    root = etree.fromstring(junit_xml(results).encode())
    JUNIT_XSD.assertValid(root)
    return root


def cases(root: Any, suite: str) -> dict[str, str | None]:
    found = root.find(f"testsuite[@name='{suite}']")
    return {
        case.get("name"): (case.find("failure").get("message") if case.find("failure") is not None else None)
        for case in found.findall("testcase")
    }


def test_junit_has_a_case_per_threshold_and_checkpoint() -> None:
    root = junit(full_results(30))
    assert cases(root, "run") == {
        "shop checkout: the run passes": "exit code 1: 390 requests, 30 failed; run time reached"
    }
    assert cases(root, "thresholds") == {
        "p95 < 500ms [all requests]": None,
        "errors < 1% [all requests]": "measured 8.16%, limit < 1.00%",
        "p99 < 800ms [POST /checkout]": "no request named 'POST /checkout' was made; limit < 800.0 ms",
    }
    assert cases(root, "checkpoints") == {
        "GET /items: status 200": None,
        "GET /fail: status 200": "failed 30 of 30 times",
        "POST /login: jsonpath $.status equals 'ok'": "failed 2 of 60 times",
    }
    resources = root.find("testsuite[@name='resource thresholds']")
    # a breached warning passes (it must not turn CI red) and is said in system-out
    assert cases(root, "resource thresholds")["generator_cpu above 90% for 10s"] is None
    assert "warning: generator_cpu above 90% for 10s" in resources.findtext("system-out")
    assert root.get("tests") == "10" and root.get("failures") == "5"
    assert root.find("testsuite").get("timestamp") == "2024-05-01T12:00:00"


def test_junit_an_aborting_resource_threshold_fails() -> None:
    results = full_results(120)  # nginx grows past 500 MiB after 100 s
    assert cases(junit(results), "resource thresholds")["target_memory[nginx] above 500MiB"].startswith(
        "peak 519.0 MiB"
    )


def test_junit_without_checks_has_a_case_per_request() -> None:
    results = run_results(5)
    results.thresholds = []
    results.passed, results.exit_code = True, 0
    root = junit(results)
    assert cases(root, "checkpoints") == {
        "GET /fail: no failed requests": "5 of 5 requests failed",
        "GET /items: no failed requests": None,
        "POST /login: no failed requests": None,
    }
    failure = root.find(".//testcase[@name='GET /fail: no failed requests']/failure")
    assert failure.text == "5 × HTTP 500 Internal Server Error"
    assert cases(root, "run") == {"shop checkout: the run passes": None}
    assert cases(root, "thresholds") == {}


def test_junit_of_a_run_without_requests() -> None:
    root = junit(empty_results())
    assert cases(root, "checkpoints") == {} and cases(root, "run")["nothing: the run passes"].startswith("exit code 1")


def test_junit_of_validation() -> None:
    problem = {"line": 3, "col": 7, "severity": "error", "message": "unknown key 'hedaers'", "text": "a.yaml:3:7: …"}
    warning = {**problem, "severity": "warning", "message": "no host", "text": "b.yaml:1:1: warning: no host"}
    files = [
        {"path": "a.yaml", "valid": False, "problems": [problem, problem]},
        {"path": "b.yaml", "valid": True, "problems": [warning]},
    ]
    root = etree.fromstring(validation_junit(files).encode())
    JUNIT_XSD.assertValid(root)
    assert cases(root, "validate") == {"a.yaml": "3:7: unknown key 'hedaers' (and 1 more)", "b.yaml": None}
    strict = etree.fromstring(validation_junit(files, strict=True).encode())
    assert cases(strict, "validate")["b.yaml"] == "3:7: no host"


def test_the_start_of_the_fixture_is_what_the_report_shows() -> None:
    assert START == 1_714_564_800.0  # 2024-05-01T12:00:00Z, as the assertions above read it
    assert Path(ROOT / "runner" / "report" / "templates" / "report.html.j2").is_file()

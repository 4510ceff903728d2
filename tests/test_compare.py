"""The regression gate (``lrun compare``, ``lrun SCENARIO --baseline``) on real runs of real lrun processes against
a scripted loopback server: a build 30 % slower is caught, five A/A pairs (ten real 3 s runs, each pair's two at
once) pass,
a higher error rate is caught, a request name in one run only is reported, bad input is one line and exit 2."""

from __future__ import annotations

import html
import json
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, lrun_command, run_lrun
from runner.compare.console import value_text
from runner.compare.model import Comparison, Gated, RunRef
from runner.compare.rules import parse_rule
from runner.compare.summary import summary
from runner.report.apdex import apdex, fmt_apdex
from runner.report.formats import fmt_ms
from runner.report.results import read_json

DELAYS = {"/item": 0.060, "/list": 0.040}  # seconds, the "build" under test
PAIRS = 5


class Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection lrun closed at its end


class Scripted:
    """A loopback server with a known behaviour: each path answers after its delay × ``slower``; every
    ``fail_every``-th request answers 500. It counts what it served per path."""

    def __init__(self) -> None:
        self.slower = 1.0
        self.fail_every = 0
        self.served: Counter[str] = Counter()
        self.lock = threading.Lock()
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with scripted.lock:
                    scripted.served[self.path] += 1
                    n = sum(scripted.served.values())
                time.sleep(DELAYS.get(self.path, 0.01) * scripted.slower)
                failed = scripted.fail_every and n % scripted.fail_every == 0
                status = b"500 Internal Server Error" if failed else b"200 OK"
                # one write: headers and body in one segment (two would wait for a delayed ACK, +40 ms)
                self.wfile.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[Scripted]:
    scripted = Scripted()
    try:
        yield scripted
    finally:
        scripted.close()


def scenario(folder: Path, url: str, name: str = "gate") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nhost: {url}\nload: {{users: 4, spawn_rate: 100, run_time: 3s}}\n"
        "users:\n  shopper:\n    tasks:\n      - get: /item\n      - get: /list\n"
    )
    return path


def run(server: Scripted, path: Path, out: Path, *extra: str) -> tuple[Any, dict[str, Any], int]:
    """A real run of ``path`` (JSON to ``out``): the process, its results, the requests the server served."""
    before = sum(server.served.values())
    result = run_lrun("run", str(path), "--json", str(out), "--only-summary", *extra, timeout=120)
    assert out.exists(), result.stdout + result.stderr
    return result, json.loads(out.read_text()), sum(server.served.values()) - before


def run_pair(server: Scripted, path: Path, outs: tuple[Path, Path]) -> None:
    """Two real runs at once against the server: an A/A pair whose runs share the machine's state (a busy
    neighbour slows both), so what differs between them is the sampling noise the gate must not call a change."""
    before = sum(server.served.values())
    env = {**os.environ, "NO_COLOR": "1", "PYTHONWARNINGS": "ignore"}
    command = [*lrun_command(), "run", str(path), "--only-summary", "--json"]
    procs = [
        subprocess.Popen([*command, str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        for out in outs
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    counted = [json.loads(out.read_text()) for out in outs]
    total = sum(r["total"]["requests"] for r in counted)
    served = sum(server.served.values()) - before
    assert total <= served <= total + 8 + sum(r.get("interrupted", {}).get("total", 0) for r in counted)


@pytest.fixture(scope="module")
def runs(server: Scripted, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Five A/A pairs (a1 and b1 at once, …), then one after the other as a CI job would: a baseline, a 30 %
    slower build judged by --baseline, a build with 10 % errors."""
    folder = tmp_path_factory.mktemp("runs")
    path = scenario(folder, server.url)
    found: dict[str, Any] = {"folder": folder, "scenario": path}
    for i in range(1, PAIRS + 1):
        run_pair(server, path, (folder / f"a{i}.json", folder / f"b{i}.json"))
    result, results, served = run(server, path, folder / "base.json")
    assert result.returncode == 0, result.stdout + result.stderr
    total = results["total"]["requests"]
    assert total <= served <= total + 4 + results.get("interrupted", {}).get("total", 0)  # the server's count
    server.slower = 1.3
    found["slow"] = run(server, path, folder / "slow.json", "--baseline", str(folder / "base.json"))[0]
    server.slower, server.fail_every = 1.0, 10
    run(server, path, folder / "errors.json")
    server.fail_every = 0
    return found


def compare(folder: Path, base: str, new: str, *extra: str) -> tuple[Any, Comparison]:
    out = folder / f"cmp-{base}-{new}.json"
    result = run_lrun("compare", str(folder / f"{base}.json"), str(folder / f"{new}.json"), "--json", str(out), *extra)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result, Comparison.model_validate_json(out.read_text())


def verdicts(comparison: Comparison, verdict: str) -> set[tuple[str, str]]:
    return {(m.request, m.metric) for m in comparison.metrics if m.verdict == verdict}


def test_aa_pairs_of_the_same_build_pass(runs: dict[str, Any]) -> None:
    worst: list[float] = []
    for i in range(1, PAIRS + 1):
        result, comparison = compare(runs["folder"], f"a{i}", f"b{i}")
        assert result.returncode == 0, result.stdout
        assert comparison.passed and not comparison.regressions, verdicts(comparison, "regression")
        assert not comparison.improvements, verdicts(comparison, "improvement")  # nor the other way
        assert "PASSED" in result.stdout
        worst.append(max(abs(m.change_ratio or 0) for m in comparison.metrics if m.metric.startswith("p")))
        assert len(comparison.metrics) == 3 * 6  # total, GET /item, GET /list × p50 p90 p95 p99 errors rps
    print("A/A: largest percentile change per pair:", [f"{w:+.1%}" for w in worst])


def test_a_30_percent_slower_build_is_caught(runs: dict[str, Any]) -> None:
    slow = runs["slow"]  # lrun SCENARIO --baseline base.json: the gate folded into the exit code
    assert slow.returncode == 1, slow.stdout + slow.stderr
    assert "REGRESSION" in slow.stdout
    result, comparison = compare(runs["folder"], "base", "slow", "--junit", str(runs["folder"] / "slow.xml"))
    assert result.returncode == 1
    found = verdicts(comparison, "regression")
    assert {("GET /item", "p50"), ("GET /list", "p50")} <= found, found  # the total's p50 sits between the two
    assert {m for m in found if m[0] == "total"}, found
    item = next(m for m in comparison.metrics if (m.request, m.metric) == ("GET /item", "p50"))
    assert item.change_ratio is not None and 0.15 < item.change_ratio < 0.8  # scripted: +30 % (and a busy machine)
    assert item.base_interval and item.new_interval and item.new_interval.low > (item.base_interval.high or 0)
    import jsonschema  # the file matches the schema lrun publishes for it

    schema = json.loads(run_lrun("schema", "--comparison").stdout)
    written = json.loads((runs["folder"] / "cmp-base-slow.json").read_text())
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(written))
    junit = (runs["folder"] / "slow.xml").read_text()
    assert junit.count("<testcase") == 18 and junit.count("<failure") == len(found)
    assert 'name="GET /item: p50"' in junit


def test_an_improvement_is_reported_not_failed(runs: dict[str, Any]) -> None:
    result, comparison = compare(runs["folder"], "slow", "base")
    assert result.returncode == 0, result.stdout
    assert ("GET /item", "p50") in verdicts(comparison, "improvement")
    assert "improved" in result.stdout


def test_a_higher_error_rate_is_caught(runs: dict[str, Any]) -> None:
    result, comparison = compare(runs["folder"], "base", "errors")
    assert result.returncode == 1, result.stdout
    assert ("total", "errors") in verdicts(comparison, "regression")
    errors = next(m for m in comparison.metrics if (m.request, m.metric) == ("total", "errors"))
    assert errors.base == 0 and errors.new is not None and 0.07 < errors.new < 0.13  # every 10th failed
    assert errors.z is not None and errors.z > 2.576
    # a looser rule lets it pass: 10 % errors is within +15pp
    result, comparison = compare(runs["folder"], "base", "errors", "--fail-on", "errors +15pp")
    assert ("total", "errors") in verdicts(comparison, "within_limit")
    assert not {m for m in verdicts(comparison, "regression") if m[1] == "errors"}


def test_rules_per_request_and_off(runs: dict[str, Any]) -> None:
    folder = runs["folder"]
    rules = ["--fail-on", "p50 off", "--fail-on", "p90 off", "--fail-on", "p95 off", "--fail-on", "p99 off"]
    rules += ["--fail-on", "rps off", "--fail-on", "GET /item: p50 +80%"]
    result, comparison = compare(folder, "base", "slow", *rules)
    assert result.returncode == 0, result.stdout  # +30 % is within +80 % for GET /item; the rest is off
    assert next(m for m in comparison.metrics if (m.request, m.metric) == ("GET /item", "p50")).rule == "p50 +80%"
    result, comparison = compare(folder, "base", "slow", *rules[:-1], "/list: p50 +20%")
    assert result.returncode == 1 and verdicts(comparison, "regression") == {("GET /list", "p50")}
    conf = folder / "lrun.conf"  # the same rules from the settings file
    conf.write_text("fail-on = p50 off, p90 off, p95 off, p99 off, rps off, GET /list: p50 +20%\n")
    try:
        result = run_lrun("compare", "base.json", "slow.json", cwd=folder)
    finally:
        conf.unlink()
    assert result.returncode == 1 and "REGRESSION: p50 of GET /list" in result.stdout, result.stdout
    assert "GET /item" not in result.stdout.splitlines()[-1]


def test_a_different_mix_of_requests_is_not_a_slower_build(runs: dict[str, Any], server: Scripted) -> None:
    """The same build, but the new run made three /item (60 ms) for each /list (40 ms), the baseline the reverse:
    the total's median moves from one request's latency to the other's. Judged at the baseline's mix, the total
    did not get slower, and the warning says why."""
    folder = runs["folder"]
    for name, weights in (("mix-list", (1, 3)), ("mix-item", (3, 1))):
        path = folder / f"{name}.yaml"
        path.write_text(
            f"name: gate\nhost: {server.url}\nload: {{users: 4, spawn_rate: 100, run_time: 3s}}\nusers:\n"
            f"  shopper:\n    tasks:\n      - {{get: /item, weight: {weights[0]}}}\n"
            f"      - {{get: /list, weight: {weights[1]}}}\n"
        )
        result, _, _ = run(server, path, folder / f"{name}.json")
        assert result.returncode == 0, result.stdout + result.stderr
    base = json.loads((folder / "mix-list.json").read_text())["total"]["percentiles"]["50"]
    new = json.loads((folder / "mix-item.json").read_text())["total"]["percentiles"]["50"]
    assert base < 50 < new  # the runs' own medians: /list's, then /item's
    result, comparison = compare(folder, "mix-list", "mix-item", "--fail-on", "rps off")  # fewer /list: true
    assert result.returncode == 0, result.stdout
    total = {m.metric: m for m in comparison.metrics if m.request == "total"}
    assert total["p50"].new is not None and total["p50"].new < 50  # the new run's requests at the baseline's mix
    assert total["p50"].verdict in ("noise", "within_limit"), total["p50"]
    (warning,) = [w for w in comparison.warnings if "mix" in w]
    assert "GET /list" in warning and "GET /item" in warning and f"{new:.3g} ms" in warning


def test_at_mix_keeps_each_requests_distribution_and_weighs_it_to_the_share() -> None:
    from runner.compare.stats import at_mix
    from runner.stats.histogram import Histogram

    fast, slow = Histogram(), Histogram()
    for i in range(300):
        fast.record(40 + i % 7 / 10)
    for i in range(100):
        slow.record(60 + i % 5 / 10)
    same = at_mix([(fast, 0.75), (slow, 0.25)])  # the shares they have: nothing moves
    assert same.count == 400
    whole = Histogram()
    whole.merge(fast)
    whole.merge(slow)
    assert same.percentiles((10, 50, 74, 76, 99)) == whole.percentiles((10, 50, 74, 76, 99))
    flipped = at_mix([(fast, 0.25), (slow, 0.75)])  # a quarter fast, three quarters slow, 400 in all
    assert flipped.count == 400
    assert flipped.percentile(20) == fast.percentile(80) and flipped.percentile(50) == slow.percentile(33.4)
    assert (flipped.min or 0) >= 40 and (flipped.max or 0) < 61


def test_a_request_in_one_run_only_is_reported(runs: dict[str, Any]) -> None:
    folder = runs["folder"]
    results = json.loads((folder / "b3.json").read_text())
    results["requests"] = [e for e in results["requests"] if e["name"] != "/list"]
    (folder / "b3-no-list.json").write_text(json.dumps(results))
    result, comparison = compare(folder, "a3", "b3-no-list", "--html", str(folder / "one.html"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert [(u.request, u.only_in) for u in comparison.unmatched] == [("GET /list", "base")]
    assert "only in the baseline: GET /list" in result.stdout
    assert {m.request for m in comparison.metrics} == {"total", "GET /item"}


def test_the_html_report(runs: dict[str, Any]) -> None:
    folder = runs["folder"]
    result = run_lrun("compare", str(folder / "base.json"), str(folder / "slow.json"), "--html", str(folder / "g.html"))
    assert result.returncode == 1
    page = (folder / "g.html").read_text()
    assert "REGRESSION" in page and "order statistics" in page  # the verdict and the rule it used
    assert page.count('<svg class="chart bars"') == 3  # all requests, GET /item, GET /list: both runs' bars
    assert page.count('<span class="badge fail">') >= 3
    assert "<script src" not in page and "<link" not in page  # self-contained


def sentences(page: str) -> list[str]:
    """The written summary's sentences, as the page shows them."""
    section = page.split('<section id="explain">', 1)[1].split("</section>", 1)[0]
    return [html.unescape(item.split("</li>", 1)[0]) for item in section.split("<li>")[1:]]


def test_the_html_report_explains_in_sentences(runs: dict[str, Any]) -> None:
    """The summary of the slower build names its verdict, its largest regressions with their figures and rules,
    what stayed within noise, both runs' throughput and errors; its Apdex is the results' at the T given; its
    timings are both runs'."""
    folder = runs["folder"]
    out = folder / "explain.html"
    result, comparison = compare(folder, "base", "slow", "--html", str(out), "--apdex-t", "50ms")
    assert result.returncode == 1
    page = out.read_text()
    said = sentences(page)
    judged = [m for m in comparison.metrics if m.verdict not in ("off", "no_data")]
    assert said[0] == (
        f"REGRESSION: {comparison.regressions} of the {len(judged)} metrics compared got worse beyond run-to-run "
        "noise and beyond their rules; the gate exits 1."
    )
    regressions = sorted((m for m in comparison.metrics if m.verdict == "regression"),
                         key=lambda m: -abs(m.change_ratio or 0) * 100 / (parse_rule(m.rule).limit or 1))  # fmt: skip
    assert regressions and all(m.metric != "errors" for m in regressions)
    for index, m in enumerate(regressions[:4], start=1):  # the largest first, with the comparison's numbers
        who = "all requests" if m.request == "total" else m.request
        what = f"Throughput of {who}" if m.metric == "rps" else f"{m.metric} of {who}"
        verb = "rose" if m.metric != "rps" else "fell"
        assert said[index] == (
            f"{what} {verb} from {value_text(m.metric, m.base)} to {value_text(m.metric, m.new)} "
            f"({(m.change_ratio or 0) * 100:+.0f} %), beyond its rule {m.rule}."
        )
    noise = [m for m in comparison.metrics if m.verdict == "noise"]
    assert any(s.startswith(f"{len(noise)} of the {len(judged)} metrics stayed within run-to-run noise") for s in said)
    base, new = (json.loads((folder / f"{n}.json").read_text()) for n in ("base", "slow"))
    assert any(s.startswith(f"The baseline made {base['total']['requests']:,} requests in") and
               f"the new run {new['total']['requests']:,} in" in s for s in said), said  # fmt: skip
    assert "No request failed in either run." in said
    assert "—" not in " ".join(said)  # every figure present

    base_results, new_results = read_json(str(folder / "base.json")), read_json(str(folder / "slow.json"))
    for results in (base_results, new_results):  # the Apdex cells: the results' own at T = 50 ms
        for entry in (results.total, *results.requests):
            score = apdex(entry, 50.0)
            assert score is not None and f'data-v="{score!r}">{fmt_apdex(score)}' in page, (entry.name, score)
    assert f"T = {fmt_ms(50.0)}" in page
    for name in ("GET /item", "GET /list"):  # where the time went: a bar of each run
        for run_name in ("baseline", "new run"):
            assert f'<tr><td class="name">{name}</td><td class="note">{run_name}</td>' in page

    compare(folder, "base", "errors", "--html", str(folder / "errors.html"))
    failed = json.loads((folder / "errors.json").read_text())["total"]
    said = sentences((folder / "errors.html").read_text())
    rate = failed["failures"] / failed["requests"]
    assert any(s.startswith(f"The error rate of all requests was 0.00% in the baseline and {rate:.2%} in the new run")
               for s in said), said  # fmt: skip
    page = (folder / "errors.html").read_text()
    top = page.split('<section id="errors">', 1)[1].split("</section>", 1)[0]  # the new run's failing requests
    failures = json.loads((folder / "errors.json").read_text())["errors"]
    per_request: Counter[str] = Counter()
    for failure in failures:  # the server's 500s, as the run counted them
        per_request[f"{failure['method']} {failure['name']}"] += failure["count"]
        assert f"× {html.escape(failure['message'])}" in top, (failure, top)
    for name, count in per_request.items():
        assert f'<tr><td>new run</td><td>{name}</td><td class="n" data-v="{float(count)!r}">' in top, (name, top)
    assert sum(per_request.values()) == failed["failures"] > 0 and "<td>baseline</td>" not in top

    moved = dict(new, load={**new["load"], "users": 8})  # a run of another load: the summary warns
    (folder / "slow-8-users.json").write_text(json.dumps(moved))
    compare(folder, "base", "slow-8-users", "--html", str(folder / "users.html"))
    said = sentences((folder / "users.html").read_text())
    assert "Mind: the runs differ in users asked: 4 in the baseline, 8 in the new run." in said, said

    _, back = compare(folder, "slow", "base", "--html", str(folder / "back.html"))  # the other way: improvements
    said = sentences((folder / "back.html").read_text())
    assert said[0].startswith("PASSED: none of the ") and f"; {back.improvements} improved beyond noise" in said[0]
    best = max((m for m in back.metrics if m.verdict == "improvement"),
               key=lambda m: abs(m.change_ratio or 0) * 100 / (parse_rule(m.rule).limit or 1))  # fmt: skip
    assert said[1].endswith(f"({(best.change_ratio or 0) * 100:+.0f} %), an improvement beyond its rule {best.rule}.")

    _, comparison = compare(folder, "a1", "b1", "--html", str(folder / "aa.html"))
    said = sentences((folder / "aa.html").read_text())
    if comparison.passed:  # an A/A pair: passes (test_aa_pairs_of_the_same_build_pass counts how many)
        assert said[0].startswith("PASSED: none of the ")


CHARTS = """Array.from(document.querySelectorAll('svg.chart')).map(svg => ({
  id: svg.id, empty: svg.classList.contains('empty'), width: svg.getBoundingClientRect().width,
  lines: Array.from(svg.querySelectorAll('path.line')).map(p => ({label: p.dataset.label, length: p.getTotalLength(),
    dashed: p.classList.contains('dashed'), stroke: getComputedStyle(p).stroke})),
  bars: Array.from(svg.querySelectorAll('rect.bar')).filter(r => r.getBBox().height > 0).length}))"""


@pytest.fixture(scope="module")
def windows(server: Scripted, runs: dict[str, Any]) -> dict[str, Any]:
    """A baseline and a 30 % slower build with a live SLO window that both breach from the start (the p95 of any
    second holds /item's 60 ms or more: never under 50 ms), and each request's series (--csv-full-history)."""
    folder = runs["folder"]
    path = folder / "windows.yaml"
    path.write_text(
        f"name: gate\nhost: {server.url}\nload: {{users: 4, spawn_rate: 100, run_time: 3s}}\n"
        "thresholds:\n  - {expect: p95 < 50ms over 1s, delay: 0s}\n"
        "users:\n  shopper:\n    tasks:\n      - get: /item\n      - get: /list\n"
    )
    found = {"base": run(server, path, folder / "w-base.json", "--csv-full-history")[1]}
    server.slower = 1.3
    try:
        found["slow"] = run(server, path, folder / "w-slow.json", "--csv-full-history")[1]
    finally:
        server.slower = 1.0
    return found


SCATTERS = """Array.from(document.querySelectorAll('svg.scatter')).map(svg => ({
  id: svg.id, width: svg.getBoundingClientRect().width,
  dots: Array.from(svg.querySelectorAll('g.dots')).map(g => ({label: g.dataset.label,
    count: g.querySelectorAll('circle').length,
    fill: g.querySelector('circle') ? getComputedStyle(g.querySelector('circle')).fill : ''}))}))"""
BANDS = """id => Array.from(document.querySelectorAll(`#${id} rect.slo-band`)).map(r => ({
  css: r.getAttribute('class'), width: r.getBBox().width, title: r.textContent, fill: getComputedStyle(r).fill}))"""


def test_the_html_report_in_a_browser(runs: dict[str, Any], windows: dict[str, Any]) -> None:
    """In Chromium: every chart over time draws both runs (the baseline dashed) with each run's SLO window
    breaches as bands, the scatter charts both runs' dots in two colours, nothing reaches the network or the
    console, and printed, the charts and the summary are still there."""
    from browser import launch, watch

    folder = runs["folder"]
    out = folder / "browser.html"
    compare(folder, "w-base", "w-slow", "--html", str(out))
    breaches = {run: sum(len(w["breaches"]) for w in windows[run]["windows"]) for run in ("base", "slow")}
    assert breaches["base"] and breaches["slow"], breaches  # both runs breached their window: bands to show
    with launch(viewport={"width": 1280, "height": 1800}) as context:
        page = context.new_page()
        problems = watch(page)
        page.goto(out.as_uri(), wait_until="load")
        charts = [c for c in page.evaluate(CHARTS) if not c["id"].startswith("chart-cmp-rt-")]
        ids = [c["id"] for c in charts]
        assert ids[:4] == ["chart-cmp-times", "chart-cmp-throughput", "chart-cmp-phases", "chart-cmp-users"], ids
        assert {"chart-cmp-pct-0", "chart-cmp-pct-1"} <= set(ids)  # GET /item and GET /list over time
        assert sum(1 for i in ids if i.startswith("chart-dist-")) == 3
        for chart in charts:
            assert not chart["empty"] and chart["width"] > 300, chart
            if chart["id"].startswith("chart-dist-"):
                assert chart["bars"] >= 2, chart
                continue
            labels = [line["label"] for line in chart["lines"]]
            assert any(label.startswith("baseline ") for label in labels), (chart["id"], labels)
            assert any(label.startswith("new run ") for label in labels), (chart["id"], labels)
            for line in chart["lines"]:
                assert line["length"] > 100 and line["stroke"] not in ("none", "rgb(0, 0, 0)"), (chart["id"], line)
                assert line["dashed"] == line["label"].startswith("baseline"), line
        phases = {line["label"] for line in charts[2]["lines"]}
        assert {"baseline TTFB", "new run TTFB", "baseline Receive", "new run Receive"} <= phases, phases
        for chart_id in ("chart-cmp-times", "chart-cmp-throughput", "chart-cmp-phases", "chart-cmp-pct-0"):
            bands = page.evaluate(BANDS, chart_id)
            base = [b for b in bands if b["css"] == "slo-band base"]
            new = [b for b in bands if b["css"] == "slo-band new"]
            assert (len(base), len(new)) == (breaches["base"], breaches["slow"]), (chart_id, bands)
            assert all(b["width"] > 0 for b in bands), bands
            assert all(b["title"].startswith("baseline: p95 < 50ms over 1s") for b in base), base
            assert all(b["title"].startswith("new run: p95 < 50ms over 1s") for b in new), new
            assert base[0]["fill"] != new[0]["fill"], bands  # told apart by colour
        assert not page.evaluate(BANDS, "chart-cmp-users")  # no band where no time or rate is drawn
        scatters = page.evaluate(SCATTERS)
        assert [s["id"] for s in scatters] == ["chart-cmp-rt-users", "chart-cmp-rt-rps"], scatters
        for scatter in scatters:
            dots = {d["label"]: d for d in scatter["dots"]}
            assert set(dots) == {"baseline p95", "new run p95"} and scatter["width"] > 300, scatter
            assert all(d["count"] >= 1 for d in dots.values()), scatter
            assert dots["baseline p95"]["fill"] != dots["new run p95"]["fill"], scatter  # two colours
        legend = page.inner_text("#load .legend")
        assert "baseline p95" in legend and "new run p95" in legend
        page.hover("#chart-cmp-times")  # the report's read-out runs on the comparison's charts (the time, at least)
        assert page.is_visible("#tip") and page.inner_text("#tip").strip()
        page.emulate_media(media="print")
        printed = page.evaluate(
            "Array.from(document.querySelectorAll('svg.chart, #explain li, #timings tr'))"
            ".map(e => e.getBoundingClientRect().width)"
        )
        assert len(printed) > len(charts) and all(w > 100 for w in printed)
        assert problems == [], problems
        page.screenshot(path=str(ROOT / "tests" / "artifacts" / "gate.png"), full_page=True)


def lines(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_bad_input_is_one_line_and_exit_2(runs: dict[str, Any], tmp_path: Path) -> None:
    folder = runs["folder"]
    a1 = json.loads((folder / "a1.json").read_text())
    (tmp_path / "other.json").write_text(json.dumps({**a1, "scenario": "checkout"}))
    (tmp_path / "old.json").write_text(json.dumps({**a1, "format_version": 0}))
    (tmp_path / "text.json").write_text("p95 was 120 ms\n")
    no_histograms = {**a1, "requests": [{k: v for k, v in e.items() if k != "histogram"} for e in a1["requests"]]}
    (tmp_path / "bare.json").write_text(json.dumps(no_histograms))
    base = str(folder / "a1.json")
    cases = {
        "other.json": "of scenario 'checkout': a baseline must be a run of the same scenario",
        "old.json": "unknown results format version 0",
        "text.json": "not JSON",
        "missing.json": "no such results file",
        "bare.json": "has no histogram",
    }
    for name, message in cases.items():
        result = run_lrun("compare", base, str(tmp_path / name))
        assert result.returncode == 2 and len(lines(result)) == 1, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
    for rule, message in (
        ("p95 +10", "not a rule"),
        ("rps +10%", "rps fails on a drop: write rps -10%"),
        ("errors +1%", "percentage points"),
        ("p96 +10%", "no metric 'p96'"),
        ("GET /itme: p95 +10%", "did you mean 'GET /item'?"),
    ):
        result = run_lrun("compare", base, base, "--fail-on", rule)
        assert result.returncode == 2 and len(lines(result)) == 1 and message in result.stderr, result.stderr
    result = run_lrun("compare", base, base, "--html", str(tmp_path / "g.html"), "--apdex-t", "500")
    assert result.returncode == 2 and len(lines(result)) == 1, result.stderr
    assert "--apdex-t 500: give a unit, such as 500ms or 1.5s" in result.stderr and not (tmp_path / "g.html").exists()
    # --baseline: a baseline of another scenario stops before any load
    result = run_lrun("run", str(runs["scenario"]), "--baseline", str(tmp_path / "other.json"))
    assert result.returncode == 2 and "a baseline must be a run of the same scenario" in result.stderr
    assert len(lines(result)) == 1, result.stderr


def test_every_key_of_the_comparison_is_described() -> None:
    from pydantic import BaseModel

    from runner.compare import model

    models = [
        m for m in vars(model).values() if isinstance(m, type) and issubclass(m, BaseModel) and m is not BaseModel
    ]
    assert len(models) >= 5
    for found in models:
        for name, field in found.model_fields.items():
            assert field.description, f"{found.__name__}.{name} has no description"


def test_the_docs_commands_exist_with_their_options() -> None:
    import re
    import shlex

    import click

    from conftest import ROOT
    from runner.cli import cli
    from runner.compare.rules import parse_rule

    text = (ROOT / "docs" / "how-to" / "regression-gate.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    commands = [shlex.split(line, comments=True) for b in blocks for line in b.replace("\\\n", " ").splitlines()]
    commands = [words[1:] for words in commands if words and words[0] == "lrun"]
    assert len(commands) >= 4
    for words in commands:
        name = words[0] if words[0] in cli.commands else "run"
        command = cli.commands[name]
        options = {opt for param in command.params if isinstance(param, click.Option) for opt in param.opts}
        for index, word in enumerate(words):
            if word.startswith("-"):
                assert word in options, f"lrun {name} has no option {word}"
            if word == "--fail-on":
                parse_rule(words[index + 1])  # every rule shown parses


def test_the_summary_ranks_changes_by_how_far_beyond_their_rules() -> None:
    """A latency's percent and the error rate's points are not one unit: the summary orders the regressions by
    how many times their rule's limit they moved (a +2 pp error rate under +0.5pp is 4, +30 % under +20 % is 1.5)."""

    def gated(metric: str, rule: str, base: float, new: float) -> Gated:
        return Gated(
            request="GET /item", metric=metric, rule=rule, base=base, new=new, change=new - base,
            change_ratio=new / base - 1, significant=True, test="", verdict="regression",
        )  # fmt: skip

    run = RunRef(file="x.json", scenario="s", start="", lrun_version="", requests=1000, measured_s=10)
    comparison = Comparison(
        base=run, new=run, method="", interval_confidence=0.95, test_z=3.0, rules=[], regressions=2,
        improvements=0, passed=False, exit_code=1,
        metrics=[gated("p95", "p95 +20%", 100.0, 130.0), gated("errors", "errors +0.5pp", 0.01, 0.03)],
    )  # fmt: skip
    said = summary(comparison)
    assert said[1].startswith("The error rate of GET /item rose from 1.00% to 3.00% (+2.00 pp)"), said
    assert said[2].startswith("p95 of GET /item rose from 100 ms to 130 ms (+30 %)"), said

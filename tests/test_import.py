"""``lrun import``: HAR recordings (Firefox and proxy exports written from the HAR 1.2 specification) to
correlated scenarios, replayed against a real server whose every session, token and id is fresh."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from har_helpers import har_entry, imported, scenario_steps, write_har
from har_server import NotesServer

from conftest import ROOT, run_lrun
from runner.importers.convert import ImportOptions, import_har
from runner.importers.correlate import correlate, looks_like_token, shortest_boundary
from runner.importers.filter import FilterOptions, select
from runner.importers.har import read_har
from runner.importers.steps import build_steps

HAR = ROOT / "tests" / "data" / "har"


# -- recordings of real exports, replayed against a real server ---------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("recording", ["firefox.har", "proxy.har"])
def test_export_replays_against_a_fresh_server(tmp_path: Path, recording: str) -> None:
    scenario = tmp_path / "notes.yaml"
    result = run_lrun("import", str(HAR / recording), "-o", str(scenario), "--think", "none")
    assert result.returncode == 0, result.stderr
    text = scenario.read_text()
    assert "correlated access_token" in result.stderr and "correlated csrf_token" in result.stderr
    assert "correlated x_request_token" in result.stderr
    # the new note's id only in the 201's Location: the id alone, the later URL keeps its literal structure
    assert "correlated note_id = '41': from #4 POST /api/notes (header: Location, regex: " in result.stderr
    assert "get: /api/notes/{{ note_id }}" in scenario.read_text()
    for noise in ("google-analytics", "example-cdn", "tracker", "static/", "Cookie", "User-Agent", ":authority"):
        assert noise not in text.split("\nname:")[1], noise  # the comments may name dropped hosts; steps never do
    assert run_lrun("validate", str(scenario)).returncode == 0
    with NotesServer() as server:
        run = run_lrun(str(scenario), "-H", server.url, "--only-summary")
        assert run.returncode == 0, run.stdout + run.stderr
        assert server.app.seen == [
            "GET /login",
            "POST /login",
            "GET /api/profile",
            "POST /api/notes",
            "GET /api/notes/100",
        ]
        assert server.app.notes == {100: "hello"}


def test_without_output_the_scenario_goes_to_stdout_and_the_report_to_stderr() -> None:
    result = run_lrun("import", str(HAR / "firefox.har"))
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    assert (document["name"], document["host"]) == ("firefox", "https://notes.example.test")
    assert result.stdout.startswith("# Imported by `lrun import` from firefox.har (Firefox 133.0)")
    assert "correlated csrf_token" in result.stderr and "correlated" not in result.stdout.split("\nname:")[1]


def test_firefox_pages_become_transactions_and_params_a_form() -> None:
    result = imported(HAR / "firefox.har")
    sequence = yaml.safe_load(result.yaml)["users"]["recorded"]["sequence"]
    assert [s["transaction"] for s in sequence] == ["Sign in - Notes", "My notes"]
    login = sequence[0]["steps"][1]
    assert login["form"] == {"csrf_token": "{{ csrf_token }}", "username": "ada", "password": "lovelace"}
    assert login["extract"] == {"access_token": {"jsonpath": "$.auth.access_token"}}
    assert sequence[0]["steps"][0]["check"] == [{"status": 200}, {"contains": "Sign in - Notes"}]


def test_proxy_export_warns_about_version_and_aborted_entries() -> None:
    result = imported(HAR / "proxy.har")
    assert "HAR version 1.1: read as HAR 1.2" in result.recording.warnings
    assert any("entry 6: skipped: no response" in w for w in result.recording.warnings)
    assert [s.label for s in result.steps][:2] == ["GET /login", "POST /login"]  # start order, not completion order
    assert result.selection.third_party.keys() == {
        "www.google-analytics.com",
        "cdn.example-cdn.net",
        "ads.tracker.example",
    }


@pytest.mark.e2e
def test_verify_names_the_first_step_that_differs_and_the_changed_values(tmp_path: Path) -> None:
    with NotesServer() as server:
        # Without correlation (nothing is long enough) the replay fails at the login: the scan says why.
        bad = run_lrun("import", str(HAR / "firefox.har"), "--min-length", "100", "--verify", "-H", server.url)
        assert bad.returncode == 1, bad.stderr
        assert "first difference at #2 POST /login: status 403, recorded 200" in bad.stderr
        assert "#1 GET /login input csrf_token: recorded 'f3a9c2e7b1d4a6c8e0f2'" in bad.stderr
        assert "sent as recorded by the failing step" in bad.stderr
        good = run_lrun("import", str(HAR / "firefox.har"), "--think", "none", "--verify", "-H", server.url)
        assert good.returncode == 0, good.stderr
        assert "verify: every status as recorded (5 requests)" in good.stderr


# -- correlation rules ----------------------------------------------------------------------------------------


def steps_of(tmp_path: Path, entries: list[dict[str, Any]]) -> list[Any]:
    recording = read_har(write_har(tmp_path / "r.har", entries))
    selection = select(recording.entries, FilterOptions())
    return build_steps(selection.entries, selection.origin)


def test_extractor_kind_follows_where_the_value_was(tmp_path: Path) -> None:
    html = (
        '<html><head><title>x</title><meta name="csrf-token" content="Mc7Qe1Rt9Zx0"></head><body>'
        '<input type="hidden" name="view_state" value="vs-82731ab"/>'
        '<script>var orderRef = "ORD-99172-A";</script><p>Ticket: T9x8c7v6b5 (keep it)</p></body></html>'
    )
    steps = steps_of(
        tmp_path,
        [
            har_entry("GET", "/", mime="text/html", text=html, response_headers=[("X-Trace", "trace-5512ab9")]),
            har_entry("GET", "/api", text='{"data": {"items": [{"key": "k-1234567"}]}}'),
            har_entry(
                "POST",
                "/next",
                headers=[("X-CSRF", "Mc7Qe1Rt9Zx0"), ("X-Trace", "trace-5512ab9")],
                post={
                    "mimeType": "application/x-www-form-urlencoded",
                    "text": "vs=vs-82731ab&ref=ORD-99172-A&ticket=T9x8c7v6b5&key=k-1234567",
                },
            ),
        ],
    )
    found = {c.name: c.extractor for c in correlate(steps).found}
    assert found == {
        "csrf_token": {"xpath": '//meta[@name="csrf-token"]/@content'},
        "view_state": {"xpath": '//input[@name="view_state"]/@value'},
        "order_ref": {"boundary": {"left": 'orderRef = "', "right": '"'}},
        "ticket": {"boundary": {"left": ": ", "right": " "}},
        "key": {"jsonpath": "$.data.items[0].key"},
        "x_trace": {"header": "X-Trace"},
    }
    assert dict(steps[2].form) == {
        "vs": "{{ view_state }}",
        "ref": "{{ order_ref }}",
        "ticket": "{{ ticket }}",
        "key": "{{ key }}",
    }


def test_cookies_set_by_responses_and_by_scripts(tmp_path: Path) -> None:
    """A cookie's value sent in a header (double-submit CSRF) is a cookie extractor; cookies no response set
    (JavaScript's) are warnings, since the replay's cookie jar cannot have them."""
    steps = steps_of(
        tmp_path,
        [
            har_entry("GET", "/", response_headers=[("Set-Cookie", "XSRF-TOKEN=x5rf9a8b7c; Path=/")]),
            har_entry(
                "POST", "/save", headers=[("X-XSRF-TOKEN", "x5rf9a8b7c"), ("Cookie", "XSRF-TOKEN=x5rf9a8b7c; _ga=GA1")]
            ),
        ],
    )
    result = correlate(steps)
    assert [(c.name, c.extractor) for c in result.found] == [("xsrf_token", {"cookie": "XSRF-TOKEN"})]
    assert [(w.value, w.uses) for w in result.warnings] == [("cookie _ga", ["#2 POST /save"])]


def test_shortest_unique_boundary() -> None:
    text = 'a="1" b="2" id="XK42-9" c="3"'
    assert shortest_boundary(text, "XK42-9") == {"boundary": {"left": 'd="', "right": '"'}}
    text = "id=AB12CD34;id=EF56GH78;"
    # the second one: the shortest left that is not found earlier
    assert shortest_boundary(text, "EF56GH78", text.find("EF56GH78")) == {"boundary": {"left": ";id=", "right": ";"}}
    assert shortest_boundary("token ZZ99XX88", "ZZ99XX88") is None  # nothing after it: no right boundary


def test_a_value_used_in_several_places_and_returned_twice(tmp_path: Path) -> None:
    """Each use extracts from the last response before it; every place it is sent becomes the template."""
    token = '{"token": "tok-8a7b6c5d"}'
    steps = steps_of(
        tmp_path,
        [
            har_entry("POST", "/login", text=token),
            har_entry(
                "POST",
                "/a/tok-8a7b6c5d",
                headers=[("Authorization", "Bearer tok-8a7b6c5d")],
                post={"mimeType": "application/json", "text": '{"t": "tok-8a7b6c5d", "n": 3}'},
            ),
            har_entry("POST", "/refresh", text=token),
            har_entry("GET", "/b?token=tok-8a7b6c5d"),
        ],
    )
    [found] = correlate(steps).found
    assert found.name == "token" and found.sources == ["#1 POST /login", "#3 POST /refresh"]
    assert steps[0].extract == steps[2].extract == {"token": {"jsonpath": "$.token"}}
    assert steps[1].url == "/a/{{ token }}" and steps[1].headers == [("Authorization", "Bearer {{ token }}")]
    assert steps[1].json == {"t": "{{ token }}", "n": 3}
    assert steps[3].query == [("token", "{{ token }}")]


def test_short_values_words_and_client_constants_stay_literal(tmp_path: Path) -> None:
    steps = steps_of(
        tmp_path,
        [
            har_entry("GET", "/app?build=rel-20261201"),  # sent before any response gave it: the client's own
            har_entry("GET", "/config", text='{"build": "rel-20261201", "mode": "express", "id": 42}'),
            har_entry("GET", "/go?mode=express&id=42&build=rel-20261201"),
        ],
    )
    assert correlate(steps).found == []
    assert steps[2].query == [("mode", "express"), ("id", "42"), ("build", "rel-20261201")]
    assert not looks_like_token("express", 6) and not looks_like_token("42", 6) and looks_like_token("a1b2c3", 6)


def test_dynamic_values_no_response_gave_are_warnings(tmp_path: Path) -> None:
    steps = steps_of(
        tmp_path,
        [
            har_entry("GET", "/"),
            har_entry("GET", "/poll?_=1796182414556&nonce=9f8e7d6c5b4a39281706"),
        ],
    )
    warnings = {w.value: (w.uses, w.why) for w in correlate(steps).warnings}
    assert warnings["1796182414556"][0] == ["#2 GET /poll query _"]
    assert "timestamp" in warnings["1796182414556"][1]
    assert "generated" in warnings["9f8e7d6c5b4a39281706"][1]


def test_a_warning_names_responses_recorded_without_a_body(tmp_path: Path) -> None:
    """Browsers drop the body of a response the page navigated away from: the token may have been there."""
    bodiless = har_entry("POST", "/login")
    del bodiless["response"]["content"]["text"]
    steps = steps_of(tmp_path, [har_entry("GET", "/"), bodiless, har_entry("GET", "/c?x=9f8e7d6c5b4a39281706")])
    [warning] = correlate(steps).warnings
    assert warning.why.endswith("; #2 POST /login recorded no response body: the value may be there")


def test_recorded_braces_are_not_templates(tmp_path: Path) -> None:
    har = write_har(
        tmp_path / "b.har",
        [har_entry("POST", "/t", post={"mimeType": "text/plain", "text": "Hello {{ name }} {% x %}"})],
    )
    [step] = scenario_steps(imported(har).yaml)
    assert step["body"] == "Hello {{ '{{' }} name }} {{ '{%' }} x %}"


# -- noise ------------------------------------------------------------------------------------------------------


def test_noise_is_dropped_and_summarised(tmp_path: Path) -> None:
    page = "<html><head><title>Home</title></head></html>"
    har = write_har(
        tmp_path / "n.har",
        [
            har_entry(
                "GET",
                "/",
                mime="text/html",
                text=page,
                headers=[(":authority", "app.example.test"), ("sec-ch-ua", "x"), ("Cookie", "a=b"), ("X-App", "1")],
            ),
            har_entry("GET", "/main.4f3a.js", mime="application/javascript", text="x()"),
            har_entry("GET", "/font", mime="font/woff2"),
            har_entry("GET", "/logo.svg", mime="image/svg+xml"),
            har_entry("GET", "https://www.googletagmanager.com/gtm.js?id=GTM-1"),
            har_entry("GET", "https://api.partner.example/v1/prices"),
            har_entry("GET", "/api/items", headers=[("Accept-Encoding", "gzip"), ("Authorization", "Basic YTpi")]),
            har_entry("PROPFIND", "/dav"),
            har_entry("GET", "/live", 101, headers=[("Upgrade", "websocket")]),
            {
                **har_entry("GET", "/"),
                "request": {**har_entry("GET", "/")["request"], "url": "data:image/png;base64,AA"},
            },
            {
                **har_entry("GET", "/"),
                "request": {**har_entry("GET", "/")["request"], "url": "data:image/gif;base64,AA"},
            },
        ],
    )
    result = imported(har)
    assert [s.label for s in result.steps] == ["GET /", "GET /api/items"]
    assert result.selection.summary() == [
        "dropped 3 static assets (scripts, styles, images, fonts)",
        "dropped 2 requests to third-party hosts",
        "dropped 1 PROPFIND requests (a scenario sends DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT)",
        "dropped 1 WebSocket connections (not HTTP requests)",
        "third-party hosts left out: www.googletagmanager.com (1), api.partner.example (1)",
    ]
    assert result.recording.warnings == ["skipped 2 data: URLs (not HTTP)"]
    steps = scenario_steps(result.yaml)
    assert steps[0]["headers"] == {"X-App": "1"} and steps[1]["headers"] == {"Authorization": "Basic YTpi"}
    patterns = import_har(str(har), ImportOptions(FilterOptions(exclude=["/api/"], include=[r"gtm\.js"])))
    assert [s.url for s in patterns.steps] == ["/", "https://www.googletagmanager.com/gtm.js"]
    assert patterns.selection.dropped["excluded by pattern"] == 1
    kept = import_har(str(har), ImportOptions(FilterOptions(hosts=["api.partner.*"], keep_static=True)))
    assert len(kept.steps) == 6 and scenario_steps(kept.yaml)[-2]["get"] == "https://api.partner.example/v1/prices"


# -- structure: think times, pools, bodies ----------------------------------------------------------------------


def test_a_cached_304_expects_200_or_304(tmp_path: Path) -> None:
    har = write_har(tmp_path / "c.har", [har_entry("GET", "/logo", 304, headers=[("If-None-Match", '"abc"')])])
    [step] = scenario_steps(imported(har).yaml)
    assert step["check"] == [{"status": [200, 304]}] and "headers" not in step


def test_think_times_recorded_capped_or_none(tmp_path: Path) -> None:
    har = write_har(
        tmp_path / "t.har", [har_entry("GET", "/a"), har_entry("GET", "/b", t=4.0), har_entry("GET", "/c", t=4.1)]
    )
    assert [s.get("think") for s in scenario_steps(imported(har).yaml)] == ["4s", None, None]
    assert [s.get("think") for s in scenario_steps(imported(har, think="max:1.5s").yaml)] == ["1.5s", None, None]
    assert [s.get("think") for s in scenario_steps(imported(har, think="none").yaml)] == [None, None, None]


def test_pool_parameterises_typed_fields(tmp_path: Path) -> None:
    scenario = tmp_path / "login.yaml"
    result = run_lrun("import", str(HAR / "firefox.har"), "-o", str(scenario), "--pool")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "login.csv").read_text() == "username,password\nada,lovelace\n"
    loaded = yaml.safe_load(scenario.read_text())
    assert loaded["pools"] == {"inputs": {"csv": "login.csv"}}
    login = scenario_steps(scenario.read_text())[1]
    assert login["form"] == {
        "csrf_token": "{{ csrf_token }}",
        "username": "{{ inputs.username }}",
        "password": "{{ inputs.password }}",
    }
    assert run_lrun("validate", str(scenario)).returncode == 0


def test_bodies_json_form_raw_and_base64(tmp_path: Path) -> None:
    xml = "<order><id>1</id></order>"
    har = write_har(
        tmp_path / "b.har",
        [
            har_entry("POST", "/j", post={"mimeType": "application/json", "text": '{"a": [1, {"b": null}]}'}),
            har_entry("POST", "/v", post={"mimeType": "application/vnd.api+json", "text": '{"data": {}}'}),
            har_entry(
                "POST",
                "/f",
                post={"mimeType": "application/x-www-form-urlencoded", "params": [{"name": "q", "value": "red mug"}]},
            ),
            har_entry(
                "POST",
                "/x",
                post={
                    "mimeType": "application/xml",
                    "text": base64.b64encode(xml.encode()).decode(),
                    "encoding": "base64",
                },
            ),
            har_entry(
                "POST", "/bin", post={"mimeType": "application/octet-stream", "text": "AAEC", "encoding": "base64"}
            ),
        ],
    )
    result = imported(har)
    steps = scenario_steps(result.yaml)
    assert steps[0]["json"] == {"a": [1, {"b": None}]}
    assert "headers" not in steps[0]  # lrun's json: says application/json itself
    assert steps[1]["json"] == {"data": {}} and steps[1]["headers"] == {"Content-Type": "application/vnd.api+json"}
    assert steps[2]["form"] == {"q": "red mug"}
    assert steps[3]["body"] == xml and steps[3]["headers"] == {"Content-Type": "application/xml"}
    assert "body" not in steps[4]  # binary: not replayable as text
    assert result.recording.warnings == ["entry 5: POST /bin: binary request body (application/octet-stream) left out"]


# -- bad input: one line, exit 2, never a traceback --------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<html>not json</html>", "not valid JSON"),
        (b'{"log": {"version": "1.2", "entries": [{"request"', "truncated"),
        (b'{"some": "json"}', "not a HAR file (no log.entries)"),
        (b'{"log": {"version": "1.2", "entries": []}}', "no usable entries"),
        (
            b'{"log": {"entries": [{"request": {"method": "GET", "url": "http://x/"}, "response": {"status": 0}}]}}',
            "no usable entries",
        ),
        (b"\xff\xfe\x00binary", "not a HAR file"),
    ],
)
def test_bad_recordings_are_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.har"
    path.write_bytes(content)
    result = run_lrun("import", str(path))
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_bad_options_are_one_line(tmp_path: Path) -> None:
    for args, message in [
        (["--think", "sometimes"], "--think 'sometimes': use recorded, none or max:DURATION"),
        (["--pool"], "--pool writes a CSV next to the scenario"),
        (["--exclude", "("], "not a regular expression"),
        (["-H", "http://127.0.0.1:1"], "-H is the host --verify replays against"),
    ]:
        result = run_lrun("import", str(HAR / "firefox.har"), *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "cannot read" in run_lrun("import", str(tmp_path / "missing.har")).stderr


def test_a_large_recording_imports_quickly(tmp_path: Path) -> None:
    """2,000 entries, each answer giving the token the next request sends; bounded generously (a shared machine)."""
    entries = [har_entry("GET", "/start", text='{"token": "t0-00000000"}')]
    for i in range(1, 2000):
        text = json.dumps({"token": f"t{i}-{i:08d}", "items": [{"id": n, "name": f"item {n}"} for n in range(20)]})
        entries.append(har_entry("GET", f"/step/{i}?token=t{i - 1}-{i - 1:08d}", text=text, t=i * 0.01))
    har = write_har(tmp_path / "big.har", entries)
    started = time.perf_counter()
    result = imported(har)
    elapsed = time.perf_counter() - started
    assert len(result.steps) == 2000 and len(result.correlations.found) == 1999
    assert {c.name for c in result.correlations.found} == {"token"}  # renewed by each answer: one name
    assert scenario_steps(result.yaml)[1999]["query"] == {"token": "{{ token }}"}
    assert elapsed < 60, f"import took {elapsed:.1f}s"


# -- the demo shop's browser pages, without a browser ----------------------------------------------------------


def test_demo_shop_checkout_needs_its_token_csrf_and_cart(demo_url: str) -> None:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)

    def call(path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any, str]:
        request = urllib.request.Request(demo_url + path, body, headers or {}, method="POST" if body else "GET")
        try:
            with opener.open(request, timeout=10) as answer:
                return answer.status, answer.headers, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode()

    session = re.search(r'name="session" value="(\w+)"', call("/shop")[2]).group(1)
    token = json.loads(call("/login", f"user=bob&password=secret&session={session}".encode())[2])["token"]
    page = call("/shop/checkout")[2]
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page).group(1)
    cart = re.search(r'var cartId = "(\w+)"', page).group(1)
    order = json.dumps({"cart": cart, "item": 2, "quantity": 1}).encode()
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert call("/shop/orders", order, {**auth, "X-CSRF-Token": "wrong"})[0] == 403
    assert call("/shop/orders", order, {"Content-Type": "application/json", "X-CSRF-Token": csrf})[0] == 401
    status, headers, _ = call("/shop/orders", order, {**auth, "X-CSRF-Token": csrf})
    assert status == 303 and re.fullmatch(r"/shop/orders/\d+", headers["Location"])
    status, _, receipt = call(headers["Location"], headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(receipt)["item"] == 2
    assert call(headers["Location"])[0] == 401

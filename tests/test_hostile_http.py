"""Hostile servers (issue 10, items 9-15): what a server does never breaks a run or hides a failure.

Servers are real sockets on loopback (``tests/hostile.py``); runs are real ``lrun`` processes.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile import Connection, HostileServer, Request, answer, response

from conftest import run_lrun
from runner.compile.extract import compile_extractor
from runner.http import HttpSession, Response
from runner.http.cookies import CookieJar, parse_set_cookie
from runner.http.unreachable import Unreachable
from runner.scenario.model import Extract


@pytest.fixture
def serve() -> Iterator[Callable[..., HostileServer]]:
    servers: list[HostileServer] = []

    def start(handler: Callable[[Connection, Request], bool]) -> HostileServer:
        server = HostileServer(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def run_scenario(tmp_path: Path, text: str, *args: str, timeout: float = 120) -> tuple[Any, dict]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    out = tmp_path / "r.json"
    result = run_lrun("run", str(path), "--json", str(out), *args, timeout=timeout)
    assert out.exists(), result.stdout + result.stderr
    return result, json.loads(out.read_text())


def trickle(data: bytes, pause: float = 1.0) -> Callable[[Connection, Request], bool]:
    """Sends ``data`` one byte every ``pause`` seconds (until the client goes away)."""

    def handle(connection: Connection, request: Request) -> bool:
        for byte in data:
            connection.send(bytes([byte]))
            time.sleep(pause)
        return False

    return handle


# -- 9: timeout is a deadline -------------------------------------------------------------------------------


@pytest.mark.parametrize("per_request", [None, 2.0])  # a request timeout equal to the session's keeps it
def test_a_status_line_one_byte_a_second_ends_at_the_timeout(
    serve: Callable[..., HostileServer], per_request: float | None
) -> None:
    server = serve(trickle(response()))
    session = HttpSession(server.url, timeout=2)
    started = time.monotonic()
    result = session.request("GET", "/", timeout=per_request)
    took = time.monotonic() - started
    assert result.status == 0 and result.error is not None
    assert result.error.startswith("timed out after 2s"), result.error
    assert 1.9 <= took < 5, took


def test_the_deadline_covers_the_redirects_followed(serve: Callable[..., HostileServer]) -> None:
    def slow_redirect(connection: Connection, request: Request) -> bool:
        time.sleep(0.7)  # each hop well within the timeout, the chain not
        connection.send(response(302, b"", {"Location": f"/hop{request.index + 1}"}))
        return True

    server = serve(slow_redirect)
    session = HttpSession(server.url, timeout=2)
    started = time.monotonic()
    result = session.request("GET", "/")
    took = time.monotonic() - started
    assert (result.status, result.error) == (0, "timed out after 2s (waiting for the response)")
    assert 1.9 <= took < 5, took
    assert 2 <= len(server.requests) <= 4


def test_lrun_run_with_http_timeout_ends_a_trickling_request(
    tmp_path: Path, serve: Callable[..., HostileServer]
) -> None:
    server = serve(trickle(response()))
    scenario = f"host: {server.url}\nhttp: {{timeout: 2s}}\nusers: {{u: {{sequence: [{{get: /, timeout: 2s}}]}}}}\n"
    started = time.monotonic()
    result, results = run_scenario(tmp_path, scenario, "-u", "1", "-i", "1")
    took = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert results["total"]["failures"] == 1
    assert results["errors"][0]["message"].startswith("timed out after 2s"), results["errors"]
    assert results["total"]["max_ms"] < 5000
    assert took < 60  # the whole lrun process, start-up included, on a loaded machine


# -- 10: past max_redirects the request fails ---------------------------------------------------------------


def test_a_redirect_loop_fails_whatever_the_checkpoints_say(
    tmp_path: Path, serve: Callable[..., HostileServer]
) -> None:
    loop, plain = response(302, b"", {"Location": "/loop"}), response()

    def redirect_loop(connection: Connection, request: Request) -> bool:
        connection.send(loop if request.target == "/loop" else plain)
        return True

    server = serve(redirect_loop)
    scenario = (
        f"host: {server.url}\nhttp: {{max_redirects: 3}}\n"
        "users: {u: {sequence: [{get: /loop, check: [{status: 302}]}, {get: /plain}]}}\n"
    )
    result, results = run_scenario(tmp_path, scenario, "-u", "1", "-i", "1")
    assert result.returncode == 1
    entries = {e["name"]: e for e in results["requests"]}
    assert (entries["/loop"]["requests"], entries["/loop"]["failures"]) == (1, 1)
    assert (entries["/plain"]["requests"], entries["/plain"]["failures"]) == (1, 0)
    assert "too many redirects (max_redirects=3)" in results["errors"][0]["message"]
    assert len([r for r in server.requests if r.target == "/loop"]) == 4  # the request and 3 redirects
    assert results["checks"][0]["failed"] == 1


# -- 11: bodies are bounded -----------------------------------------------------------------------------------


def _streamed(size: int) -> Callable[[Connection, Request], bool]:
    chunk = b"x" * 2**20

    def handle(connection: Connection, request: Request) -> bool:
        connection.send(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        left = size
        while left:
            part = chunk[: min(left, len(chunk))]
            connection.send(part)
            left -= len(part)
        return True

    return handle


def test_a_body_over_max_body_is_counted_not_kept(serve: Callable[..., HostileServer]) -> None:
    server = serve(_streamed(30 * 2**20))
    session = HttpSession(server.url, max_body=10 * 2**20)
    result = session.request("GET", "/")
    assert (result.status, result.error, result.body, result.size) == (200, None, b"", 30 * 2**20)
    assert result.unread == "body over 10 MiB (max_body)"
    result = session.request("GET", "/", discard_body=True)
    assert (result.body, result.size, result.unread) == (b"", 30 * 2**20, "body not kept (discard_body)")


def test_a_gzip_bomb_stops_inflating_at_max_body(serve: Callable[..., HostileServer]) -> None:
    bomb = gzip.compress(b"\0" * 64 * 2**20, 9)  # 64 KiB that inflate to 64 MiB
    server = serve(answer(200, bomb, {"Content-Encoding": "gzip"}))
    session = HttpSession(server.url, max_body=2**20)
    result = session.request("GET", "/")
    assert (result.status, result.error, result.body) == (200, None, b"")
    assert result.unread == "body over 1 MiB (max_body)"
    small = HttpSession(server.url, max_body=128 * 2**20).request("GET", "/")
    assert (small.size, small.unread) == (64 * 2**20, None)


def test_checkpoints_and_extractors_on_a_body_not_kept_fail_the_others_pass(
    tmp_path: Path, serve: Callable[..., HostileServer]
) -> None:
    server = serve(answer(200, b'{"name": "' + b"x" * 3000 + b'"}', {"X-Id": "7"}))
    scenario = (
        f"host: {server.url}\nhttp: {{max_body: 1kB}}\n"
        "users: {u: {sequence: [\n"
        "  {get: /big, name: big, check: [{status: 200}, {header: X-Id, equals: '7'}]},\n"
        "  {get: /big, name: body, check: [{jsonpath: $.name, exists: true}]},\n"
        "  {get: /big, name: extract, extract: {n: {regex: 'name'}}},\n"
        "  {get: /big, name: discarded, discard_body: true, check: [{status: 200}]},\n"
        "]}}\n"
    )
    _result, results = run_scenario(tmp_path, scenario, "-u", "1", "-i", "1")
    entries = {e["name"]: e for e in results["requests"]}
    assert [entries[n]["failures"] for n in ("big", "body", "extract", "discarded")] == [0, 1, 1, 0]
    assert entries["discarded"]["total_bytes"] == 3012
    messages = " | ".join(e["message"] for e in results["errors"])
    assert "body over 1000 bytes (max_body)" in messages and "n: regex 'name': body over" in messages


# -- 12: retries -------------------------------------------------------------------------------------------


def _close_kept_alive(connection: Connection, request: Request) -> bool:
    """Answers the first 2 (even connections) or 3 (odd ones) requests, then reads one and closes without a byte.

    A user alternating GET and POST starts each connection with a GET, so the closing request is a GET on even
    connections and a POST on odd ones.
    """
    if request.index < 2 + request.conn % 2:
        connection.send(response(200, b"ok"))
        return True
    return False


def test_retries_reconcile_with_the_servers_count_and_post_is_never_resent(
    tmp_path: Path, serve: Callable[..., HostileServer]
) -> None:
    server = serve(_close_kept_alive)
    scenario = (
        f"host: {server.url}\nusers: {{u: {{sequence: [\n"
        "  {get: /g},\n"
        "  {post: /p, body: 'n={{ iteration }}', check: [{status: 200, on_fail: continue}]},\n"
        "]}}\n"
    )
    result, results = run_scenario(tmp_path, scenario, "-u", "1", "-i", "10")
    entries = {e["name"]: e for e in results["requests"]}
    received = {"GET": 0, "POST": 0}
    for request in server.requests:
        received[request.method] += 1
    get, post = entries["/g"], entries["/p"]
    assert get["requests"] == 10 and get["retries"] > 0
    assert received["GET"] == get["requests"] + get["retries"]
    assert received["POST"] == post["requests"] == 10 and post["retries"] == 0
    bodies = [r.body for r in server.requests if r.method == "POST"]
    assert len(bodies) == len(set(bodies)) == 10  # no POST sent twice
    assert post["failures"] > 0  # the POSTs that met a closed connection failed instead
    assert results["total"]["retries"] == get["retries"]
    retried = f"Retries: {get['retries']} requests sent again on a new connection"
    assert f"{retried}, a kept-alive one found closed (the server saw requests + retries): GET /g {get['retries']}" in (
        result.stdout
    )


# -- 13: one Set-Cookie parser -------------------------------------------------------------------------------

_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


def test_an_invalid_max_age_is_ignored_by_the_jar_and_the_extractor_alike() -> None:
    header = f"a=2; Max-Age=abc; Expires={_EPOCH}"
    parsed = parse_set_cookie(header)
    assert parsed is not None and parsed.deleted(time.time())  # Expires decides: deleted
    jar = CookieJar()
    jar.store("h", "/", ["a=1"])
    jar.store("h", "/", [header])
    assert jar.get("a") is None
    extractor = compile_extractor("a", Extract.model_validate({"cookie": "a"}))
    message = extractor.extract(Response("GET", "http://h/", 200, headers=[("Set-Cookie", header)]), {}, jar)
    assert message == "a: cookie a: this response deletes the cookie"
    kept = "a=3; Max-Age=60x; Expires=Fri, 01 Jan 2100 00:00:00 GMT"
    jar.store("h", "/", [kept])
    variables: dict[str, Any] = {}
    assert extractor.extract(Response("GET", "http://h/", 200, headers=[("Set-Cookie", kept)]), variables, jar) is None
    assert variables["a"] == jar.get("a") == "3"


# -- 14: deep HTML and invalid UTF-8 -------------------------------------------------------------------------


def _xpath(expr: str, body: bytes, ctype: str = "text/html") -> tuple[str | None, dict[str, Any]]:
    extractor = compile_extractor("v", Extract.model_validate({"xpath": expr}))
    variables: dict[str, Any] = {}
    message = extractor.extract(
        Response("GET", "http://h/", 200, headers=[("Content-Type", ctype)], body=body), variables
    )
    return message, variables


def test_deep_html_is_parsed_to_2048_levels_and_a_cut_says_so() -> None:
    deep = b"<html><body>" + b"<div>" * 1000 + b'<p id="x">found</p>' + b"</div>" * 1000 + b"</body></html>"
    assert _xpath("//p[@id='x']", deep) == (None, {"v": "found"})
    deeper = b"<html><body>" + b"<div>" * 3000 + b'<p id="x">found</p>' + b"</div>" * 3000 + b"</body></html>"
    message, _ = _xpath("//p[@id='x']", deeper)
    assert message == "v: xpath //p[@id='x']: HTML nested deeper than 2048 levels: lxml cut the document there"


def test_invalid_utf8_every_extractor_sees_the_same_text() -> None:
    body = b'{"name": "caf\xe9 \xff"}'  # latin-1 bytes in a body served as UTF-8
    html = b"<html><body><p>caf\xe9 \xff</p></body></html>"
    json_value = compile_extractor("v", Extract.model_validate({"jsonpath": "$.name"}))
    regex = compile_extractor("v", Extract.model_validate({"regex": '"name": "([^"]*)"'}))
    seen: list[Any] = []
    for extractor in (json_value, regex):
        variables: dict[str, Any] = {}
        assert extractor.extract(Response("GET", "http://h/", 200, body=body), variables) is None
        seen.append(variables["v"])
    seen.append(_xpath("//p", html)[1]["v"])
    seen.append(_xpath("//p", html.replace(b"html>", b"doc>"), "application/xml")[1]["v"])
    assert seen == ["caf\ufffd \ufffd"] * 4


# -- 15: a target refusing every connection ------------------------------------------------------------------


def test_unreachable_warns_once_after_a_few_seconds_of_connection_errors_only() -> None:
    now = [0.0]
    watch = Unreachable(after=3.0, clock=lambda: now[0])
    assert watch.note("connection refused (127.0.0.1:1)") is None
    now[0] = 2.0
    assert watch.note(None) is None  # a response starts the count again
    now[0] = 2.5
    assert watch.note("connection refused (127.0.0.1:1)") is None
    now[0] = 5.0
    assert watch.note("connection refused (127.0.0.1:1)") is None
    now[0] = 5.6
    warning = watch.note("connection refused (127.0.0.1:1)")
    assert warning is not None and "connection refused (127.0.0.1:1)" in warning
    now[0] = 20.0
    assert watch.note("connection refused (127.0.0.1:1)") is None  # once


def test_a_refusing_target_is_reported_loudly_once(tmp_path: Path, serve: Callable[..., HostileServer]) -> None:
    closed = serve(answer())
    port = closed.port
    closed.stop()  # nothing listens there any more
    scenario = "users: {u: {sequence: [{get: /, think: 0.01}]}}\n"
    result, results = run_scenario(tmp_path, scenario, "-H", f"http://127.0.0.1:{port}", "-u", "1", "-t", "5s")
    warnings = [w for w in results["warnings"] if "every request failed to connect" in w]
    assert len(warnings) == 1 and f"connection refused (127.0.0.1:{port})" in warnings[0], results["warnings"]
    assert "every request failed to connect" in result.stdout + result.stderr


# -- labels and template errors ------------------------------------------------------------------------------


def test_debug_shows_the_value_compared_and_results_keep_the_name_as_written(
    tmp_path: Path, serve: Callable[..., HostileServer]
) -> None:
    server = serve(answer(200, b'{"name": "Lamp"}', {"Content-Type": "application/json"}))
    scenario = (
        f"host: {server.url}\nvariables: {{want: Lamp, other: Desk}}\n"
        "users: {u: {sequence: [{get: /p, check: [\n"
        "  {jsonpath: $.name, equals: '{{ want }}'},\n"
        "  {jsonpath: $.name, equals: '{{ other }}'},\n"
        "  {contains: '{{ want }}'}]}]}}\n"
    )
    path = tmp_path / "s.yaml"
    path.write_text(scenario)
    debug = run_lrun("debug", str(path))
    assert "ok   jsonpath $.name equals 'Lamp'" in debug.stdout, debug.stdout
    assert "FAIL jsonpath $.name equals 'Desk': jsonpath $.name: expected 'Desk', got 'Lamp'" in debug.stdout
    assert "ok   body contains 'Lamp'" in debug.stdout
    _, results = run_scenario(tmp_path, scenario, "-u", "1", "-i", "2")
    names = {c["check"] for c in results["checks"]}  # checkpoints after the first failure are not run under load
    assert {"jsonpath $.name equals '{{ want }}'", "jsonpath $.name equals '{{ other }}'"} <= names
    assert not any("Lamp" in name or "Desk" in name for name in names)


def test_a_request_whose_template_fails_obeys_its_checkpoints_on_fail(
    tmp_path: Path, serve: Callable[..., HostileServer]
) -> None:
    server = serve(answer(200, b"no token here"))
    scenario = (
        f"host: {server.url}\nusers: {{u: {{sequence: [\n"
        "  {get: /login, extract: {token: {regex: 'token=(\\w+)', on_missing: warn}}},\n"
        "  {get: '/account/{{ token.upper() }}', name: account, check: [{status: 200, on_fail: stop_user}]},\n"
        "  {get: /after},\n"
        "]}}\n"
    )
    _result, results = run_scenario(tmp_path, scenario, "-u", "1", "-i", "3")
    targets = [r.target for r in server.requests]
    assert "/after" not in targets and targets == ["/login"], targets  # the user stopped at the first failure
    entries = {e["name"]: e for e in results["requests"]}
    assert (entries["account"]["requests"], entries["account"]["failures"]) == (1, 1)
    assert "template error" in results["errors"][0]["message"]


def test_validate_refuses_a_body_checkpoint_on_a_discarded_body(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(
        "host: http://127.0.0.1:1\nusers:\n  u:\n    sequence:\n"
        "      - get: /x\n        discard_body: true\n        extract: {n: {regex: 'n=(\\d+)'}}\n"
        "      - get: /y\n        discard_body: true\n        check: [{status: 200}, {header: X, exists: true}]\n"
    )
    result = run_lrun("validate", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "discard_body" in line]
    assert len(lines) == 1 and lines[0].startswith(f"{path}:6:"), result.stdout + result.stderr
    assert "extractor n (regex) reads it" in lines[0]

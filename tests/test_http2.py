"""HTTP/2 by ALPN against real servers on loopback: nginx's ``http2`` listener (its access log says which protocol
and which connection each request used) and ``h2_peer.py``, a Python h2 server that misbehaves on request."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import gevent
import pytest
from h2_servers import Nginx, h2_peer, nginx
from helpers import write

from conftest import run_lrun
from runner.compile.parallel import compile_parallel
from runner.engine.user import Step, VirtualUser
from runner.http import HttpSession
from runner.http import session as session_module
from runner.http.response import Response
from runner.scenario.model import ParallelStep

pytestmark = pytest.mark.skipif(
    shutil.which("nginx") is None or shutil.which("openssl") is None, reason="needs nginx and openssl"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    with nginx(tmp_path_factory.mktemp("nginx")) as started:
        yield started


@pytest.fixture
def fresh_log(server: Nginx) -> Nginx:
    """The server with an empty access log (nginx keeps appending to the same open file)."""
    (server.folder / "access.log").write_text("")
    return server


def _logged(server: Nginx, count: int) -> list[tuple[str, ...]]:
    deadline = time.monotonic() + 10
    while len(log := server.log()) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return log


def test_alpn_picks_http2_and_the_session_behaves_as_on_http1(fresh_log: Nginx) -> None:
    session = HttpSession(fresh_log.url, timeout=10, insecure=True)
    first = session.request("GET", "/")
    assert (first.status, first.body, first.protocol, first.error) == (200, b"hello\n", "HTTP/2", None)
    _dns, connect, tls, *exchange = first.timings  # the connection was opened for it: TLS took time
    assert connect > 0 and tls > 0 and min(exchange) >= 0
    assert abs(sum(first.timings) - first.elapsed_ms) < 1.0  # the phases add up to the response time
    assert first.header("content-type") == "text/plain"
    again = session.request("GET", "/login")
    assert again.status == 200
    assert again.timings[:3] == (0.0, 0.0, 0.0) and again.timings[4] > 0  # kept alive: no connect, a first byte
    cookie = session.request("GET", "/cookie")  # the jar's cookie went out as an HTTP/2 header
    assert cookie.body == b"sid=s3cr3t\n"
    moved = session.request("GET", "/moved")  # a redirect followed on the same connection
    assert (moved.status, moved.url, moved.json()) == (200, f"{fresh_log.url}/json", {"token": "abc123"})
    posted = session.request("POST", "/echo", body=b"x" * 300_000)  # past the 64 KiB initial window: flow control
    assert posted.body == b"POST 300000\n"
    session.close()
    log = _logged(fresh_log, 6)
    assert [(m, uri) for _, _, m, uri, _ in log] == [
        ("GET", "/"),
        ("GET", "/login"),
        ("GET", "/cookie"),
        ("GET", "/moved"),
        ("GET", "/json"),
        ("POST", "/echo"),
    ]
    assert {protocol for protocol, *_ in log} == {"HTTP/2.0"}
    assert len({connection for _, connection, *_ in log}) == 1  # one connection for all of them


def test_parallel_streams_get_only_their_own_connection_phases(
    fresh_log: Nginx, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three requests of a parallel group start at once; the first opens the user's HTTP/2 connection (its name
    takes 200 ms to resolve) and the other two wait to share it: only the opener has dns, connect and TLS; the
    others count the wait in their send phase (they once took the opener's phases as their own)."""
    real = session_module._addresses

    def resolve(host: str, port: int) -> list[Any]:
        gevent.sleep(0.2)
        return real(host, port)

    monkeypatch.setattr(session_module, "_addresses", resolve)
    session = HttpSession(fresh_log.url, timeout=10, insecure=True)
    responses: list[Response] = []

    def request(path: str) -> Step:
        return lambda user: responses.append(session.request("GET", path))

    group = ParallelStep.model_validate({"parallel": [{"get": "/"}, {"get": "/json"}, {"get": "/static/a"}]})
    [run] = compile_parallel(group, [request("/"), request("/json"), request("/static/a")], None)
    run(cast(VirtualUser, SimpleNamespace(session=session)))
    session.close()
    assert [(r.status, r.protocol) for r in responses] == [(200, "HTTP/2")] * 3, [r.error for r in responses]
    phases = [r.timings for r in responses if r.timings is not None]
    opened = [p for p in phases if p[:3] != (0.0, 0.0, 0.0)]
    assert len(opened) == 1, phases  # one connection, attributed to one request
    assert opened[0][0] >= 200 - 6 and opened[0][1] > 0 and opened[0][2] > 0, opened
    for timings in phases:
        if timings is not opened[0]:
            assert timings[3] >= 200 - 6, phases  # the sibling's connection was waited for: in send
    for response in responses:
        assert response.timings is not None and abs(sum(response.timings) - response.elapsed_ms) < 1.0
    log = _logged(fresh_log, 3)
    assert len({connection for _, connection, *_ in log}) == 1  # the server saw one connection


def test_http2_false_and_a_server_without_h2_keep_to_http1(fresh_log: Nginx) -> None:
    forced = HttpSession(fresh_log.url, timeout=10, insecure=True, http2=False)
    assert forced.request("GET", "/").protocol == "HTTP/1.1"
    plain = HttpSession(fresh_log.h1_url, timeout=10, insecure=True)  # offers h2; the server answers http/1.1
    assert plain.request("GET", "/").protocol == "HTTP/1.1"
    forced.close()
    plain.close()
    assert [protocol for protocol, *_ in _logged(fresh_log, 2)] == ["HTTP/1.1", "HTTP/1.1"]


SCENARIO = """
name: h2
host: {url}
http:
  timeout: 10s
users:
  browser:
{switch}    sequence:
      - get: /login
      - parallel:
          - get: /static/a.js
          - get: /static/b.css
          - get: /static/c.png
          - get: /static/d.woff
          - get: /json
            extract:
              token: {{jsonpath: $.token}}
        name: page
      - get: /cookie
        check:
          contains: "s3cr3t"
        query:
          token: "{{{{ token }}}}"
"""


def _run(tmp_path: Path, server: Nginx, switch: str = "") -> tuple[dict, str]:
    path = write(tmp_path, SCENARIO.format(url=server.url, switch=switch))
    out = tmp_path / "results.json"
    proc = run_lrun("run", str(path), "-u", "2", "-r", "10", "-i", "3", "--json", str(out), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc.stdout


def test_a_parallel_group_is_multiplexed_over_one_connection(tmp_path: Path, fresh_log: Nginx) -> None:
    results, console = _run(tmp_path, fresh_log)
    total = results["total"]
    assert (total["requests"], total["failures"], total["http2"]) == (42, 0, 42)  # 2 users x 3 x 7
    log = _logged(fresh_log, 42)
    assert len(log) == total["requests"]  # counted as the server counted them
    assert {protocol for protocol, *_ in log} == {"HTTP/2.0"}
    assert len({connection for _, connection, *_ in log}) == 2  # one connection per user, all requests on it
    entries = {e["name"]: e for e in results["requests"]}
    assert entries["/static/a.js"]["requests"] == 6 and entries["/static/a.js"]["http2"] == 6
    assert [t["name"] for t in results["transactions"]["entries"]] == ["page"]
    assert results["transactions"]["entries"][0]["requests"] == 6
    assert "Protocols: HTTP/2 42 requests, HTTP/1.1 0" in console
    assert total["timings"]["responses"] == 42 and total["timings"]["new_connections"] == 2  # phases over HTTP/2 too


def test_http2_false_for_a_user_type_uses_up_to_six_http1_connections(tmp_path: Path, fresh_log: Nginx) -> None:
    results, console = _run(tmp_path, fresh_log, switch="    http2: false\n")
    total = results["total"]
    assert (total["requests"], total["failures"], total["http2"]) == (42, 0, 0)
    log = _logged(fresh_log, 42)
    assert len(log) == 42 and {protocol for protocol, *_ in log} == {"HTTP/1.1"}
    per_user = len({connection for _, connection, *_ in log})
    assert 2 < per_user <= 2 * 6  # the group opened more than one connection per user, never more than six
    assert "Protocols:" not in console


FAILING = """
name: h2 failing
host: {url}
users:
  browser:
    sequence:
      - parallel:
          - get: /static/x.js
          - get: /missing
            check: {{status: 200, on_fail: stop_iteration}}
          - get: /static/y.css
        name: page
      - get: /json
"""


def test_a_failed_request_in_a_group_stops_the_iteration_after_the_group(tmp_path: Path, fresh_log: Nginx) -> None:
    path = write(tmp_path, FAILING.format(url=fresh_log.url))
    out = tmp_path / "results.json"
    proc = run_lrun("run", str(path), "-u", "1", "-i", "2", "--json", str(out), timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    results = json.loads(out.read_text())
    counts = {e["name"]: (e["requests"], e["failures"]) for e in results["requests"]}
    assert counts == {"/static/x.js": (2, 0), "/missing": (2, 2), "/static/y.css": (2, 0)}  # /json never sent
    page = results["transactions"]["entries"][0]
    assert (page["name"], page["requests"], page["failures"]) == ("page", 2, 2)
    uris = Counter(uri for _, _, _, uri, _ in _logged(fresh_log, 6))
    assert uris == {"/static/x.js": 2, "/missing": 2, "/static/y.css": 2}


def test_debug_shows_which_requests_went_over_http2(tmp_path: Path, server: Nginx) -> None:
    path = write(tmp_path, f"host: {server.url}\nusers:\n  u:\n    sequence:\n      - get: /json\n")
    proc = run_lrun("debug", str(path), "-H", server.h1_url)
    assert proc.returncode == 0 and "HTTP/2" not in proc.stdout, proc.stdout + proc.stderr
    proc = run_lrun("debug", str(path))
    assert proc.returncode == 0 and "/json -> 200" in proc.stdout and "HTTP/2" in proc.stdout, proc.stdout


# -- a hostile peer ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with h2_peer(tmp_path_factory.mktemp("peer")) as url:
        yield url


def test_goaway_mid_run_then_a_new_connection(peer: str) -> None:
    session = HttpSession(peer, timeout=10, insecure=True)
    before = int(session.request("GET", "/count").body)
    graceful = session.request("GET", "/goaway")  # answered, then GOAWAY(NO_ERROR) and the close
    assert (graceful.status, graceful.error, graceful.protocol) == (200, None, "HTTP/2")
    after = session.request("GET", "/count")
    assert (after.status, after.retries) == (200, 0)
    assert int(after.body) == before + 1  # the next request opened a new connection
    refused = session.request("GET", "/refuse")  # GOAWAY before handling it: retried once, then failed
    assert refused.status == 0 and refused.retries == 1 and refused.http2
    assert refused.error == "server sent GOAWAY (INTERNAL_ERROR) before handling the request"
    assert session.request("GET", "/").status == 200
    session.close()


def test_rst_stream_push_and_huge_headers_fail_the_request_with_their_reason(peer: str) -> None:
    session = HttpSession(peer, timeout=10, insecure=True)
    reset = session.request("GET", "/reset")
    assert (reset.status, reset.error) == (0, "stream reset by the server (RST_STREAM INTERNAL_ERROR)")
    assert session.request("GET", "/").status == 200  # the connection survives a reset stream
    pushed = session.request("GET", "/push")
    assert pushed.status == 0 and "HTTP/2 protocol error from the server" in (pushed.error or "")
    bad = session.request("GET", "/badstatus")
    assert (bad.status, bad.error) == (0, "malformed response: no valid :status")
    huge = session.request("GET", "/headers")  # 256 KiB of headers, past the 64 KiB bound
    assert huge.status == 0 and "header" in (huge.error or "").lower()
    assert session.request("GET", "/").status == 200  # a new connection each time
    session.close()


def test_an_endless_body_ends_at_the_deadline_with_bounded_memory(peer: str) -> None:
    session = HttpSession(peer, timeout=2, insecure=True, max_body=2**20)
    started = time.monotonic()
    endless = session.request("GET", "/endless")
    assert time.monotonic() - started < 10
    assert endless.status == 0 and endless.error == "timed out after 2s (HTTP/2 exchange)"
    assert endless.body == b""
    ok = session.request("GET", "/")
    assert ok.status == 200  # on the same connection (the stream was cancelled) or, if the peer gave up, a new one
    session.close()


# -- the language -----------------------------------------------------------------------------------------------


def test_validate_refuses_think_in_a_group_and_a_sibling_reading_an_extract(tmp_path: Path) -> None:
    think = write(
        tmp_path,
        "host: https://127.0.0.1:1\nusers:\n  u:\n    sequence:\n      - parallel:\n"
        "          - get: /a\n            think: 1\n",
    )
    proc = run_lrun("validate", str(think))
    assert proc.returncode == 2
    assert f"{think}:6:" in proc.stdout + proc.stderr and "think step after" in proc.stdout + proc.stderr
    other = write(
        tmp_path,
        "host: https://127.0.0.1:1\nusers:\n  u:\n    sequence:\n      - parallel:\n          - get: /a\n"
        "          - think: 1\n",
        "other.yaml",
    )
    proc = run_lrun("validate", str(other))
    assert proc.returncode == 2
    assert f"{other}:6:" in proc.stdout + proc.stderr and "item 2 is a think step" in proc.stdout + proc.stderr
    sibling = write(
        tmp_path,
        "host: https://127.0.0.1:1\nusers:\n  u:\n    sequence:\n      - parallel:\n"
        "          - get: /a\n            extract:\n              t: {jsonpath: $.t}\n"
        "          - get: /b/{{ t }}\n",
        "sibling.yaml",
    )
    proc = run_lrun("validate", str(sibling))
    assert proc.returncode == 2
    assert f"{sibling}:9:" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_counts_by_protocol_merge_like_retries() -> None:
    from runner.stats.period import Period

    one, two = Period(), Period()
    one.http2, two.http2 = 3, 4
    one.merge(two)
    assert one.http2 == 7
    one.counts, one.count = {1000: 7}, 7
    parsed = Period.parse(one.to_dict())
    assert parsed[11] == 7
    three = Period()
    three.add_parsed(parsed)
    assert three.http2 == 7


def test_counts_by_protocol_add_up_across_worker_processes(tmp_path: Path, fresh_log: Nginx) -> None:
    path = write(
        tmp_path,
        f"host: {fresh_log.url}\nusers:\n  u:\n    sequence:\n"
        "      - parallel: [{get: /static/a}, {get: /static/b}]\n",
    )
    out = tmp_path / "results.json"
    proc = run_lrun("run", str(path), "-u", "4", "-r", "10", "-i", "5", "--processes", "2", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    total = json.loads(out.read_text())["total"]
    log = _logged(fresh_log, 40)
    assert (total["requests"], total["http2"], len(log)) == (40, 40, 40)
    assert len({connection for _, connection, *_ in log}) == 4  # one connection per user, users in two processes
    assert "Protocols: HTTP/2 40 requests, HTTP/1.1 0" in proc.stdout

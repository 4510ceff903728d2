"""The built-in demo shop, tested through a real child process over loopback HTTP."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from runner.demo import DemoProcess, start_demo
from runner.demo import process as demo_process
from runner.errors import RunError

TIMEOUT = 10.0
SESSION_RE = re.compile(
    r'<div class="btnbox"><input type="hidden" name="session" value="([0-9a-f]+)"/> '
    r'<input type="submit" value="Log in"/></div>'
)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        assert self.headers["Content-Type"] == "application/json"
        return json.loads(self.body)


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoProcess]:
    with start_demo() as process:
        yield process
    assert process.returncode is not None, "the demo process is still running"


def call(
    demo: DemoProcess,
    method: str,
    path: str,
    *,
    data: bytes | None = None,
    json_body: Any = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    headers = dict(headers or {})
    if json_body is not None:
        data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    elif form is not None:
        data, headers["Content-Type"] = urlencode(form).encode(), "application/x-www-form-urlencoded"
    request = urllib.request.Request(demo.url + path, data=data, headers=headers, method=method)
    try:
        with OPENER.open(request, timeout=TIMEOUT) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as e:
        with e:
            return Reply(e.code, e.headers, e.read())


def get_session(demo: DemoProcess) -> str:
    match = SESSION_RE.search(call(demo, "GET", "/login").text)
    assert match
    return match.group(1)


def login(demo: DemoProcess, user: str = "alice") -> Reply:
    reply = call(demo, "POST", "/login", form={"user": user, "password": "secret", "session": get_session(demo)})
    assert reply.status == 200
    return reply


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- pages ---------------------------------------------------------------------------------------------


def test_home_and_about_are_html(demo: DemoProcess) -> None:
    home = call(demo, "GET", "/")
    assert home.status == 200
    assert home.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>lrun demo shop</title>" in home.text
    for link in ("/login", "/items", "/about"):
        assert f'href="{link}"' in home.text
    about = call(demo, "GET", "/about")
    assert about.status == 200 and "<html>" in about.text


def test_login_page_has_correlation_values_and_a_sid_cookie(demo: DemoProcess) -> None:
    page = call(demo, "GET", "/login")
    assert page.status == 200
    assert "Welcome to the demo shop" in page.text
    assert '<form method="post" action="/login">' in page.text
    assert 'name="user"' in page.text and 'name="password"' in page.text
    assert re.search(r'var csrf = "[0-9a-f]+";', page.text)
    assert SESSION_RE.search(page.text)
    assert re.fullmatch(r"demo_sid=[0-9a-f]+; Path=/; HttpOnly", page.headers["Set-Cookie"])
    assert get_session(demo) != get_session(demo)


def test_login_checks_session_then_credentials(demo: DemoProcess) -> None:
    bad_session = call(demo, "POST", "/login", form={"user": "bob", "password": "secret", "session": "nope"})
    assert (bad_session.status, bad_session.json()) == (403, {"error": "invalid session"})
    wrong = call(demo, "POST", "/login", form={"user": "bob", "password": "guess", "session": get_session(demo)})
    assert (wrong.status, wrong.json()) == (401, {"error": "bad credentials"})
    ok = login(demo, "bob")
    body = ok.json()
    assert body["status"] == "ok" and body["user"] == "bob" and re.fullmatch(r"[0-9a-f]{32}", body["token"])
    assert ok.headers["Set-Cookie"] == "demo_user=bob; Path=/"


def test_login_accepts_json(demo: DemoProcess) -> None:
    reply = call(
        demo,
        "POST",
        "/login",
        json_body={"user": "carol", "password": "secret", "session": get_session(demo)},
    )
    assert reply.status == 200 and reply.json()["user"] == "carol"


# -- catalog -------------------------------------------------------------------------------------------


def test_items_list_and_item(demo: DemoProcess) -> None:
    items = call(demo, "GET", "/items").json()["items"]
    assert [item["id"] for item in items] == list(range(1, 11))
    assert all(isinstance(item["name"], str) and isinstance(item["price"], float) for item in items)
    assert call(demo, "GET", "/items/3").json() == items[2]
    for bad in ("0", "11", "abc"):
        reply = call(demo, "GET", f"/items/{bad}")
        assert (reply.status, reply.json()) == (404, {"error": "no such item"})


def test_item_as_html(demo: DemoProcess) -> None:
    item = call(demo, "GET", "/items/1").json()
    page = call(demo, "GET", "/items/1?format=html")
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert f'<h1 class="name">{item["name"]}</h1>' in page.text
    assert f'<span class="price">{item["price"]:.2f}</span>' in page.text


def test_xml_catalog(demo: DemoProcess) -> None:
    reply = call(demo, "GET", "/xml")
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/xml"
    root = ET.fromstring(reply.body)
    assert root.tag == "catalog"
    assert [item.get("id") for item in root.findall("item")] == ["1", "2", "3"]
    assert all(item.findtext("name") and item.findtext("price") for item in root.findall("item"))


def test_json_document(demo: DemoProcess) -> None:
    first, second = call(demo, "GET", "/json").json(), call(demo, "GET", "/json").json()
    assert first["status"] == "ok" and re.fullmatch(r"[0-9a-f]+", first["token"])
    assert first["token"] != second["token"]


# -- orders, accounts ----------------------------------------------------------------------------------


def test_orders_need_a_bearer_token(demo: DemoProcess) -> None:
    for headers in ({}, bearer("forged"), {"Authorization": "Basic abc"}):
        reply = call(demo, "POST", "/orders", json_body={"item": 1}, headers=headers)
        assert reply.status == 401 and "error" in reply.json()
    assert call(demo, "GET", "/orders").status == 401


def test_orders_are_validated_and_listed_per_user(demo: DemoProcess) -> None:
    dave, erin = (bearer(login(demo, user).json()["token"]) for user in ("dave", "erin"))
    for body in ({"item": 0}, {"item": "x"}, {}):
        reply = call(demo, "POST", "/orders", json_body=body, headers=dave)
        assert (reply.status, reply.json()) == (400, {"error": "no such item"})
    assert call(demo, "POST", "/orders", json_body={"item": 1, "quantity": 0}, headers=dave).status == 400
    not_json = call(demo, "POST", "/orders", data=b"{x", headers={**dave, "Content-Type": "application/json"})
    assert (not_json.status, not_json.json()) == (400, {"error": "invalid JSON body"})

    created = call(demo, "POST", "/orders", json_body={"item": 2, "quantity": 3}, headers=dave)
    assert created.status == 201
    body = created.json()
    assert body["status"] == "ok" and (body["item"], body["quantity"]) == (2, 3)
    assert isinstance(body["order_id"], int)
    default = call(demo, "POST", "/orders", json_body={"item": 5}, headers=erin).json()
    assert default["quantity"] == 1 and default["order_id"] > body["order_id"]

    mine = call(demo, "GET", "/orders", headers=dave).json()
    assert [o["order_id"] for o in mine] == [body["order_id"]]
    assert mine[0]["user"] == "dave" and abs(mine[0]["time"] - time.time()) < 60


def test_register_counts_phones(demo: DemoProcess) -> None:
    phone = f"+1-{uuid.uuid4().hex[:10]}"
    first = call(demo, "POST", "/register", json_body={"phone": phone, "name": "Zoe"})
    assert (first.status, first.json()) == (201, {"status": "ok", "phone": phone, "name": "Zoe"})
    again = call(demo, "POST", "/register", form={"phone": phone})
    assert (again.status, again.json()) == (409, {"error": "phone already registered"})
    missing = call(demo, "POST", "/register", form={"name": "nobody"})
    assert (missing.status, missing.json()) == (400, {"error": "phone required"})
    assert call(demo, "GET", "/__stats").json()["registrations"][phone] == 2


def test_profile_needs_the_login_cookie(demo: DemoProcess) -> None:
    assert call(demo, "GET", "/profile").status == 401
    assert call(demo, "GET", "/profile", headers={"Cookie": "demo_user=stranger"}).status == 401
    cookie = login(demo, "frank").headers["Set-Cookie"].split(";")[0]
    first = call(demo, "GET", "/profile", headers={"Cookie": cookie})
    assert first.status == 200
    assert first.json()["user"] == "frank" and isinstance(first.json()["credit_limit"], int)
    assert call(demo, "GET", "/profile", headers={"Cookie": cookie}).json() == first.json()


# -- test helpers --------------------------------------------------------------------------------------


def test_slow_sleeps(demo: DemoProcess) -> None:
    started = time.monotonic()
    assert call(demo, "GET", "/slow?ms=150").json() == {"slept_ms": 150}
    assert time.monotonic() - started >= 0.14
    assert call(demo, "GET", "/slow?ms=-5").json() == {"slept_ms": 0}
    assert call(demo, "GET", "/slow?ms=soon").status == 400


def test_fail_on_purpose(demo: DemoProcess) -> None:
    reply = call(demo, "GET", "/fail")
    assert (reply.status, reply.text) == (500, "internal error (on purpose)")
    assert call(demo, "GET", "/fail?status=503").status == 503
    assert call(demo, "GET", "/fail?status=200").status == 400


def test_echo_returns_the_request(demo: DemoProcess) -> None:
    reply = call(
        demo,
        "PUT",
        "/echo?a=1&a=2&b=",
        json_body={"x": [1, 2]},
        headers={"X-Trace": "t-1", "Cookie": "c1=v1; c2=hello%20world"},
    )
    body = reply.json()
    assert body["method"] == "PUT" and body["path"] == "/echo"
    assert body["query"] == {"a": ["1", "2"], "b": [""]}
    assert body["headers"]["x-trace"] == "t-1" and body["headers"]["content-type"] == "application/json"
    assert body["cookies"] == {"c1": "v1", "c2": "hello world"}
    assert json.loads(body["body"]) == {"x": [1, 2]} and body["json"] == {"x": [1, 2]}
    assert body["form"] is None

    posted = call(demo, "POST", "/echo", form={"k": "v w"}).json()
    assert posted["form"] == {"k": ["v w"]} and posted["json"] is None and posted["body"] == "k=v+w"
    assert call(demo, "DELETE", "/echo").json()["body"] == ""


def test_redirect_only_to_relative_paths(demo: DemoProcess) -> None:
    reply = call(demo, "GET", "/redirect?to=/items")
    assert (reply.status, reply.headers["Location"]) == (302, "/items")
    assert call(demo, "GET", "/redirect?to=/items&status=307").status == 307
    for target in ("http://example.com/", "//example.com/", "items"):
        assert call(demo, "GET", "/redirect?" + urlencode({"to": target})).status == 400


def test_cookies_set_and_read(demo: DemoProcess) -> None:
    reply = call(demo, "GET", "/cookies/set?flavor=oat&size=big%20one")
    assert reply.json() == {"cookies": {"flavor": "oat", "size": "big one"}}
    assert reply.headers.get_all("Set-Cookie") == ["flavor=oat; Path=/", "size=big%20one; Path=/"]
    echoed = call(demo, "GET", "/cookies", headers={"Cookie": "flavor=oat; size=big%20one"})
    assert echoed.json() == {"cookies": {"flavor": "oat", "size": "big one"}}


def test_not_found_and_method_not_allowed(demo: DemoProcess) -> None:
    missing = call(demo, "GET", "/nowhere")
    assert (missing.status, missing.json()) == (404, {"error": "not found"})
    wrong = call(demo, "DELETE", "/items")
    assert (wrong.status, wrong.json()) == (405, {"error": "method not allowed"})
    assert wrong.headers["Allow"] == "GET"


def test_stats_and_reset(demo: DemoProcess) -> None:
    assert call(demo, "POST", "/__reset").json() == {"status": "ok"}
    assert call(demo, "GET", "/__stats").json() == {
        "requests": 0,
        "by_path": {},
        "registrations": {},
        "orders": [],
        "logins": 0,
        "xmlrpc": {"calls": {}, "faults": {}},
        "grpc": {"calls": {}, "sent": {}, "received": {}, "errors": {}},
        "websocket": {
            "upgrades": {},
            "received": {},
            "sent": {},
            "closes": {},
            "open": 0,
            "sse": {"subscriptions": 0, "resumed": 0, "events": 0},
        },
        "graphql": {
            "operations": {},
            "errors": 0,
            "subscriptions": {
                "connections": 0, "subscriptions": 0, "by_operation": {}, "events": 0, "completed": 0, "cancelled": 0,
                "errors": 0,
            },
        },
    }  # fmt: skip
    call(demo, "GET", "/")
    call(demo, "GET", "/items/1")
    call(demo, "GET", "/items/2")
    call(demo, "GET", "/nowhere")
    call(demo, "POST", "/register", form={"phone": "555"})
    call(demo, "POST", "/register", form={"phone": "555"})
    token = login(demo, "gina").json()["token"]
    before = time.time()
    call(demo, "POST", "/orders", json_body={"item": 4}, headers=bearer(token))
    stats = call(demo, "GET", "/__stats").json()
    assert stats["by_path"] == {
        "GET /": 1,
        "GET /items/<id>": 2,
        "GET <not found>": 1,
        "POST /register": 2,
        "GET /login": 1,
        "POST /login": 1,
        "POST /orders": 1,
    }
    assert stats["requests"] == 9 and stats["logins"] == 1
    assert stats["registrations"] == {"555": 2}
    [order] = stats["orders"]
    assert (order["user"], order["item"], order["quantity"]) == ("gina", 4, 1)
    assert before - 1 <= order["time"] <= time.time() + 1
    # state is gone after a reset: the token no longer works
    call(demo, "POST", "/__reset")
    assert call(demo, "GET", "/orders", headers=bearer(token)).status == 401


# -- HTTP behaviour ------------------------------------------------------------------------------------


def test_keep_alive_and_head(demo: DemoProcess) -> None:
    parts = urlsplit(demo.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/items")
        first = conn.getresponse()
        assert first.status == 200 and len(first.read()) == int(first.headers["Content-Length"])
        sock = conn.sock
        conn.request("HEAD", "/items")
        head = conn.getresponse()
        assert head.status == 200 and int(head.headers["Content-Length"]) > 0 and head.read() == b""
        conn.request("POST", "/echo", body=b"hi", headers={"Content-Type": "text/plain"})
        echoed = conn.getresponse()
        assert json.loads(echoed.read())["body"] == "hi"
        assert conn.sock is sock, "the connection was not kept alive"
        # Nagle + delayed ACK would make each keep-alive response take ~40 ms: 30 of them ~1.2 s
        started = time.monotonic()
        for _ in range(30):
            conn.request("GET", "/json")
            conn.getresponse().read()
        assert time.monotonic() - started < 0.6
    finally:
        conn.close()


# -- the process -------------------------------------------------------------------------------------------


def spawn_demo() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        demo_process._command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        line = demo_process._first_line(proc, TIMEOUT)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    assert re.fullmatch(r"lrun demo target listening on http://127\.0\.0\.1:\d+", line)
    return proc, line


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    """Wait (bounded) for ``proc`` to exit by itself; its exit code and stderr."""
    assert proc.stderr is not None and proc.stdout is not None
    try:
        proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    finally:
        err = proc.stderr.read().decode()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    return proc.returncode, err


def test_exits_when_stdin_closes() -> None:
    proc, _ = spawn_demo()
    assert proc.stdin is not None
    proc.stdin.close()
    assert finish(proc) == (0, "")


def test_ctrl_c_stops_cleanly() -> None:
    proc, _ = spawn_demo()
    os.kill(proc.pid, signal.SIGINT)
    assert finish(proc) == (0, "")


def test_stop_is_idempotent() -> None:
    process = start_demo()
    process.stop()
    process.stop()
    assert process.returncode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)


def test_start_failure_reports_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import sys; sys.stderr.write('boom'); sys.exit(3)"
    monkeypatch.setattr(demo_process, "_command", lambda: [sys.executable, "-c", code])
    with pytest.raises(RunError, match=r"(?s)exited with code 3.*boom"):
        start_demo()


def test_start_failure_on_a_busy_port(demo: DemoProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    port = str(urlsplit(demo.url).port)
    monkeypatch.setattr(demo_process, "_command", lambda: [sys.executable, "-m", "runner.demo", "--port", port])
    with pytest.raises(RunError, match="cannot listen on 127.0.0.1:" + port):
        start_demo()


def test_start_timeout_kills_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    code = "import os, sys, time; print(os.getpid(), file=sys.stderr, flush=True); time.sleep(30)"
    monkeypatch.setattr(demo_process, "_command", lambda: [sys.executable, "-c", code])
    started = time.monotonic()
    with pytest.raises(RunError, match="no ready line within 1 s") as info:
        start_demo(timeout=1)
    assert time.monotonic() - started < 8
    pid = int(str(info.value).rsplit("\n", 1)[-1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

"""WebSocket steps: real lrun runs against the demo target's /ws endpoints (counts compared with the server's own)
and against scripted hostile servers on loopback; static validation at file:line:col."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import ssl
import struct
import threading
import time
from pathlib import Path

import pytest
from helpers import by_name, demo_reset, demo_stats, run_json, run_measured, write
from scripted import GUID, ws_frame, ws_handshake

from conftest import ROOT, run_lrun

pytestmark = pytest.mark.e2e

FEED = """
host: {host}
load: {{users: 3, iterations: 4}}
users:
  trader:
    on_start:
      - ws_connect: /ws/prices?interval=20
        as: feed
      - ws_receive: {{jsonpath: $.type, equals: welcome}}
        connection: feed
        extract:
          session: {{jsonpath: $.session}}
      - ws_send: {{json: {{type: subscribe, symbol: ACME, session: "{{{{ session }}}}"}}}}
        connection: feed
        expect: {{jsonpath: $.type, equals: subscribed}}
        name: subscribe
    sequence:
      - ws_connect: /ws/echo
      - ws_send: "hello {{{{ user_id }}}}"
        expect: {{contains: hello}}
        check: {{matches: "hello \\\\d+"}}
        name: echo
      - ws_receive: {{jsonpath: $.type, equals: price}}
        connection: feed
        name: tick
      - ws_send: {{json: {{type: quote, symbol: ACME, id: "{{{{ iteration }}}}"}}}}
        connection: feed
        expect: {{jsonpath: $.id, equals: "{{{{ iteration }}}}"}}
        extract:
          price: {{jsonpath: $.price}}
        name: quote
      - think: 100ms
    on_stop:
      - ws_ping: feed
      - ws_close: feed
      - ws_close: ws
"""


def test_counts_match_the_servers_own(tmp_path: Path, demo_url: str) -> None:
    demo_reset(demo_url)
    result, results = run_json(tmp_path, str(write(tmp_path, FEED.format(host=demo_url))))
    assert result.returncode == 0, result.stdout + result.stderr
    entries = {k: v for k, v in by_name(results).items() if k.startswith("WS ")}
    failures = sum(e["failures"] for e in entries.values())
    assert failures == 0, results["failures"]
    server = demo_stats(demo_url)["websocket"]
    counts = {k: e["requests"] for k, e in entries.items()}
    assert counts["WS /ws/prices?interval=20"] == server["upgrades"]["/ws/prices"] == 3
    assert counts["WS /ws/echo"] == server["upgrades"]["/ws/echo"] == 3  # kept across the 4 iterations
    assert counts["WS echo"] == server["received"]["/ws/echo"] == server["sent"]["/ws/echo"] == 12
    assert counts["WS quote"] == 12 and counts["WS tick"] == 12 and counts["WS ping feed"] == 3
    # every message the feed sent was received: waited for, or counted unread (nothing is lost or made up)
    feed = ("WS receive feed", "WS subscribe", "WS tick", "WS quote", "WS feed unread")
    assert sum(counts.get(k, 0) for k in feed) == server["sent"]["/ws/prices"]
    assert counts["WS feed unread"] > 0
    assert server["received"]["/ws/prices"] == 3 + 12  # the subscriptions and the quotes
    assert server["closes"] == {"1000": 6} and server["open"] == 0
    assert entries["WS echo"]["total_bytes"] == sum(len(f"hello {n}") for n in (1, 2, 3)) * 4


def test_debug_shows_each_step_and_what_it_saved(tmp_path: Path, demo_url: str) -> None:
    result = run_lrun("debug", str(write(tmp_path, FEED.format(host=demo_url))), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "WS /ws/echo -> 101" in out and "[quote]" in out
    assert "saved session = " in out and "saved price = " in out
    assert "ok   body matches 'hello \\d+'" in out


def test_the_example_scenario_validates_and_runs_on_the_demo(tmp_path: Path) -> None:
    example = ROOT / "scenarios" / "websocket.yaml"
    assert run_lrun("validate", str(example)).returncode == 0
    result, results = run_json(tmp_path, str(example), "-t", "3s", "-u", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    entries = by_name(results)
    assert entries["WS quote"]["requests"] > 0 and entries["WS quote"]["failures"] == 0


# ---------------------------------------------------------------------------------------- static validation


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ("- ws_send: hi\n        connection: chat", "no WebSocket named 'chat' is opened by this user"),
        ("- ws_receive: {status: 200}", "match a message by jsonpath"),
        ("- ws_receive: next\n        extract: {x: {header: Location}}", "reads a header, which a message has not"),
        ("- ws_send: hi\n        check: {contains: x}", "extract and check read the reply: say which with expect"),
        ("- ws_send: {text: a, json: {b: 1}}", "a message is one of: text, json, binary"),
        ("- ws_close: ws\n        code: 99", "must be at least 1000; got 99"),
    ],
)
def test_mistakes_are_one_line_at_their_place(tmp_path: Path, steps: str, expected: str) -> None:
    text = f"host: http://127.0.0.1:9\nusers:\n  u:\n    sequence:\n      - ws_connect: /ws\n      {steps}\n"
    result = run_lrun("validate", str(write(tmp_path, text)))
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stdout + result.stderr
    assert re.search(r"scenario\.yaml:[67]:\d+: ", result.stdout + result.stderr)  # the step, or its key
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------- hostile servers


ONE = """
host: http://127.0.0.1:{port}
load: {{users: 1, iterations: 1}}
users:
  u:
    sequence:
      - ws_connect: /ws
        timeout: 1s
        max_message: 64KiB
      - ws_receive: next
        timeout: 2s
"""


def _failures(tmp_path: Path, port: int) -> tuple[dict[str, dict], list[str], float]:
    started = time.monotonic()
    result, results = run_json(tmp_path, str(write(tmp_path, ONE.format(port=port))), timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    return by_name(results), [f["message"] for f in results["errors"]], time.monotonic() - started


def test_a_server_that_never_answers_the_upgrade(tmp_path: Path, scripted) -> None:  # type: ignore[no-untyped-def]
    server = scripted(lambda conn, stop: stop.wait(10))
    entries, messages, seconds = _failures(tmp_path, server.port)
    assert entries["WS /ws"]["failures"] == 1
    assert "timed out after 1s (opening the WebSocket)" in messages
    assert "WebSocket 'ws' is not open: timed out after 1s (opening the WebSocket)" in messages  # the receive
    assert seconds < 30


def test_a_200_instead_of_101(tmp_path: Path, scripted) -> None:  # type: ignore[no-untyped-def]
    def ok(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        stop.wait(5)

    entries, messages, _ = _failures(tmp_path, scripted(ok).port)
    assert entries["WS /ws"]["failures"] == 1
    assert "the server refused the upgrade: HTTP 200 instead of 101" in messages


def _endless_fragments(conn: socket.socket) -> None:
    conn.sendall(ws_frame(b"y" * 1024, opcode=1, fin=False))
    for _ in range(100_000):  # until the client closes
        conn.sendall(ws_frame(b"y" * 1024, opcode=0, fin=False))


def _drip_then_close(conn: socket.socket) -> None:
    """Half of a 60,000-byte frame in 100-byte pieces (the fast path hands it to wsproto), then the close."""
    frame = ws_frame(b"d" * 60_000)
    for at in range(0, 30_000, 100):
        conn.sendall(frame[at : at + 100])


@pytest.mark.parametrize(
    ("send", "reason"),
    [
        (lambda c: c.sendall(ws_frame(b"h" * 1000)[:500]), "closed the connection in the middle of a message"),
        (_drip_then_close, "closed the connection in the middle of a message"),
        (lambda c: c.sendall(ws_frame(b"x" * 100_000, length=10 * 2**20)), "a message of more than 65536 bytes"),
        (_endless_fragments, "a message of more than 65536 bytes"),
        (lambda c: c.sendall(ws_frame(b"half", fin=False)), "closed the connection in the middle of a message"),
    ],
    ids=["closed mid-frame", "dripped then closed", "frame over the limit", "endless fragments", "closed mid-message"],
)
def test_hostile_frames_fail_the_step_with_their_reason(tmp_path: Path, scripted, send, reason) -> None:  # type: ignore[no-untyped-def]
    def script(conn: socket.socket, stop: threading.Event) -> None:
        ws_handshake(conn)
        send(conn)
        if "middle" not in reason:
            stop.wait(10)  # the client is the one to give up

    entries, messages, seconds = _failures(tmp_path, scripted(script).port)
    assert entries["WS /ws"]["failures"] == 0
    assert entries["WS receive ws"]["failures"] == 1
    assert any(reason in m for m in messages), messages
    assert seconds < 30


def test_a_flood_nobody_reads_is_counted_in_bounded_memory_and_the_run_ends_on_time(tmp_path: Path, scripted) -> None:  # type: ignore[no-untyped-def]
    sent = [0]

    def flood(conn: socket.socket, stop: threading.Event) -> None:
        ws_handshake(conn)
        frame = ws_frame(b"z" * 200)
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline:
            conn.sendall(frame * 50)
            sent[0] += 50

    server = scripted(flood)
    text = f"""
host: http://127.0.0.1:{server.port}
load: {{users: 1, run_time: 3s}}
users:
  u:
    sequence:
      - ws_connect: /ws
        buffer: 100
      - think: 1s
"""
    out = tmp_path / "results.json"
    code, err, seconds, peak = run_measured(
        tmp_path, "run", str(write(tmp_path, text)), "--json", str(out), "--only-summary"
    )
    assert code == 0, err

    results = json.loads(out.read_text())
    unread = by_name(results)["WS ws unread"]
    assert 1000 < unread["requests"] <= sent[0]  # counted, never more than the server sent
    assert unread["total_bytes"] == unread["requests"] * 200
    assert seconds < 20 and peak < 300, (seconds, peak)


def _exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _client_frame(conn: socket.socket) -> tuple[int, bytes]:
    """(opcode, unmasked payload) of the next frame the client sent."""
    head = _exactly(conn, 2)
    n = head[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", _exactly(conn, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _exactly(conn, 8))[0]
    key = _exactly(conn, 4)
    return head[0] & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(_exactly(conn, n)))


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server's TLS context with a self-signed certificate (lrun does not verify it)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run([*command, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_a_waiting_user_reads_past_other_messages_and_answers_pings(  # type: ignore[no-untyped-def]
    tmp_path: Path, scripted, tls: bool, request: pytest.FixtureRequest
) -> None:
    """Each echo comes after other messages and a ping, and is followed by more: the step waiting for the echo
    (which reads the socket itself, over TLS too) and the background reader (during the think) share the
    counting. Over TLS the three parts go in three records (sendall each)."""
    counts = {"other": 0, "pings": 0, "pongs": 0, "echoes": 0}
    context = request.getfixturevalue("server_tls") if tls else None

    def script(conn: socket.socket, stop: threading.Event) -> None:
        if context is not None:
            conn = context.wrap_socket(conn, server_side=True)
        ws_handshake(conn)
        conn.settimeout(20)
        while not stop.is_set():
            opcode, data = _client_frame(conn)
            if opcode == 0x8:
                conn.sendall(ws_frame(data[:2], opcode=0x8))
                return
            if opcode == 0xA:
                counts["pongs"] += 1
                continue
            before, after = ws_frame(b"other") * 3 + ws_frame(b"p", opcode=0x9), ws_frame(b"later") * 2
            counts["other"] += 5
            counts["pings"] += 1
            counts["echoes"] += 1
            if context is None:
                conn.sendall(before + ws_frame(b"echo " + data) + after)
            else:
                for part in (before, ws_frame(b"echo " + data), after):
                    conn.sendall(part)

    text = f"""
host: http{"s" if tls else ""}://127.0.0.1:{scripted(script).port}
load: {{users: 2, iterations: 40}}
users:
  u:
    on_start:
      - ws_connect: /ws
        buffer: 10
    sequence:
      - ws_send: "hi {{{{ iteration }}}}"
        expect: {{contains: "echo hi"}}
        timeout: 5s
        name: echo
      - think: 3ms
    on_stop:
      - ws_close: ws
"""
    result, results = run_json(tmp_path, str(write(tmp_path, text)), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    entries = by_name(results)
    assert entries["WS echo"]["requests"] == counts["echoes"] == 80
    assert entries["WS echo"]["failures"] == 0
    assert entries["WS ws unread"]["requests"] == counts["other"] == 400  # each one counted once
    assert counts["pongs"] == counts["pings"] == 80
    assert entries["WS close ws"]["failures"] == 0


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_a_reply_that_never_comes_times_out_through_a_flood(  # type: ignore[no-untyped-def]
    tmp_path: Path, scripted, tls: bool, request: pytest.FixtureRequest
) -> None:
    sent = [0]
    context = request.getfixturevalue("server_tls") if tls else None

    def flood(conn: socket.socket, stop: threading.Event) -> None:
        if context is not None:
            conn = context.wrap_socket(conn, server_side=True)
        ws_handshake(conn)
        _client_frame(conn)
        frame = ws_frame(b"z" * 100)
        deadline = time.monotonic() + 15
        while not stop.is_set() and time.monotonic() < deadline:
            conn.sendall(frame * 50)
            sent[0] += 50

    text = f"""
host: http{"s" if tls else ""}://127.0.0.1:{scripted(flood).port}
load: {{users: 1, iterations: 1}}
users:
  u:
    sequence:
      - ws_connect: /ws
        buffer: 100
      - ws_send: ask
        expect: {{contains: never}}
        timeout: 1s
        name: ask
"""
    started = time.monotonic()
    result, results = run_json(tmp_path, str(write(tmp_path, text)), timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    entries = by_name(results)
    assert entries["WS ask"]["failures"] == 1
    assert [f["message"] for f in results["errors"]] == ["no matching message within 1s"]
    assert 100 < entries["WS ws unread"]["requests"] <= sent[0]
    assert time.monotonic() - started < 15


def test_the_guides_examples_validate(tmp_path: Path) -> None:
    guide = (ROOT / "docs" / "how-to" / "websocket.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", guide, re.DOTALL)
    assert blocks
    for index, block in enumerate(blocks):
        result = run_lrun("validate", str(write(tmp_path, block, f"example{index}.yaml")))
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_upgrade_carries_the_users_headers_cookies_and_subprotocols(tmp_path: Path, scripted) -> None:  # type: ignore[no-untyped-def]
    heads: list[bytes] = []

    def record(conn: socket.socket, stop: threading.Event) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        heads.append(data)
        if b"GET /login" in data:
            conn.sendall(b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=abc123; Path=/\r\nConnection: close\r\n\r\n")
            return
        key = next(
            line.split(b":", 1)[1].strip()
            for line in data.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Protocol: chat.v2\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        stop.wait(3)

    server = scripted(record)
    text = f"""
host: http://127.0.0.1:{server.port}
headers: {{X-Tenant: blue}}
load: {{users: 1, iterations: 1}}
users:
  u:
    sequence:
      - get: /login
      - ws_connect: /chat
        headers: {{Authorization: "Bearer {{{{ user_id }}}}"}}
        subprotocols: [chat.v2, chat.v1]
"""
    result, results = run_json(tmp_path, str(write(tmp_path, text)), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    upgrade = heads[-1].decode("latin-1").lower()
    assert upgrade.startswith("get /chat http/1.1")
    for line in (
        "x-tenant: blue",
        "authorization: bearer 1",
        "cookie: sid=abc123",
        "sec-websocket-protocol: chat.v2, chat.v1",
    ):
        assert line in upgrade, upgrade
    assert by_name(results)["WS /chat"]["failures"] == 0


def test_a_distributed_run_counts_what_the_server_counts(tmp_path: Path, demo_url: str) -> None:
    """A master and two workers: the workers run the same compiled users, their WS entries merge at the master."""
    demo_reset(demo_url)
    scenario = write(tmp_path, FEED.format(host=demo_url).replace("users: 3", "users: 4"))
    result, results = run_json(tmp_path, str(scenario), "--processes", "2", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    counts = {k: e["requests"] for k, e in by_name(results).items()}
    server = demo_stats(demo_url)["websocket"]
    assert counts["WS echo"] == server["received"]["/ws/echo"] == 16
    assert counts["WS /ws/prices?interval=20"] == server["upgrades"]["/ws/prices"] == 4
    feed = ("WS receive feed", "WS subscribe", "WS tick", "WS quote", "WS feed unread")
    assert sum(counts.get(k, 0) for k in feed) == server["sent"]["/ws/prices"]


def test_wss_over_the_users_tls(tmp_path: Path) -> None:
    """wss://: the same TLS connect as the user's https requests (a self-signed certificate, not verified)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run([*command, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    ports: list[int] = []
    ready, stop = threading.Event(), threading.Event()
    app: list = []

    def serve() -> None:  # a gevent hub of this thread's own
        import gevent
        from gevent import ssl as gevent_ssl
        from gevent.pywsgi import WSGIServer

        from runner.demo.app import make_app
        from runner.demo.websocket import DemoHandler

        context = gevent_ssl.SSLContext(gevent_ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        app.append(make_app())
        server = WSGIServer(("127.0.0.1", 0), app[0], log=None, error_log=None, ssl_context=context)
        server.handler_class = DemoHandler
        server.start()
        ports.append(server.server_port)
        ready.set()
        while not stop.is_set():
            gevent.sleep(0.1)
        server.stop(timeout=1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        text = f"""
host: https://127.0.0.1:{ports[0]}
load: {{users: 2, iterations: 5}}
users:
  u:
    sequence:
      - ws_connect: /ws/echo
      - ws_send: "secret {{{{ iteration }}}}"
        expect: {{contains: secret}}
        name: echo
    on_stop:
      - ws_close: ws
"""
        result, results = run_json(tmp_path, str(write(tmp_path, text)), timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        entries = by_name(results)
        assert entries["WS echo"]["requests"] == 10 == app[0].sockets.received["/ws/echo"]
        assert entries["WS /ws/echo"]["requests"] == 2 == app[0].sockets.upgrades["/ws/echo"]
    finally:
        stop.set()
        thread.join(10)

"""GraphQL subscriptions (graphql_subscribe over graphql-transport-ws): real lrun runs against the demo target's
/graphql WebSocket (events, subscriptions and completes compared with the server's own counts), errors as failures
with their messages, scripted hostile servers on loopback (no ack, a close mid-subscription), lrun debug, and
static validation at file:line:col."""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
from helpers import by_name, demo_reset, demo_stats, run_json, write
from scripted import ws_handshake

from conftest import ROOT, run_lrun

pytestmark = pytest.mark.e2e

WATCH = """
host: HOST
load: {users: 3, iterations: 2}
users:
  watcher:
    sequence:
      - graphql_subscribe: /graphql
        query: "subscription Price($symbol: String!) {
          priceChanged(symbol: $symbol, count: 4, interval: 20) { seq price } }"
        variables: {symbol: ACME}
        events: all
        check: {jsonpath: $.data.priceChanged.seq, equals: 4}
        extract:
          last: {jsonpath: $.data.priceChanged.price}
      - graphql_subscribe: /graphql
        query: "subscription Price($symbol: String!) { priceChanged(symbol: $symbol, count: 4, interval: 20) { seq } }"
        variables: {symbol: GLOBEX}
        operation: Two
        events: 2
      - graphql_subscribe: /graphql
        query: "subscription Until { priceChanged(symbol: \\"INITECH\\", count: 50, interval: 20) { seq } }"
        until: {jsonpath: $.data.priceChanged.seq, equals: 3}
        timeout: 5s
"""


def _watch(host: str) -> str:
    return WATCH.replace("HOST", host)


def test_events_counted_as_the_server_sent_them(tmp_path: Path, demo_url: str) -> None:
    demo_reset(demo_url)
    result, results = run_json(tmp_path, str(write(tmp_path, _watch(demo_url))))
    assert result.returncode == 0, result.stdout + result.stderr
    entries = by_name(results)
    assert sum(e["failures"] for e in entries.values()) == 0, results["errors"]
    server = demo_stats(demo_url)["graphql"]["subscriptions"]
    counts = {k: e["requests"] for k, e in entries.items()}
    assert counts["WS /graphql"] == server["connections"] == 3  # one connection a user, kept across iterations
    assert counts["GRAPHQL Price"] == counts["GRAPHQL Two"] == counts["GRAPHQL Until"] == 6
    assert server["subscriptions"] == 18 and server["by_operation"] == {"Price": 6, "Two": 6, "Until": 6}
    assert counts["GRAPHQL Price event"] == 6 * 4 and counts["GRAPHQL Price first event"] == 6
    assert counts["GRAPHQL Two event"] == 6 * 2 and counts["GRAPHQL Until event"] == 6 * 3
    # every event the server sent was received: by a step, or after its complete (the connection's unread)
    received = sum(counts[f"GRAPHQL {op} event"] for op in ("Price", "Two", "Until")) + counts.get(
        "WS graphql unread", 0
    )
    assert received == server["events"]
    assert server["completed"] == 6  # the Price subscriptions (events: all) ran to the server's complete
    assert server["cancelled"] == 12  # lrun completed the others
    assert server["errors"] == 0


ERRORS = """
host: {host}
load: {{users: 1, iterations: 1}}
users:
  u:
    sequence:
      - graphql_subscribe: /graphql
        query: "subscription Bad {{ priceChanged(symbol: \\"NOPE\\") {{ price }} }}"
      - graphql_subscribe: /graphql
        query: "subscription Field {{ volumeChanged(symbol: \\"ACME\\") {{ volume }} }}"
      - graphql_subscribe: /graphql
        query: "subscription Short {{ priceChanged(symbol: \\"ACME\\", count: 1, interval: 1) {{ price }} }}"
        events: 3
"""


def test_errors_are_failures_with_their_messages(tmp_path: Path, demo_url: str) -> None:
    demo_reset(demo_url)
    result, results = run_json(tmp_path, str(write(tmp_path, ERRORS.format(host=demo_url))))
    assert result.returncode == 1, result.stdout + result.stderr
    entries = by_name(results)
    assert entries["GRAPHQL Bad"]["failures"] == entries["GRAPHQL Field"]["failures"] == 1
    assert entries["GRAPHQL Short"]["failures"] == 1 and entries["GRAPHQL Short event"]["requests"] == 1
    messages = {e["message"] for e in results["errors"]}
    assert messages == {
        "GraphQL errors: unknown symbol NOPE",  # a next whose payload has errors
        "GraphQL errors: Cannot query field 'volumeChanged' on type 'Subscription'",  # an error message
        "the server completed the subscription after 1 event(s); waited for 3 events",
    }
    assert demo_stats(demo_url)["graphql"]["subscriptions"]["errors"] == 2


def test_debug_shows_the_subscription(tmp_path: Path, demo_url: str) -> None:
    result = run_lrun("debug", str(write(tmp_path, _watch(demo_url))), timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "WS /graphql -> 101" in out
    assert "[Price first event]" in out and "[Price event]" in out and "[Until]" in out
    assert "ok   jsonpath $.data.priceChanged.seq equals 4" in out
    assert re.search(r"saved last = 10\d", out), out


def test_the_example_scenario_validates_and_runs_on_the_demo(tmp_path: Path) -> None:
    example = ROOT / "scenarios" / "graphql.yaml"
    assert run_lrun("validate", str(example)).returncode == 0
    result, results = run_json(tmp_path, str(example), "-t", "3s", "-u", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    entries = by_name(results)
    assert entries["GRAPHQL PriceChanged"]["requests"] > 0 and entries["GRAPHQL PriceChanged"]["failures"] == 0


# ---------------------------------------------------------------------------------------- static validation

QUERY = 'query: "subscription P { priceChanged(symbol: \\"A\\") { price } }"'


@pytest.mark.parametrize(
    ("lines", "expected", "line"),
    [
        (['query: "query Items { items { id } }"'], "this operation is a query, not a subscription", 7),
        (['query: "{ items { id } }"'], "this operation is a query, not a subscription", 7),
        ([], "missing required key 'query'", 6),
        ([QUERY, "until: {status: 200}"], "match a message by jsonpath", 6),
        ([QUERY, "events: 0"], "'events': wait for 1 event or more", 6),
        ([QUERY, "events: 2", "until: {jsonpath: $.data, exists: true}"], "events and until both say", 6),
        ([QUERY, "extract: {x: {header: Location}}"], "reads a header, which a message has not", 6),
        (["as: ws", QUERY], "the connection 'ws' is a plain WebSocket (ws_connect) of this user", 7),
    ],
)
def test_mistakes_are_one_line_at_their_place(tmp_path: Path, lines: list[str], expected: str, line: int) -> None:
    body = "".join(f"        {text}\n" for text in lines)
    head = "host: http://127.0.0.1:9\nusers:\n  u:\n    sequence:\n      - ws_connect: /ws\n"
    text = f"{head}      - graphql_subscribe: /graphql\n{body}"
    result = run_lrun("validate", str(write(tmp_path, text)))
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert expected in out
    assert re.search(rf"scenario\.yaml:{line}:\d+: ", out), out
    assert "Traceback" not in result.stderr


def test_ws_close_accepts_the_subscriptions_connection(tmp_path: Path) -> None:
    text = (
        "host: http://127.0.0.1:9\nusers:\n  u:\n    sequence:\n      - graphql_subscribe: /graphql\n"
        f"        {QUERY}\n    on_stop:\n      - ws_close: graphql\n"
    )
    result = run_lrun("validate", str(write(tmp_path, text)))
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------- hostile servers


def _text(message: dict) -> bytes:
    payload = json.dumps(message).encode()
    assert len(payload) < 126
    return bytes([0x81, len(payload)]) + payload


def _client_messages(data: bytes) -> list[dict]:
    """The client's (masked) text frames in ``data``, as JSON."""
    messages = []
    while len(data) >= 6:
        length = data[1] & 0x7F
        start = 2
        if length == 126:
            length, start = struct.unpack("!H", data[2:4])[0], 4
        mask, payload = data[start : start + 4], data[start + 4 : start + 4 + length]
        if len(payload) < length:
            break
        if data[0] & 0x0F == 1:
            messages.append(json.loads(bytes(b ^ mask[i % 4] for i, b in enumerate(payload))))
        data = data[start + 4 + length :]
    return messages


ONE = """
host: http://127.0.0.1:{port}
load: {{users: 1, iterations: 1}}
users:
  u:
    sequence:
      - graphql_subscribe: /graphql
        query: "subscription Price {{ priceChanged(symbol: \\"ACME\\") {{ price }} }}"
        events: 3
        timeout: 1s
"""


def _failures(tmp_path: Path, port: int) -> tuple[dict[str, dict], list[str], float]:
    started = time.monotonic()
    result, results = run_json(tmp_path, str(write(tmp_path, ONE.format(port=port))), timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    return by_name(results), [f["message"] for f in results["errors"]], time.monotonic() - started


def test_a_server_that_never_acks(tmp_path: Path, scripted) -> None:  # type: ignore[no-untyped-def]
    def silent(conn: socket.socket, stop: threading.Event) -> None:
        ws_handshake(conn, "graphql-transport-ws")
        conn.recv(4096)  # the connection_init, never answered
        stop.wait(10)

    entries, messages, seconds = _failures(tmp_path, scripted(silent).port)
    assert entries["WS /graphql"]["failures"] == 1 and entries["GRAPHQL Price"]["failures"] == 1
    assert set(messages) == {"no connection_ack within 1s"}  # the connection's, and so the subscription's
    assert seconds < 30


def test_a_server_that_closes_mid_subscription(tmp_path: Path, scripted) -> None:  # type: ignore[no-untyped-def]
    def one_then_gone(conn: socket.socket, stop: threading.Event) -> None:
        ws_handshake(conn, "graphql-transport-ws")
        conn.recv(4096)  # connection_init
        conn.sendall(_text({"type": "ping"}) + _text({"type": "connection_ack"}))
        conn.recv(4096)  # the pong, or the subscribe (with it)
        conn.sendall(_text({"id": "1", "type": "next", "payload": {"data": {"priceChanged": {"price": 1}}}}))
        time.sleep(0.2)
        conn.shutdown(socket.SHUT_RDWR)

    entries, messages, seconds = _failures(tmp_path, scripted(one_then_gone).port)
    assert entries["WS /graphql"]["failures"] == 0
    assert entries["GRAPHQL Price first event"]["requests"] == 1
    assert entries["GRAPHQL Price"]["failures"] == 1
    assert set(messages) == {
        "GraphQL WebSocket 'graphql' is not open: the server closed the connection without a close frame (1006) "
        "(1 event received, waited for 3 events)"
    }
    assert seconds < 30


def test_a_subscription_that_never_sends(tmp_path: Path, scripted) -> None:  # type: ignore[no-untyped-def]
    received = bytearray()

    def acks_only(conn: socket.socket, stop: threading.Event) -> None:
        ws_handshake(conn, "graphql-transport-ws")
        conn.settimeout(0.2)
        deadline = time.monotonic() + 5
        acked = False
        while time.monotonic() < deadline and not stop.is_set():
            try:
                data = conn.recv(4096)
            except TimeoutError:
                continue
            if not data:
                return
            received.extend(data)
            if not acked:  # the connection_init came: ack it, and ping
                conn.sendall(_text({"type": "connection_ack"}) + _text({"type": "ping"}))
                acked = True

    entries, messages, seconds = _failures(tmp_path, scripted(acks_only).port)
    assert entries["GRAPHQL Price"]["failures"] == 1
    assert set(messages) == {"3 events did not come within 1s (0 received)"}
    assert seconds < 30
    sent = _client_messages(bytes(received))
    assert [m["type"] for m in sent] == ["connection_init", "pong", "subscribe", "complete"], sent
    assert sent[2]["id"] == sent[3]["id"] == "1"
    assert sent[2]["payload"]["operationName"] == "Price" and "priceChanged" in sent[2]["payload"]["query"]

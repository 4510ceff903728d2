"""Server-sent events steps: real lrun runs against the demo target's stream (counts compared with the server's
own, resumption with Last-Event-ID) and against scripted hostile servers on loopback."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from helpers import by_name, demo_reset, demo_stats, run_json, write

from conftest import ROOT, run_lrun

pytestmark = pytest.mark.e2e

READER = """
host: {host}
load: {{users: 2, iterations: 3}}
users:
  reader:
    sequence:
      - sse_subscribe: /sse/prices?interval=20&count=6
        as: prices
      - sse_receive: {{jsonpath: $.symbol, equals: ACME}}
        event: price
        connection: prices
        check: {{jsonpath: $.seq, equals: "{{{{ (iteration - 1) * 6 + 1 }}}}"}}   # resumed after the last seen
        name: price
      - sse_receive: next
        event: news
        connection: prices
        extract:
          news: {{jsonpath: $.seq}}
        name: news
      - think: 400ms                                 # the stream (6 events) ends meanwhile
    on_stop:
      - sse_close: prices
"""


def test_counts_match_the_servers_and_a_new_subscription_resumes(tmp_path: Path, demo_url: str) -> None:
    demo_reset(demo_url)
    result, results = run_json(tmp_path, str(write(tmp_path, READER.format(host=demo_url))))
    assert result.returncode == 0, result.stdout + result.stderr
    counts = {k: e["requests"] for k, e in by_name(results).items()}
    assert sum(e["failures"] for e in results["requests"]) == 0, results["errors"]
    server = demo_stats(demo_url)["websocket"]["sse"]
    assert counts["SSE /sse/prices?interval=20&count=6"] == server["subscriptions"] == 6
    assert server["resumed"] == 4  # iterations 2 and 3 of both users sent Last-Event-ID
    assert counts["SSE prices first event"] == 6
    assert counts["SSE price"] == counts["SSE news"] == 6
    # every event the server sent was received: waited for, or counted unread
    assert counts["SSE price"] + counts["SSE news"] + counts["SSE prices unread"] == server["events"] == 36


def test_the_example_scenario_validates_and_runs_on_the_demo(tmp_path: Path) -> None:
    example = ROOT / "scenarios" / "sse.yaml"
    assert run_lrun("validate", str(example)).returncode == 0
    result, results = run_json(tmp_path, str(example), "-t", "3s", "-u", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert by_name(results)["SSE price"]["requests"] > 0


def test_a_receive_on_a_stream_nobody_subscribed_is_a_validation_error(tmp_path: Path) -> None:
    text = "host: http://127.0.0.1:9\nusers:\n  u:\n    sequence:\n      - sse_subscribe: /s\n        as: feed\n"
    text += "      - sse_receive: next\n        connection: fed\n"
    result = run_lrun("validate", str(write(tmp_path, text)))
    assert result.returncode == 2
    assert "scenario.yaml:8:21: no SSE stream named 'fed' is opened by this user" in result.stderr
    assert "did you mean 'feed'" in result.stderr


# ---------------------------------------------------------------------------------------- hostile servers


ONE = """
host: http://127.0.0.1:{port}
load: {{users: 1, iterations: 1}}
users:
  u:
    sequence:
      - sse_subscribe: /events
        timeout: 1s
        max_event: 64KiB
      - sse_receive: next
        timeout: 3s
"""

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n"


def _no_newlines(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(HEAD + b"data: ")
    for _ in range(10_000):  # until the client gives up
        conn.sendall(b"x" * 1024)


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        (lambda conn, stop: stop.wait(10), "timed out after 1s (subscribing to the event stream)"),
        (lambda conn, stop: conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"), "HTTP 404 instead"),
        (lambda conn, stop: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"), "not an event stream"),
        (_no_newlines, "a line of more than 65536 bytes without a newline (max_event)"),
    ],
    ids=["never answers", "404", "not an event stream", "no newlines"],
)
def test_hostile_streams_fail_the_step_with_their_reason(tmp_path: Path, scripted, script, reason) -> None:  # type: ignore[no-untyped-def]
    server = scripted(script, read_request=True)
    started = time.monotonic()
    result, results = run_json(tmp_path, str(write(tmp_path, ONE.format(port=server.port))), timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    messages = [e["message"] for e in results["errors"]]
    assert any(reason in m for m in messages), messages
    assert by_name(results)["SSE receive sse"]["failures"] == 1
    assert time.monotonic() - started < 30


def test_the_guides_examples_validate(tmp_path: Path) -> None:
    import re

    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "how-to" / "sse.md").read_text(), re.DOTALL)
    assert blocks
    for index, block in enumerate(blocks):
        result = run_lrun("validate", str(write(tmp_path, block, f"example{index}.yaml")))
        assert result.returncode == 0, result.stdout + result.stderr

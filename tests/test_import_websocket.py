"""``lrun import`` of a recorded WebSocket conversation (Chrome's ``_webSocketMessages``): steps, correlation of a
value a received message gave, a replay against the demo's price feed, and hostile frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from har_helpers import har_entry, imported, scenario_steps, write_har
from helpers import by_name, demo_reset, demo_stats, run_json

from conftest import run_lrun

T0 = 1_800_000_000
SESSION = "5f2a9c81d03e4b77"  # what the recorded welcome gave: the replay's feed gives another


def ws_entry(origin: str, path: str, frames: Any, t: float = 1.0) -> dict[str, Any]:
    """A Chrome WebSocket entry: the upgrade (101) with its frames."""
    entry = har_entry("GET", origin + path, 101, mime="", t=t, headers=[("Upgrade", "websocket")])
    entry["request"]["url"] = origin.replace("http", "ws", 1) + path
    entry["request"]["headers"] += [{"name": "Sec-WebSocket-Key", "value": "dGhlIHNhbXBsZSBub25jZQ=="}]
    entry["response"]["headers"] += [{"name": "X-Connection", "value": "c0nn3ct10n-77"}]  # no extractor here
    entry["_resourceType"] = "websocket"
    entry["_webSocketMessages"] = frames
    return entry


def frame(kind: str, t: float, data: Any, opcode: int = 1) -> dict[str, Any]:
    text = data if isinstance(data, str) else json.dumps(data)
    return {"type": kind, "time": T0 + t, "opcode": opcode, "data": text}


def feed_frames() -> list[dict[str, Any]]:
    return [
        frame("receive", 1.1, {"type": "welcome", "session": SESSION}),
        frame("send", 1.3, {"type": "subscribe", "symbol": "ACME", "session": SESSION}),
        frame("receive", 1.31, {"type": "subscribed", "symbol": "ACME"}),
        frame("receive", 1.4, {"type": "price", "symbol": "ACME", "price": 101, "seq": 1}),
        frame("receive", 1.5, {"type": "price", "symbol": "ACME", "price": 102, "seq": 2}),
    ]


def test_a_conversation_becomes_steps_with_its_session_correlated(tmp_path: Path) -> None:
    origin = "http://127.0.0.1:8000"
    har = write_har(
        tmp_path / "feed.har",
        [
            ws_entry(origin, "/ws/prices?interval=100", feed_frames()),
            har_entry("GET", f"{origin}/api/orders?session={SESSION}", t=2.0),  # HTTP after: correlated too
            har_entry("GET", f"{origin}/api/log?c=c0nn3ct10n-77", t=2.5),  # the upgrade's header: left literal
        ],
    )
    result = imported(har)
    steps = scenario_steps(result.yaml)
    assert steps[0] == {"ws_connect": "/ws/prices?interval=100"}  # same origin: relative; no upgrade headers
    assert steps[1] == {
        "ws_receive": {"jsonpath": "$.type", "equals": "welcome"},
        "timeout": "10s",
        "extract": {"session": {"jsonpath": "$.session"}},
        "think": "0.2s",
    }
    assert steps[2] == {"ws_send": {"json": {"type": "subscribe", "symbol": "ACME", "session": "{{ session }}"}}}
    # the answer to the send is waited for; the feed's ticks are the server's, not steps
    assert steps[3]["ws_receive"] == {"jsonpath": "$.type", "equals": "subscribed"}
    assert steps[4] == {"ws_close": "ws", "think": "0.5s"}
    assert steps[5]["get"] == "/api/orders" and steps[5]["query"] == {"session": "{{ session }}"}
    assert steps[6]["query"] == {"c": "c0nn3ct10n-77"}
    assert len(steps) == 7 and SESSION not in result.yaml.split("\nname:")[1]
    assert result.report()[0].startswith("3 requests recorded, 3 kept")  # a conversation is one request
    [found] = result.correlations.found
    assert (found.name, found.extractor) == ("session", {"jsonpath": "$.session"})
    scenario = tmp_path / "feed.yaml"
    scenario.write_text(result.yaml)
    check = run_lrun("validate", str(scenario), timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_text_binary_and_a_second_connection(tmp_path: Path) -> None:
    origin = "http://127.0.0.1:8000"
    frames = [frame("send", 1.1, "hello {x}"), frame("receive", 1.2, "hello {x}"), frame("send", 1.3, "AAEC", 2)]
    other = [frame("send", 3.1, {"op": "ping"}), frame("receive", 9.2, {"op": "pong"})]
    other[1]["time"] *= 1000  # milliseconds, as some tools write it
    har = write_har(
        tmp_path / "two.har",
        [ws_entry(origin, "/ws/echo", frames), ws_entry(origin, "/live", other, t=3.0)],
    )
    result = imported(har, think="none")
    assert result.recording.warnings == []
    steps = scenario_steps(result.yaml)
    assert steps[1] == {"ws_send": {"text": "hello {x}"}}
    assert steps[2] == {"ws_receive": "next", "timeout": "10s"}  # text: the next message
    assert steps[3] == {"ws_send": {"binary": "AAEC"}}
    assert steps[4] == {"ws_close": "ws"}
    assert steps[5] == {"ws_connect": "/live", "as": "ws_2"}
    assert steps[6] == {"ws_send": {"json": {"op": "ping"}}, "connection": "ws_2"}
    # waited 6.1 s while recording: twice that, so a replay as slow as the recording passes
    assert steps[7] == {"ws_receive": {"jsonpath": "$.op", "equals": "pong"}, "timeout": "13s", "connection": "ws_2"}
    assert steps[8] == {"ws_close": "ws_2"}
    scenario = tmp_path / "two.yaml"
    scenario.write_text(result.yaml)
    check = run_lrun("validate", str(scenario), timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(
    ("frames", "warning"),
    [
        ({"send": "x"}, "entry 1: _webSocketMessages is dict, not a list of frames: ignored"),
        ([frame("receive", 1, "x" * (2 << 20))], "entry 1: 1 WebSocket frames left out"),
        ([frame("send", 1, "not base64!", 2)], "entry 1: 1 WebSocket frames left out"),
        ([frame("send", 1, "x", 9), "junk", {"type": "send", "data": 7}], "entry 1: 3 WebSocket frames left out"),
    ],
)
def test_hostile_frames_are_a_warning(tmp_path: Path, frames: Any, warning: str) -> None:
    origin = "http://127.0.0.1:8000"
    har = write_har(tmp_path / "bad.har", [ws_entry(origin, "/ws", frames), har_entry("GET", f"{origin}/", t=2)])
    result = imported(har)
    assert any(w.startswith(warning) for w in result.recording.warnings), result.recording.warnings
    out = tmp_path / "bad.yaml"
    cli = run_lrun("import", str(har), "-o", str(out), timeout=60)
    assert cli.returncode == 0 and "Traceback" not in cli.stderr, cli.stdout + cli.stderr
    assert yaml.safe_load(out.read_text())["users"]


@pytest.mark.e2e
def test_the_import_replays_against_the_demo_feed(tmp_path: Path, demo_url: str) -> None:
    har = write_har(tmp_path / "feed.har", [ws_entry(demo_url, "/ws/prices?interval=50", feed_frames())])
    scenario = tmp_path / "feed.yaml"
    cli = run_lrun("import", str(har), "-o", str(scenario), "--verify", timeout=60)  # one user replays it
    assert cli.returncode == 0 and "verify: every status as recorded (5 requests)" in cli.stderr, cli.stderr
    demo_reset(demo_url)
    result, results = run_json(tmp_path, str(scenario), "-i", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    entries = {k: v for k, v in by_name(results).items() if k.startswith("WS ")}
    assert sum(e["failures"] for e in entries.values()) == 0, entries
    server = demo_stats(demo_url)["websocket"]
    # one connection per iteration, each subscribed with the session its own welcome gave (a wrong one is an
    # error, and the wait for "subscribed" would fail)
    assert server["upgrades"]["/ws/prices"] == 3 and server["received"]["/ws/prices"] == 3
    assert server["closes"] == {"1000": 3} and server["open"] == 0
    counts = {k: e["requests"] for k, e in entries.items()}
    assert counts["WS /ws/prices?interval=50"] == 3 and counts["WS receive ws"] == 6, counts  # welcome, subscribed


def test_think_is_an_option_of_a_websocket_step_and_a_step_of_its_own(tmp_path: Path) -> None:
    """``think:`` beside ``ws_receive`` (as the importer writes it) was read as a think step with unknown keys."""
    scenario = tmp_path / "think.yaml"
    scenario.write_text(
        "host: http://127.0.0.1:8000\nusers:\n  u:\n    sequence:\n"
        "      - {ws_connect: /ws/echo, think: 1s}\n"
        "      - {ws_receive: next, timeout: 2s, think: 0.5s}\n"
        "      - {think: 1s}\n"
        "      - {ws_close: ws, think: 1s}\n"
    )
    check = run_lrun("validate", str(scenario), timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    scenario.write_text("host: http://127.0.0.1:8000\nusers:\n  u:\n    sequence:\n      - {think: 1s, timeout: 2s}\n")
    check = run_lrun("validate", str(scenario), timeout=60)
    assert check.returncode == 2 and "think.yaml:5:" in check.stdout + check.stderr, check.stdout + check.stderr

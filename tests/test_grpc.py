"""gRPC steps against a real grpcio server on loopback (the demo's ``shop.proto`` service, in its own process):
counts compared with the server's, streams, deadlines, non-OK statuses, hostile peers, ``--processes 2``, and
``lrun validate`` on .proto files and messages."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import by_name, demo_stats, run_json, write

from conftest import ROOT, SCENARIOS, run_lrun

pytest.importorskip("grpc_tools")

PROTO = ROOT / "runner" / "demo" / "shop.proto"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """A demo target of this module's own: its gRPC counters move only with these tests."""
    from runner.demo import start_demo

    with start_demo() as demo:
        yield demo.url


def _scenario(tmp_path: Path, url: str, steps: str, load: str = "{users: 3, spawn_rate: 10, iterations: 4}") -> Path:
    text = f"host: {url}\ngrpc: {{protos: [{PROTO}]}}\nload: {load}\nusers:\n  u:\n    sequence:\n{steps}"
    return write(tmp_path, text)


def _grpc(url: str) -> dict:
    return demo_stats(url)["grpc"]


def _delta(after: dict, before: dict, kind: str, method: str) -> int:
    return int(after[kind].get(method, 0)) - int(before[kind].get(method, 0))


def _failures(results: dict) -> dict[str, str]:
    return {e["name"]: e["message"] for e in results["errors"]}


def test_calls_and_streams_are_counted_like_the_server_counts_them(tmp_path: Path, server: str) -> None:
    steps = """\
      - grpc: shop.Catalog/GetItem
        message: {id: "{{ user_id }}"}
        metadata: {x-user: "{{ user_id }}"}
        extract: {item_name: {jsonpath: $.name}, echoed: {header: x-echo-user}}
        check:
          - {jsonpath: $.id, exists: true}
          - {header: x-echo-user, equals: "{{ user_id }}"}
      - grpc: Catalog/WatchPrices
        message: {id: 2, count: 7}
        check: {jsonpath: "$[6].seq", equals: 7}
      - grpc: shop.Catalog/AddToCart
        messages: [{item_id: 1, quantity: 2}, {item_id: 2, quantity: 3}]
        check: {jsonpath: $.items, equals: 5}
      - grpc: shop.Catalog/Chat
        messages: [{text: "{{ item_name }}"}, {text: two}, {text: three}]
        check: {jsonpath: "$[0].text", matches: "^echo: \\\\w"}
"""
    before = _grpc(server)
    result, results = run_json(tmp_path, str(_scenario(tmp_path, server, steps)))
    after = _grpc(server)
    assert result.returncode == 0, result.stdout + result.stderr
    entries = by_name(results)
    calls = 3 * 4
    assert entries["grpc shop.Catalog/GetItem"]["requests"] == calls == _delta(after, before, "calls", "GetItem")
    assert entries["grpc Catalog/WatchPrices"]["requests"] == calls == _delta(after, before, "calls", "WatchPrices")
    streamed = entries["grpc Catalog/WatchPrices (message)"]["requests"]
    assert streamed == 7 * calls == _delta(after, before, "sent", "WatchPrices")
    assert _delta(after, before, "received", "AddToCart") == 2 * calls
    assert entries["grpc shop.Catalog/AddToCart"]["requests"] == calls
    assert entries["grpc shop.Catalog/Chat (message)"]["requests"] == 3 * calls == _delta(after, before, "sent", "Chat")
    assert results["errors"] == []
    assert entries["grpc shop.Catalog/GetItem"]["total_bytes"] > 0


def test_a_non_ok_status_fails_with_its_code_and_message_unless_expected(tmp_path: Path, server: str) -> None:
    steps = """\
      - grpc: shop.Catalog/GetItem
        name: missing
        message: {id: 999}
      - grpc: shop.Catalog/GetItem
        name: expected missing
        message: {id: 999}
        status: NOT_FOUND
"""
    result, results = run_json(tmp_path, str(_scenario(tmp_path, server, steps, "{users: 1, iterations: 3}")))
    assert result.returncode == 1, result.stdout + result.stderr
    entries = by_name(results)
    assert (entries["grpc missing"]["requests"], entries["grpc missing"]["failures"]) == (3, 3)
    assert (entries["grpc expected missing"]["requests"], entries["grpc expected missing"]["failures"]) == (3, 0)
    assert _failures(results) == {"missing": "NOT_FOUND: no item 999"}


def test_deadline_exceeded_and_hostile_peers_fail_with_their_reason(tmp_path: Path, server: str) -> None:
    steps = """\
      - grpc: shop.Trouble/Slow
        message: {millis: 3000}
        deadline: 300ms
      - grpc: shop.Trouble/Malformed
        message: {text: x}
      - grpc: shop.Trouble/Endless
        message: {text: x}
        deadline: 500ms
      - grpc: shop.Catalog/WatchPrices
        name: flood
        message: {id: 1, count: 10000}
        max_messages: 50
"""
    started = time.monotonic()
    result, results = run_json(tmp_path, str(_scenario(tmp_path, server, steps, "{users: 2, iterations: 2}")))
    assert time.monotonic() - started < 60
    assert result.returncode == 1, result.stdout + result.stderr
    entries, failures = by_name(results), _failures(results)
    for name in ("shop.Trouble/Slow", "shop.Trouble/Malformed", "shop.Trouble/Endless"):
        assert (entries[f"grpc {name}"]["requests"], entries[f"grpc {name}"]["failures"]) == (4, 4)
    assert failures["shop.Trouble/Slow"].startswith("DEADLINE_EXCEEDED")
    assert (
        failures["shop.Trouble/Malformed"].startswith("INTERNAL") and "deserializ" in failures["shop.Trouble/Malformed"]
    )
    assert failures["shop.Trouble/Endless"].startswith("DEADLINE_EXCEEDED")
    assert failures["flood"] == "RESOURCE_EXHAUSTED: more than 50 messages (max_messages)"
    assert entries["grpc flood (message)"]["requests"] == 4 * 50  # kept no more than that, then cancelled
    assert entries["grpc shop.Trouble/Endless (message)"]["requests"] == 4  # the one note it sent, each time
    slow = entries["grpc shop.Trouble/Slow"]
    assert slow["min_ms"] >= 250 and slow["max_ms"] < 3000


def test_a_stream_that_never_ends_does_not_hold_the_run_past_its_time(tmp_path: Path, server: str) -> None:
    steps = """\
      - grpc: shop.Trouble/Endless
        message: {text: x}
"""
    path = _scenario(tmp_path, server, steps, "{users: 2, spawn_rate: 10, run_time: 2s}")
    started = time.monotonic()
    result, results = run_json(tmp_path, str(path), "--stop-timeout", "0")
    elapsed = time.monotonic() - started
    assert elapsed < 20, elapsed  # the server keeps it open for 30 s
    assert results["requests"] == [] or all(e["failures"] == 0 for e in results["requests"] if "(message)" in e["name"])
    cut = {c["name"]: c["count"] for c in (results.get("interrupted") or {}).get("requests") or []}
    assert cut.get("shop.Trouble/Endless") == 2, (results.get("interrupted"), result.stdout)


def test_two_processes_share_the_load_and_the_server_counts_every_call(tmp_path: Path, server: str) -> None:
    steps = """\
      - grpc: shop.Catalog/GetItem
        message: {id: 3}
      - grpc: shop.Catalog/WatchPrices
        message: {id: 3, count: 4}
"""
    before = _grpc(server)
    path = _scenario(tmp_path, server, steps, "{users: 4, spawn_rate: 20, iterations: 5}")
    result, results = run_json(tmp_path, str(path), "--processes", "2", timeout=180)
    after = _grpc(server)
    assert result.returncode == 0, result.stdout + result.stderr
    entries = by_name(results)
    assert entries["grpc shop.Catalog/GetItem"]["requests"] == 20 == _delta(after, before, "calls", "GetItem")
    assert (
        entries["grpc shop.Catalog/WatchPrices (message)"]["requests"]
        == 80
        == _delta(after, before, "sent", "WatchPrices")
    )


def test_the_example_scenario_runs_against_the_demo(tmp_path: Path) -> None:
    result, results = run_json(tmp_path, str(SCENARIOS / "grpc.yaml"), "-t", "3s", "-u", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    names = {e["name"] for e in results["requests"]}
    assert {"shop.Catalog/GetItem", "shop.Catalog/WatchPrices (message)", "GetItem (unknown id)"} <= names


# -- lrun validate ---------------------------------------------------------------------------------------------


def _problems(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    result = run_lrun("validate", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return result.stdout + result.stderr


def _validate_scenario(steps: str, grpc: str = f"grpc: {{protos: [{PROTO}]}}") -> str:
    return f"host: http://127.0.0.1:1\n{grpc}\nusers:\n  u:\n    sequence:\n{steps}"


def test_validate_points_at_an_unknown_method_and_service(tmp_path: Path) -> None:
    out = _problems(
        tmp_path, _validate_scenario("      - grpc: shop.Catalog/GetIteem\n      - grpc: shop.Catalogue/GetItem\n")
    )
    assert f"{tmp_path}/scenario.yaml:6:15: service shop.Catalog has no method 'GetIteem'" in out
    assert f"{tmp_path}/scenario.yaml:7:15: no service 'shop.Catalogue'" in out


def test_validate_points_at_a_field_the_message_type_lacks_and_a_value_of_the_wrong_type(tmp_path: Path) -> None:
    steps = """\
      - grpc: shop.Catalog/GetItem
        message: {idd: 1}
      - grpc: shop.Catalog/WatchPrices
        message:
          id: 1
          count: many
      - grpc: shop.Catalog/AddToCart
        messages: [{item_id: 1, quantity: "{{ n }}"}, {item_id: [1]}]
      - grpc: shop.Catalog/GetItem
        messages: [{id: 1}]
"""
    out = _problems(tmp_path, _validate_scenario(steps).replace("users:", "variables: {n: 2}\nusers:"))
    file = f"{tmp_path}/scenario.yaml"
    assert f"{file}:8:19: message shop.ItemRequest has no field 'idd' (did you mean 'id'?)" in out
    assert f"{file}:12:18: field 'count' is an int32, not a string 'many'" in out
    assert f"{file}:14:65: field 'item_id' is an int32, not a list" in out
    assert f"{file}:16:19: shop.Catalog/GetItem takes one request: write 'message', not 'messages'" in out
    assert "quantity" not in out  # a template's type is known when it renders


def test_validate_shows_a_proto_syntax_error_at_the_protos_own_line(tmp_path: Path) -> None:
    (tmp_path / "bad.proto").write_text('syntax = "proto3";\npackage p;\nmessage M {\n  int32 id = 1\n}\n')
    out = _problems(tmp_path, _validate_scenario("      - grpc: p.S/M\n", "grpc:\n  protos: [bad.proto]"))
    assert f'{tmp_path}/bad.proto:5:1: Expected ";".' in out
    assert f"a .proto named at {tmp_path}/scenario.yaml:3:11" in out


def test_validate_wants_descriptors_and_existing_files(tmp_path: Path) -> None:
    out = _problems(tmp_path, _validate_scenario("      - grpc: shop.Catalog/GetItem\n", ""))
    assert "a grpc step needs the service's descriptors" in out and "scenario.yaml:6:15" in out
    out = _problems(tmp_path, _validate_scenario("      - grpc: a.B/C\n", "grpc: {protos: [nowhere.proto]}"))
    assert "scenario.yaml:2:17: .proto file not found: nowhere.proto" in out


def test_the_example_scenario_validates() -> None:
    result = run_lrun("validate", str(SCENARIOS / "grpc.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_reflection_finds_the_services_without_a_proto(tmp_path: Path, server: str) -> None:
    steps = """\
      - grpc: shop.Catalog/GetItem
        message: {id: 4}
        extract: {name: {jsonpath: $.name}}
      - grpc: shop.Catalog/WatchPrices
        message: {id: 4, count: 3}
"""
    path = _scenario(tmp_path, server, steps, "{users: 2, iterations: 3}")
    path.write_text(path.read_text().replace(f"grpc: {{protos: [{PROTO}]}}", "grpc: {reflection: true}"))
    before = _grpc(server)
    result, results = run_json(tmp_path, str(path))
    after = _grpc(server)
    assert result.returncode == 0, result.stdout + result.stderr
    entries = by_name(results)
    assert entries["grpc shop.Catalog/GetItem"]["requests"] == 6 == _delta(after, before, "calls", "GetItem")
    assert entries["grpc shop.Catalog/WatchPrices (message)"]["requests"] == 18


def test_tls_with_the_servers_ca(tmp_path: Path) -> None:
    """A TLS server of its own (a self-signed certificate for 127.0.0.1): trusted through grpc.ca, refused without."""
    import subprocess

    from runner.demo.app import ITEMS
    from runner.demo.grpc_service import DemoGrpc

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    service = DemoGrpc(ITEMS)
    port = service.start(tls=(key.read_bytes(), cert.read_bytes()))
    try:
        steps = "      - grpc: shop.Catalog/GetItem\n        message: {id: 1}\n"
        path = _scenario(tmp_path, f"https://127.0.0.1:{port}", steps, "{users: 2, iterations: 3}")
        text = path.read_text()
        path.write_text(text.replace("grpc: {protos:", "grpc: {ca: cert.pem, protos:"))
        result, results = run_json(tmp_path, str(path))
        assert result.returncode == 0, result.stdout + result.stderr
        assert by_name(results)["grpc shop.Catalog/GetItem"]["requests"] == 6 == service.stats()["calls"]["GetItem"]
        path.write_text(text)  # no CA: the system's roots do not know this certificate
        result, results = run_json(tmp_path, str(path))
        assert result.returncode == 1
        assert _failures(results)["shop.Catalog/GetItem"].startswith("UNAVAILABLE")
    finally:
        service.stop()


def test_the_guides_example_validates(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "how-to" / "grpc.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = write(tmp_path, example.replace("../runner/demo/shop.proto", str(PROTO)))
    result = run_lrun("validate", str(path))
    assert result.returncode == 0, result.stdout + result.stderr

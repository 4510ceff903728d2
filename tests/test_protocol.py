"""The master/worker protocol on its own: every message round-trips; nothing malformed gets through."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.distributed import protocol as p
from runner.stats import RequestStats

SAMPLES: dict[typing.Any, typing.Any] = {int: 7, float: 1.5, str: "text", bool: True, bytes: b"\x00\x01"}


def sample(tp: typing.Any) -> typing.Any:
    """A plausible value of a field type."""
    args, origin = typing.get_args(tp), typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return sample(next(a for a in args if a is not type(None)))
    if origin is list:
        return [sample(args[0]), sample(args[0])]
    if origin is dict:
        return {"k": sample(args[1])}
    return {"k": [1, None, "x"]} if tp is typing.Any else SAMPLES[tp]


def example(cls: type[p.Message]) -> p.Message:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: sample(hints[f.name]) for f in dataclasses.fields(cls)})


@pytest.mark.parametrize("cls", list(p.MESSAGES.values()), ids=list(p.MESSAGES))
def test_every_message_round_trips(cls: type[p.Message]) -> None:
    message = example(cls)
    assert p.decode(p.encode(message)) == message


def test_a_stats_delta_travels_and_merges() -> None:
    worker = RequestStats(node="w1")
    for ms in (1.0, 2.5, 900.0):
        worker.log("GET", "/items", ms, 100, None)
    worker.log("POST", "/orders", 5.0, 10, "HTTP 500")
    frame = p.encode(p.Report(1, worker.delta(), 3))
    master = RequestStats()
    master.merge(p.decode(frame).stats)  # type: ignore[attr-defined]
    assert master.total.num_requests == 4 and master.total.num_failures == 1
    assert master.entries[("GET", "/items")].histogram.max == 900.0


def test_ints_are_accepted_as_floats_and_infinity_survives() -> None:
    frame = msgpack.packb([p.PROTOCOL_VERSION, "Spawn", {**_body(example(p.Spawn)), "spawn_rate": 3}])
    assert p.decode(frame).spawn_rate == 3.0  # type: ignore[attr-defined]
    spawn = dataclasses.replace(example(p.Spawn), spawn_rate=math.inf)  # type: ignore[type-var]
    assert p.decode(p.encode(spawn)).spawn_rate == math.inf  # type: ignore[attr-defined]


def _body(message: p.Message) -> dict[str, typing.Any]:
    return {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}


def _frame(kind: str, body: typing.Any, version: typing.Any = p.PROTOCOL_VERSION) -> bytes:
    return msgpack.packb([version, kind, body], use_bin_type=True)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"", "not msgpack"),
        (b"GET / HTTP/1.1\r\n\r\n", "not msgpack"),
        (b"\xc1", "not msgpack"),
        (msgpack.packb({"kind": "Hello"}), "expected [version, kind, body]"),
        (msgpack.packb([1, "Hello"]), "expected [version, kind, body]"),
        (msgpack.packb([1, 2, {}]), "expected [version, kind, body]"),
        (_frame("Nope", {}), "unknown message kind 'Nope'"),
        (_frame("Quit", {}), "Quit: missing field 'reason'"),
        (_frame("Quit", {"reason": "x", "extra": 1}), "Quit: unknown field 'extra'"),
        (_frame("Quit", {"reason": 5}), "Quit.reason: expected text, got int"),
        (_frame("Heartbeat", {**_body(example(p.Heartbeat)), "users": True}), "Heartbeat.users: expected an integer"),
        (_frame("Heartbeat", {**_body(example(p.Heartbeat)), "users": 1.5}), "Heartbeat.users: expected an integer"),
        (_frame("Spawn", {**_body(example(p.Spawn)), "targets": {"a": "3"}}), "Spawn.targets{}: expected an integer"),
        (_frame("Spawn", {**_body(example(p.Spawn)), "targets": [1]}), "Spawn.targets: expected a map"),
        (_frame("PoolRows", {**_body(example(p.PoolRows)), "indices": [1, "x"]}), "PoolRows.indices[]: expected an"),
        (msgpack.packb([p.PROTOCOL_VERSION, "Quit", {b"reason": "x"}], use_bin_type=True), "Quit: unknown field"),
        (
            msgpack.packb([p.PROTOCOL_VERSION, "Quit", {"reason": msgpack.ExtType(1, b"x")}]),
            "Quit.reason: expected text, got ExtType",
        ),
    ],
)
def test_malformed_frames_say_what_is_wrong(frame: bytes, message: str) -> None:
    with pytest.raises(p.ProtocolError) as caught:
        p.decode(frame)
    assert message in str(caught.value)


def test_another_version_is_reported_with_what_it_said() -> None:
    frame = _frame("Hello", {"lrun_version": "9.0", "anything": 1}, version=99)
    with pytest.raises(p.VersionMismatch) as caught:
        p.decode(frame)
    assert caught.value.kind == "Hello" and caught.value.body["lrun_version"] == "9.0"
    assert str(caught.value) == f"protocol version 99; this lrun speaks version {p.PROTOCOL_VERSION}"
    with pytest.raises(p.VersionMismatch):
        p.decode(_frame("Quit", {"reason": "x"}, version=True))  # True == 1 but is no version number


def test_requests_name_their_replies() -> None:
    requests = {cls.KIND: cls.REPLY.KIND for cls in p.MESSAGES.values() if cls.REPLY is not None}
    assert requests == {"Ping": "Pong", "PoolTake": "PoolRows", "UserIds": "UserIdBlock"}
    for cls in p.MESSAGES.values():
        if cls.REPLY is not None:
            assert "request_id" in {f.name for f in dataclasses.fields(cls)}
            assert "request_id" in {f.name for f in dataclasses.fields(cls.REPLY)}


def test_spawn_has_room_for_setup_variables() -> None:
    spawn = p.Spawn(1, 0.0, {"a": 1}, 1.0, {"token": "abc", "ids": [1, 2]})
    assert p.decode(p.encode(spawn)) == spawn


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_anything_but_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(p.ProtocolError):
        p.decode(data)


anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=5)
    | st.binary(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(p.MESSAGES)), st.dictionaries(st.text(max_size=12), anything, max_size=6))
def test_random_bodies_never_escape_as_anything_but_protocol_errors(kind: str, body: dict) -> None:
    with contextlib.suppress(p.ProtocolError):
        p.decode(_frame(kind, body))

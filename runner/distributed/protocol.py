"""The master/worker protocol: every message type, typed, versioned, in one place.

Transport: ZeroMQ. The master binds a ROUTER socket; each worker connects a DEALER whose identity is its worker
id. A message is one ZeroMQ frame holding a msgpack array, the *envelope*::

    [PROTOCOL_VERSION, "Kind", {field: value, ...}]

The envelope never changes between versions, and neither do the bodies of ``Hello`` and ``Refused``: so a
master and a worker of different versions can still tell each other why they cannot work together.
``decode`` checks everything a frame claims — envelope, kind, every field and its type — and raises
``ProtocolError`` (``VersionMismatch`` for another protocol version) with a readable reason; it never lets a
malformed frame through as a half-built message. Bump ``PROTOCOL_VERSION`` for any change to a message.

A run, seen from a worker::

    worker                                  master
    Hello(token, host, pid, cores …)  ──►
                                      ◄──   Welcome(settings, scenario files if asked) | Refused(code, reason)
    Heartbeat(state, users, cpu …)    ──►   (every heartbeat interval)
                                      ◄──   MasterHeartbeat(state, spawn_seq)   (the answer to each)
                                      ◄──   Spawn(seq, targets per user type, spawn rate, variables)
    Spawned(seq, users)               ──►   (that spawn is complete)
    Report(seq, stats delta, users)   ──►   (every report interval, ``RequestStats.delta()``)
                                      ◄──   Stop(reason, now)
    Report(final delta), Stopped      ──►
                                      ◄──   NextTest(settings)   (lrun --web: another test follows; back to Spawn)
                                      ◄──   Quit(reason)
    Bye(reason)                       ──►   (a worker leaving on its own: Ctrl-C, SIGTERM)

Spawn targets are absolute ("run 8 of type a and 2 of type b") and sequenced: a worker applies a ``Spawn``
only if its ``seq`` is newer than the last one it applied, so the master may resend it (it does, when a
heartbeat shows the worker behind) without harm.

Requests and replies: a worker greenlet can ask the master something and block until the answer comes.
A request message has a ``request_id`` field (unique per worker) and names its reply type in ``REPLY``; the
master answers with that reply type carrying the same ``request_id``, or with ``RequestFailed``. On the worker,
``WorkerRunner.request(message)`` sends it and waits on a ``gevent.event.AsyncResult`` that the receive loop
fills when the reply with that id arrives (see ``runner.distributed.worker``); on the master, ``REQUESTS``
maps a request type to its handler. ``Ping`` → ``Pong`` is the trivial pair (also a round-trip measure).

Data pools and rendezvous:

- ``PoolTake(request_id, pool, n, wait)`` → ``PoolRows(request_id, pool, indices, dry)``: the master owns
  sequential and unique pools and hands out row indices (blocks of a sequential pool, one unique row at a time);
  ``dry`` says the pool is exhausted; ``wait`` > 0: answer when a unique row comes back (or after ``wait`` s).
- ``PoolNote(pool, returned, unused, taken, waits, wait_time, users_stopped)`` (one way): unique rows given
  back; at the end, rows of a block no user took and rows taken from a random pool (the worker's own); users
  that waited for a row or stopped for lack of one. The master counts them for the results.
- ``RendezvousArrive(name, count)``: ``count`` users of this worker arrived (one-way); the master applies the
  release policy over every worker's users and broadcasts ``RendezvousRelease(name, seq, reason)``.
- ``UserIds(request_id, count)`` → ``UserIdBlock(request_id, first, count)``: before starting users, a worker
  takes their ``user_id`` values from the master, so ids are unique and dense (1..N) across the cluster.
- ``Spawn.variables``: what once-per-test ``setup`` steps (run on the master) hand to every user.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack

from runner.config import MASTER_PORT

PROTOCOL_VERSION = 4  # 3: NextTest (workers stay for the next test of lrun --web); 4: the open model
DEFAULT_PORT = MASTER_PORT  # one declaration: the settings'
MAX_FRAME = 64 * 1024 * 1024  # bytes; larger frames are refused by the sockets themselves


class ProtocolError(ValueError):
    """A frame that is not a valid message of this protocol; the text says why."""


class VersionMismatch(ProtocolError):
    """A well-formed envelope of another protocol version. ``kind`` and ``body`` are as received (unchecked)."""

    def __init__(self, version: Any, kind: str, body: dict[str, Any]) -> None:
        super().__init__(f"protocol version {version!r}; this lrun speaks version {PROTOCOL_VERSION}")
        self.version = version
        self.kind = kind
        self.body = body


@dataclass(frozen=True, slots=True)
class Message:
    """Base of every message. ``KIND`` is its name on the wire; ``REPLY`` the answer to a request."""

    KIND: ClassVar[str] = ""
    REPLY: ClassVar[type[Message] | None] = None


# ------------------------------------------------------------------------------------------ type checks


def _checker(tp: Any, where: str) -> Callable[[Any], Any]:
    """A function that returns a value of type ``tp`` (int → float is the one conversion) or raises."""

    def fail(value: Any, expected: str) -> typing.NoReturn:
        raise ProtocolError(f"{where}: expected {expected}, got {type(value).__name__}")

    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _checker(options[0], where)
        return lambda v: None if v is None else inner(v)
    if tp is Any:
        return lambda v: v
    if tp is bool:
        return lambda v: v if isinstance(v, bool) else fail(v, "true or false")
    if tp is int:
        return lambda v: v if isinstance(v, int) and not isinstance(v, bool) else fail(v, "an integer")
    if tp is float:
        return lambda v: float(v) if isinstance(v, int | float) and not isinstance(v, bool) else fail(v, "a number")
    if tp is str:
        return lambda v: v if isinstance(v, str) else fail(v, "text")
    if tp is bytes:
        return lambda v: v if isinstance(v, bytes) else fail(v, "bytes")
    if origin is list:
        (item_type,) = typing.get_args(tp)
        item = _checker(item_type, f"{where}[]")
        return lambda v: [item(x) for x in v] if isinstance(v, list) else fail(v, "a list")
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        assert key_type is str, where
        value = _checker(value_type, f"{where}{{}}")

        def check_dict(v: Any) -> dict[str, Any]:
            if not isinstance(v, dict):
                fail(v, "a map")
            if not all(isinstance(k, str) for k in v):
                raise ProtocolError(f"{where}: expected text keys")
            return {k: value(x) for k, x in v.items()}

        return check_dict
    raise TypeError(f"{where}: no wire check for {tp!r}")  # pragma: no cover - a programming error


MESSAGES: dict[str, type[Message]] = {}
_CHECKS: dict[str, list[tuple[str, Callable[[Any], Any]]]] = {}


def message(cls: type[Message]) -> type[Message]:
    """Register a message class: its name is its kind; its fields' types are checked on decoding."""
    cls.KIND = cls.__name__
    MESSAGES[cls.KIND] = cls
    hints = typing.get_type_hints(cls)
    _CHECKS[cls.KIND] = [(f.name, _checker(hints[f.name], f"{cls.KIND}.{f.name}")) for f in dataclasses.fields(cls)]
    return cls


# ------------------------------------------------------------------------------------------ worker → master


@message
@dataclass(frozen=True, slots=True)
class Hello(Message):
    """A worker introduces itself (resent every heartbeat interval until answered). Never changes shape."""

    worker_id: str
    token: str
    host: str
    pid: int
    cores: int
    lrun_version: str
    want_scenario: bool  # the worker has no scenario file: send it in the Welcome
    clock: float  # the worker's time.time(), to spot clock skew (series are merged by epoch second)


@message
@dataclass(frozen=True, slots=True)
class Heartbeat(Message):
    state: str  # ready, spawning, running, cleanup, stopping, stopped
    users: int
    cpu_percent: float  # of one core, since the last heartbeat
    memory_bytes: int  # resident set size
    spawn_seq: int  # the last Spawn applied


@message
@dataclass(frozen=True, slots=True)
class Report(Message):
    """Statistics since the last report: ``RequestStats.delta()``. ``seq`` counts reports from 1.

    ``transactions``: the ``TransactionStats.delta()`` of the same interval; ``checks``: checkpoint verdicts
    since the last report, ``[method, name, check, passed, failed]`` each.
    """

    seq: int
    stats: dict[str, Any]
    users: int
    transactions: dict[str, Any] | None = None
    checks: list[list[Any]] = field(default_factory=list)
    arrivals: dict[str, Any] | None = None  # open model: ArrivalCounts.to_wire(), absolute (not a delta)
    intended: dict[str, Any] | None = None  # open model: RequestStats.delta() timed from the intended starts
    # what ran, absolute (a resend is harmless): the most users at once, users started, users that ended on their
    # own while the test went on, and requests in flight at the stop as [method, name, count]
    users_max: int = 0
    users_started: int = 0
    users_ended_early: int = 0
    interrupted: list[list[Any]] = field(default_factory=list)


@message
@dataclass(frozen=True, slots=True)
class Spawned(Message):
    """Spawn ``spawn_seq`` is complete: ``users`` run."""

    spawn_seq: int
    users: int


@message
@dataclass(frozen=True, slots=True)
class Stopped(Message):
    """The worker's users are stopped and its final Report was sent; ``by_itself``: not told to (iterations
    done, a stop_test checkpoint)."""

    reason: str
    by_itself: bool


@message
@dataclass(frozen=True, slots=True)
class Bye(Message):
    """The worker leaves (Ctrl-C, SIGTERM); its users are stopped and its final Report was sent."""

    reason: str


@message
@dataclass(frozen=True, slots=True)
class WorkerFailed(Message):
    """The worker cannot take part (its scenario does not load or compile …); it exits."""

    message: str


@message
@dataclass(frozen=True, slots=True)
class WorkerWarning(Message):
    """Something went wrong without failing (an extractor found nothing, a hook failed): once per text."""

    message: str


# ------------------------------------------------------------------------------------------ master → worker


@message
@dataclass(frozen=True, slots=True)
class Welcome(Message):
    """The master accepts a worker and tells it how to run (what the master's settings say)."""

    worker_id: str
    heartbeat_interval: float
    report_interval: float
    host: str | None  # -H, else the scenario's
    demo_url: str | None  # where 'host: demo' points (the master started it)
    tags: list[str]
    exclude_tags: list[str]
    iterations: int | None
    stop_timeout: float
    entry_seconds: bool  # reports carry each request's per-second data (--csv-full-history), not only totals
    scenario_path: str  # the scenario's name inside scenario_files
    scenario_files: dict[str, bytes] | None  # relative path -> content, when the worker asked for them
    rendezvous: bool = True  # False: --no-rendezvous, users pass at once
    env: dict[str, str | None] = field(default_factory=dict)  # env('NAME') with a constant name: the master's


@message
@dataclass(frozen=True, slots=True)
class Refused(Message):
    """The master will not take this worker. Never changes shape. ``code``: token, version, stopping, …"""

    code: str
    reason: str


@message
@dataclass(frozen=True, slots=True)
class Spawn(Message):
    """Run exactly ``targets`` users (per user type), starting or stopping ``spawn_rate`` per second.

    The open model instead (``arrival_stages`` not empty): the cluster's schedule (``[duration, rate]`` stages
    from ``arrival_start_rate``), begun ``arrival_elapsed`` seconds ago on the master; this worker's share of it,
    ``arrival_plan`` (``[since, index, count]`` rows: ``runner.engine.arrivals.Share``), and of ``max_users``.
    """

    seq: int
    timestamp: float
    targets: dict[str, int]
    spawn_rate: float
    variables: dict[str, Any] = field(default_factory=dict)  # from setup steps, for every user
    arrival_stages: list[list[float]] = field(default_factory=list)
    arrival_start_rate: float = 0.0
    arrival_elapsed: float = 0.0
    arrival_plan: list[list[float]] = field(default_factory=list)
    max_users: int = 0


@message
@dataclass(frozen=True, slots=True)
class Stop(Message):
    """Stop every user (``now``: without waiting for iterations), send a final Report, then Stopped."""

    reason: str
    now: bool


@message
@dataclass(frozen=True, slots=True)
class Quit(Message):
    """The test is over: exit."""

    reason: str


@message
@dataclass(frozen=True, slots=True)
class NextTest(Message):
    """The test ended and another follows (``lrun --web``): set the scenario up afresh with these settings (new
    statistics, pools, rendezvous, checkpoint tallies), then wait for its Spawn."""

    host: str | None
    tags: list[str]
    exclude_tags: list[str]
    iterations: int | None
    stop_timeout: float


@message
@dataclass(frozen=True, slots=True)
class MasterHeartbeat(Message):
    """The answer to every Heartbeat: a worker that hears nothing for --master-timeout stops its users."""

    state: str
    spawn_seq: int  # the last Spawn sent to this worker


# ------------------------------------------------------------------------------------------ request / reply


@message
@dataclass(frozen=True, slots=True)
class Pong(Message):
    request_id: int
    sent: float


@message
@dataclass(frozen=True, slots=True)
class Ping(Message):
    REPLY = Pong
    request_id: int
    sent: float


@message
@dataclass(frozen=True, slots=True)
class RequestFailed(Message):
    """The master could not answer request ``request_id``."""

    request_id: int
    message: str


@message
@dataclass(frozen=True, slots=True)
class PoolRows(Message):
    """Rows (by index) of a master-owned pool; ``dry``: the pool has no more."""

    request_id: int
    pool: str
    indices: list[int]
    dry: bool


@message
@dataclass(frozen=True, slots=True)
class PoolTake(Message):
    """Ask for the next ``n`` rows of a sequential or unique pool (the master may give fewer); with ``wait`` > 0
    and none free (unique + cycle), the master answers when a row comes back, or with none after ``wait`` s."""

    REPLY = PoolRows
    request_id: int
    pool: str
    n: int
    wait: float


@message
@dataclass(frozen=True, slots=True)
class PoolNote(Message):
    """One way, for the master's count: rows of a unique + cycle pool given back; at the end, rows of a block no
    user took and rows taken from a random pool; users that waited for a row (``waits``, ``wait_time`` s in all)
    or stopped for lack of one."""

    pool: str
    returned: list[int]
    unused: int  # rows of a sequential block this worker's users never took (the test ended): not handed out
    taken: int  # rows this worker's users took from a random pool (the worker's own), said at the end
    waits: int
    wait_time: float
    users_stopped: int


@message
@dataclass(frozen=True, slots=True)
class UserIdBlock(Message):
    """``user_id`` values ``first`` … ``first + count - 1``, for this worker's next users."""

    request_id: int
    first: int
    count: int


@message
@dataclass(frozen=True, slots=True)
class UserIds(Message):
    """Ask for ``count`` more user ids: the master numbers users 1, 2, 3 … across the cluster."""

    REPLY = UserIdBlock
    request_id: int
    count: int


@message
@dataclass(frozen=True, slots=True)
class RendezvousArrive(Message):
    """``count`` more users of this worker wait at rendezvous ``name``."""

    name: str
    count: int


@message
@dataclass(frozen=True, slots=True)
class RendezvousRelease(Message):
    """Release everyone waiting at ``name`` (broadcast); ``seq`` numbers the releases."""

    name: str
    seq: int
    reason: str


# ------------------------------------------------------------------------------------------ encoding


def encode(msg: Message) -> bytes:
    """The frame of ``msg``."""
    body = {name: getattr(msg, name) for name, _ in _CHECKS[msg.KIND]}
    return msgpack.packb([PROTOCOL_VERSION, msg.KIND, body], use_bin_type=True)


def peek(frame: bytes) -> tuple[Any, str, dict[str, Any]]:
    """The envelope of a frame: (version, kind, body), checked for shape only."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise ProtocolError(f"expected bytes, got {type(frame).__name__}")
    if len(frame) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(frame)} bytes, more than {MAX_FRAME}")
    try:
        data = msgpack.unpackb(frame, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several types (ExtraData, FormatError, StackError, ValueError …)
        raise ProtocolError(f"not msgpack ({type(exc).__name__}: {str(exc)[:80]})") from None
    if not isinstance(data, list) or len(data) != 3:
        raise ProtocolError("not an lrun message: expected [version, kind, body]")
    version, kind, body = data
    if not isinstance(kind, str) or not isinstance(body, dict):
        raise ProtocolError("not an lrun message: expected [version, kind, body]")
    return version, kind, body


def decode(frame: bytes) -> Message:
    """The message in ``frame``; ``ProtocolError`` (or ``VersionMismatch``) saying what is wrong with it."""
    version, kind, body = peek(frame)
    if version != PROTOCOL_VERSION or type(version) is not int:
        raise VersionMismatch(version, kind, body)
    cls = MESSAGES.get(kind)
    if cls is None:
        raise ProtocolError(f"unknown message kind {kind[:40]!r}")
    checks = _CHECKS[kind]
    unknown = [str(name)[:40] for name in body if name not in {n for n, _ in checks}]
    if unknown:
        raise ProtocolError(f"{kind}: unknown field {unknown[0]!r}")
    values = {}
    for name, check in checks:
        if name not in body:
            raise ProtocolError(f"{kind}: missing field {name!r}")
        values[name] = check(body[name])
    return cls(**values)


__all__ = [
    "DEFAULT_PORT",
    "MESSAGES",
    "PROTOCOL_VERSION",
    "Bye",
    "Heartbeat",
    "Hello",
    "MasterHeartbeat",
    "Message",
    "Ping",
    "Pong",
    "PoolNote",
    "PoolRows",
    "PoolTake",
    "ProtocolError",
    "Quit",
    "Refused",
    "RendezvousArrive",
    "RendezvousRelease",
    "Report",
    "RequestFailed",
    "Spawn",
    "Spawned",
    "Stop",
    "Stopped",
    "UserIdBlock",
    "UserIds",
    "VersionMismatch",
    "Welcome",
    "WorkerFailed",
    "WorkerWarning",
    "decode",
    "encode",
    "peek",
]

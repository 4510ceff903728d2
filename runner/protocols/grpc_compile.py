"""A ``grpc:`` step compiled into a closure: render the message(s) and metadata, call over the user's channel,
then extract, check and report like an HTTP request (method ``grpc``, named by the gRPC method).

grpcio waits through gevent once ``grpc.experimental.gevent.init_gevent()`` ran (here, when the first gRPC step of
a patched process compiles). The response reaches the extractors and checkpoints as a ``Response`` whose body is
the message as JSON (a list of them for a server stream) and whose headers are the response metadata.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from jinja2 import TemplateError

from runner.compile.checkpoints import compile_checkpoint
from runner.compile.extract import compile_extractor
from runner.engine.calls import RequestResult
from runner.engine.flow import ON_FAIL, StopUser
from runner.engine.user import Think
from runner.http.response import Response
from runner.scenario import templating
from runner.scenario.grpc_proto import Descriptors, Method, from_reflection
from runner.scenario.model import GrpcStep

METHOD = "grpc"  # the statistics' method column
_gevent_ready = False


class _Shared(Protocol):
    script: Any
    checkpoints: list[Any]
    grpc: Any  # LoadedScenario.grpc: Descriptors, or None with reflection
    grpc_ca: bytes | None


class _Context(Protocol):
    shared: Any


def use_gevent() -> None:
    """Let grpcio wait through gevent in a patched process (once; blocking calls would stall every user)."""
    global _gevent_ready
    if _gevent_ready:
        return
    from gevent import monkey

    if monkey.is_module_patched("socket"):
        from grpc.experimental import gevent as grpc_gevent

        grpc_gevent.init_gevent()
        _gevent_ready = True


def default_target(host: str) -> tuple[str, bool]:
    """host:port and TLS from the user's base URL (http://h:p → h:p in plaintext, https:// → TLS)."""
    parts = urlsplit(host)
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    hostname = parts.hostname or ""
    return (f"[{hostname}]:{port}" if ":" in hostname else f"{hostname}:{port}"), tls


class Channel:
    """One user's channel to one server: its own connection (no subchannel shared with other users)."""

    def __init__(self, target: str, tls: bool, ca: bytes | None) -> None:
        import grpc

        options = [("grpc.use_local_subchannel_pool", 1)]
        if tls:
            credentials = grpc.ssl_channel_credentials(root_certificates=ca)
            self.channel = grpc.secure_channel(target, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(target, options=options)
        self.stubs: dict[str, Any] = {}

    def stub(self, method: Method) -> Any:
        stub = self.stubs.get(method.path)
        if stub is None:
            make = {
                "unary": self.channel.unary_unary,
                "server_streaming": self.channel.unary_stream,
                "client_streaming": self.channel.stream_unary,
                "bidi_streaming": self.channel.stream_stream,
            }[method.kind]
            stub = self.stubs[method.path] = make(
                method.path, request_serializer=_serialize, response_deserializer=method.output.FromString
            )
        return stub

    def abort(self) -> None:
        """Closed with its user (``user.channels``)."""
        self.channel.close()


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


_reflected: dict[tuple[str, bool], Descriptors] = {}  # this process's reflection answers, by server


def _resolve(
    descriptors: Descriptors | None, spec: str, channel: Channel, key: tuple[str, bool], wait: float
) -> Method:
    if descriptors is None:
        descriptors = _reflected.get(key)
        if descriptors is None:
            descriptors = _reflected[key] = from_reflection(channel.channel, wait)
    return descriptors.method(spec)


class Outcome:
    """What a call gave: its status, messages received, response metadata and bytes."""

    __slots__ = ("arrivals", "code", "details", "messages", "metadata", "size")

    def __init__(self) -> None:
        self.arrivals: list[float] = []  # perf_counter() at each streamed message
        self.code = "OK"
        self.details = ""
        self.messages: list[Any] = []
        self.metadata: list[tuple[str, str]] = []
        self.size = 0


def invoke(
    stub: Any, method: Method, request: Any, timeout: float, metadata: list[tuple[str, str]], limit: int
) -> Outcome:
    """Call ``method``; a non-OK status, a message that does not parse, a stream past ``limit``: ``Outcome.code``."""
    import grpc

    outcome = Outcome()
    call: Any = None
    try:
        if method.server_streaming:
            call = stub(request, timeout=timeout, metadata=metadata)
            for message in call:
                outcome.arrivals.append(time.perf_counter())
                outcome.messages.append(message)
                outcome.size += message.ByteSize()
                if len(outcome.messages) >= limit:
                    call.cancel()
                    outcome.code, outcome.details = "RESOURCE_EXHAUSTED", f"more than {limit} messages (max_messages)"
                    break
        else:
            message, call = stub.with_call(request, timeout=timeout, metadata=metadata)
            outcome.messages.append(message)
            outcome.size += message.ByteSize()
    except grpc.RpcError as exc:
        call = exc
        outcome.code = exc.code().name if exc.code() is not None else "UNKNOWN"
        outcome.details = exc.details() or ""
    except (ValueError, TypeError) as exc:  # grpcio refused to send it (a metadata value it cannot carry …)
        outcome.code, outcome.details = "INVALID_ARGUMENT", f"not sent: {exc}"
        return outcome
    if call is not None:
        for part in (call.initial_metadata, call.trailing_metadata):
            try:
                pairs = part() or ()
            except Exception:  # a cancelled call may have none
                pairs = ()
            outcome.metadata += [(k, v if isinstance(v, str) else v.hex()) for k, v in pairs]
    return outcome


def compile_grpc(step: GrpcStep, ctx: _Context, think: Callable[[], float] | None) -> list[Any]:
    """The step's closure (and its think time)."""
    from google.protobuf import json_format

    use_gevent()
    shared = ctx.shared
    descriptors: Descriptors | None = shared.grpc
    known = descriptors.method(step.grpc) if descriptors is not None else None  # load time checked it exists
    spec = step.grpc
    name = step.name or step.grpc
    key = (METHOD, name)
    streamed = f"{name} (message)"  # each message of a server stream: the time since the call began, or the last
    streams_in = step.messages is not None
    payload = templating.compile_value(step.messages if streams_in else (step.message or {}), native=True)
    metadata = templating.compile_value(step.metadata, native=False) if step.metadata else None
    target_of = templating.compile_template(step.target).render if step.target else None
    expected = {step.status} if isinstance(step.status, str) else set(step.status)
    limit = step.max_messages
    ca: bytes | None = shared.grpc_ca
    script = shared.script
    extractors = [compile_extractor(var, e, script) for var, e in (step.extract or {}).items()]
    checkpoints = [compile_checkpoint(spec, script) for spec in step.check]  # no default HTTP status one
    signals = [ON_FAIL[c.on_fail] for c in checkpoints]
    on_error = next((s for s in signals if s is not None), None)
    first = len(shared.checkpoints)
    shared.checkpoints.extend((METHOD, name, c.description) for c in checkpoints)
    checks = tuple(zip(checkpoints, signals, range(first, first + len(checkpoints)), strict=True))

    def fail(user: Any, url: str, message: str) -> None:
        user.runtime.on_request(user, RequestResult(METHOD, name, url, 0, 0.0, 0, message))
        if user.transactions:
            user.fail_transactions(message)
        if on_error is not None:
            raise on_error(message)

    def run(user: Any) -> None:
        variables = user.vars
        host_target, tls = default_target(user.host)
        if step.tls is not None:
            tls = step.tls
        try:
            target = target_of(variables) if target_of is not None else host_target
            body = payload(variables)
            pairs = [(k.lower(), str(v)) for k, v in metadata(variables).items()] if metadata is not None else []
        except (TemplateError, ValueError, TypeError, ArithmeticError) as exc:
            return fail(user, spec, f"template error: {exc}")
        channel = user.channels.get((METHOD, target, tls))
        if channel is None:
            channel = user.channels[(METHOD, target, tls)] = Channel(target, tls, ca)
        timeout = step.deadline if step.deadline is not None else user.http.timeout
        timeout = min(timeout, max(0.001, user.deadline - time.monotonic()))  # the run ends on time
        try:
            method = known or _resolve(descriptors, spec, channel, (target, tls), timeout)
        except Exception as exc:  # reflection failed, or the server has no such method
            why = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            return fail(user, f"{target}/{spec}", f"reflection: {why}")
        url = f"{target}{method.path}"
        try:
            request = _messages(body, method.input, json_format) if streams_in else _message(body, method.input)
        except ValueError as exc:
            return fail(user, url, str(exc))
        user.in_flight = key
        start = time.perf_counter()
        outcome = invoke(channel.stub(method), method, request, timeout, pairs, limit)
        elapsed_ms = (time.perf_counter() - start) * 1000
        if user.past_deadline():
            raise StopUser("the run's deadline passed")
        user.in_flight = None
        failure = None if outcome.code in expected else f"{outcome.code}: {outcome.details}".rstrip(": ")
        response = _response(url, outcome, elapsed_ms, method.server_streaming, json_format)
        trace = user.runtime.trace
        missing, signal = None, None
        extracted: dict[str, Any] | None = {} if trace else None
        warnings: list[str] | None = [] if trace else None
        for extractor in extractors:
            message = extractor.extract(response, variables)
            if message is None or not extractor.fail_on_miss:
                if message is not None:
                    user.runtime.on_warning(user, message)
                    if warnings is not None:
                        warnings.append(message)
                if extracted is not None and extractor.variable in variables:
                    extracted[extractor.variable] = variables[extractor.variable]
                continue
            missing = missing or message
        verdicts: list[tuple[str, str | None]] | None = [] if trace else None
        counts = user.check_counts
        for checkpoint, on_fail, slot in checks:
            verdict = checkpoint.check(response, variables)
            if verdicts is not None:
                verdicts.append((checkpoint.label(variables), verdict))
            if verdict is None:
                counts[slot][0] += 1
                continue
            counts[slot][1] += 1
            failure = failure or verdict
            signal = signal or (on_fail(verdict) if on_fail is not None else None)
            if not trace:
                break
        failure = failure or missing
        last = start
        for arrival, message in zip(outcome.arrivals, outcome.messages, strict=False):  # a stream's messages
            gap_ms, last = (arrival - last) * 1000, arrival
            user.runtime.on_request(user, RequestResult(METHOD, streamed, url, 0, gap_ms, message.ByteSize()))
        result = RequestResult(METHOD, name, url, 0, elapsed_ms, outcome.size, failure)
        if trace:
            result.response, result.trace_extracted = response, extracted
            result.trace_checks, result.trace_warnings = verdicts, warnings
        user.runtime.on_request(user, result)
        if failure is not None and user.transactions:
            user.fail_transactions(failure)
        if signal is not None:
            raise signal

    return [run] if think is None else [run, Think(think)]


def _message(body: Any, cls: Any) -> Any:
    from google.protobuf import json_format

    if not isinstance(body, Mapping):
        raise ValueError(f"the message of a gRPC call is a mapping, not {type(body).__name__}")
    try:
        return json_format.ParseDict(body, cls())
    except json_format.ParseError as exc:
        raise ValueError(f"the message does not match {cls.DESCRIPTOR.full_name}: {exc}") from None


def _messages(body: Any, cls: Any, json_format: Any) -> Iterator[Any]:
    if not isinstance(body, list | tuple):
        raise ValueError(f"'messages' of a streaming call is a list, not {type(body).__name__}")
    return iter([_message(item, cls) for item in body])  # all parsed before the call: a bad one is not sent


def _response(url: str, outcome: Outcome, elapsed_ms: float, stream: bool, json_format: Any) -> Response:
    documents = [
        json_format.MessageToDict(m, always_print_fields_with_no_presence=True, preserving_proto_field_name=True)
        for m in outcome.messages
    ]
    value: Any = documents if stream else (documents[0] if documents else None)
    body = json.dumps(value).encode() if outcome.messages or stream else b""
    headers = [("content-type", "application/json"), *outcome.metadata]
    return Response("GRPC", url, 200, outcome.code, headers, body, elapsed_ms, size=outcome.size)


def read_ca(files_base: Callable[[tuple], Path], ca: str | None) -> bytes | None:
    return (files_base(("grpc", "ca")) / ca).read_bytes() if ca else None


def _compile_step(step: GrpcStep, ctx: Any) -> list[Any]:
    think = ctx.compile_think(step.think) if step.think is not None else ctx.default_think
    return compile_grpc(step, ctx, think)


GRPC_COMPILERS: dict[type, Any] = {GrpcStep: _compile_step}

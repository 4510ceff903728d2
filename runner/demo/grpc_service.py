"""The demo's gRPC service (``shop.proto`` beside this file), served on the demo's own port.

grpcio's server listens on a private loopback port; the demo's HTTP server hands it every connection that opens
with the HTTP/2 preface (what a gRPC client sends first), so ``host: demo`` serves HTTP/1.1 and gRPC alike.
It counts calls and streamed messages per method for ``/__stats`` (``grpc``), as the XML-RPC service does.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

PROTO = Path(__file__).with_name("shop.proto")
PREFACE = b"PRI "  # the start of the HTTP/2 connection preface
ENDLESS_FOR = 30.0  # seconds Trouble/Endless keeps a stream open at most (a test's deadline ends it sooner)
MAX_STREAMED = 10_000  # prices WatchPrices sends at most


class DemoGrpc:
    """The service and its counters; ``start()`` serves it on a loopback port (``port``)."""

    def __init__(self, items: Sequence[dict[str, Any]]) -> None:
        from runner.scenario.grpc_proto import compile_protos

        self.items = {item["id"]: item for item in items}
        self.descriptors = compile_protos([PROTO], [])
        self.calls: Counter[str] = Counter()  # method -> calls
        self.sent: Counter[str] = Counter()  # method -> messages sent
        self.received: Counter[str] = Counter()  # method -> messages received
        self.errors: Counter[str] = Counter()  # method -> non-OK statuses
        self.lock = threading.Lock()
        self.server: Any = None
        self.port = 0

    def reset(self) -> None:
        with self.lock:
            for counter in (self.calls, self.sent, self.received, self.errors):
                counter.clear()

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": dict(self.calls),
                "sent": dict(self.sent),
                "received": dict(self.received),
                "errors": dict(self.errors),
            }

    def start(self, tls: tuple[bytes, bytes] | None = None) -> int:
        """Serve on a free loopback port (``tls``: the PEM key and certificate, for TLS); returns the port."""
        import grpc
        from gevent import monkey
        from grpc_reflection.v1alpha import reflection

        if monkey.is_module_patched("threading"):  # a patched process: grpcio must wait through gevent
            from grpc.experimental import gevent as grpc_gevent

            grpc_gevent.init_gevent()
        handlers: dict[str, Any] = {}
        for path, function in self._methods().items():
            method = self.descriptors.method(path)
            make = {
                "unary": grpc.unary_unary_rpc_method_handler,
                "server_streaming": grpc.unary_stream_rpc_method_handler,
                "client_streaming": grpc.stream_unary_rpc_method_handler,
                "bidi_streaming": grpc.stream_stream_rpc_method_handler,
            }[method.kind]
            serialize = _raw if path.endswith("/Malformed") else method.output.SerializeToString
            service, name = path.split("/")
            handlers.setdefault(service, {})[name] = make(
                function, request_deserializer=method.input.FromString, response_serializer=serialize
            )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(service, methods) for service, methods in handlers.items()]
        )
        names = [*self.descriptors.services, reflection.SERVICE_NAME]
        reflection.enable_server_reflection(names, self.server, pool=self.descriptors.pool)
        if tls is not None:
            credentials = grpc.ssl_server_credentials([tls])
            self.port = self.server.add_secure_port("127.0.0.1:0", credentials)
        else:
            self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        return self.port

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=1)

    # -- the methods -----------------------------------------------------------------------------------------

    def _methods(self) -> dict[str, Callable[..., Any]]:
        return {
            "shop.Catalog/GetItem": self._counted("GetItem", self.get_item),
            "shop.Catalog/WatchPrices": self._counted("WatchPrices", self.watch_prices),
            "shop.Catalog/AddToCart": self._counted("AddToCart", self.add_to_cart),
            "shop.Catalog/Chat": self._counted("Chat", self.chat),
            "shop.Trouble/Malformed": self._counted("Malformed", lambda request, context: b"\xff\xff\xff\xff"),
            "shop.Trouble/Endless": self._counted("Endless", self.endless),
            "shop.Trouble/Slow": self._counted("Slow", self.slow),
        }

    def _counted(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(request: Any, context: Any) -> Any:
            with self.lock:
                self.calls[name] += 1
            if isinstance(request, Iterator):
                request = self._count_in(name, request)
            else:
                with self.lock:
                    self.received[name] += 1
            try:
                result = function(request, context)
                if isinstance(result, Iterator):
                    return self._count_out(name, result)
                with self.lock:
                    self.sent[name] += 1
                return result
            except Exception:
                with self.lock:
                    self.errors[name] += 1
                raise

        return call

    def _count_in(self, name: str, requests: Iterator[Any]) -> Iterator[Any]:
        for request in requests:
            with self.lock:
                self.received[name] += 1
            yield request

    def _count_out(self, name: str, responses: Iterator[Any]) -> Iterator[Any]:
        for response in responses:
            with self.lock:
                self.sent[name] += 1
            yield response

    def _output(self, path: str) -> Any:
        return self.descriptors.method(path).output

    def get_item(self, request: Any, context: Any) -> Any:
        import grpc

        user = dict(context.invocation_metadata()).get("x-user")
        if user is not None:  # metadata the client sent comes back in the trailers, for tests of both
            context.set_trailing_metadata((("x-echo-user", user),))
        item = self.items.get(request.id)
        if item is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no item {request.id}")  # raises
            return None
        return self._output("shop.Catalog/GetItem")(id=item["id"], name=item["name"], price=item["price"])

    def watch_prices(self, request: Any, context: Any) -> Iterator[Any]:
        price = self._output("shop.Catalog/WatchPrices")
        base = self.items.get(request.id, {"price": 1.0})["price"]
        for seq in range(1, min(request.count or 5, MAX_STREAMED) + 1):
            yield price(id=request.id, price=round(base * (1 + seq / 100), 2), seq=seq)

    def add_to_cart(self, requests: Iterator[Any], context: Any) -> Any:
        lines = items = 0
        total = 0.0
        for line in requests:
            lines += 1
            items += line.quantity
            total += self.items.get(line.item_id, {"price": 0.0})["price"] * line.quantity
        return self._output("shop.Catalog/AddToCart")(lines=lines, items=items, total=round(total, 2))

    def chat(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:
        note = self._output("shop.Catalog/Chat")
        for request in requests:
            yield note(text=f"echo: {request.text}")

    def endless(self, request: Any, context: Any) -> Iterator[Any]:
        note = self._output("shop.Trouble/Endless")
        yield note(text="first, and last")
        end = time.monotonic() + ENDLESS_FOR
        while context.is_active() and time.monotonic() < end:
            time.sleep(0.05)

    def slow(self, request: Any, context: Any) -> Any:
        time.sleep(min(request.millis, 30_000) / 1000)
        return self._output("shop.Trouble/Slow")(text=f"after {request.millis} ms")


def start(app: Any) -> DemoGrpc | None:
    """The demo's gRPC service, serving (None when grpcio is not installed)."""
    from runner.scenario.grpc_proto import available

    if not available():
        return None
    from runner.demo.app import ITEMS

    service = DemoGrpc(ITEMS)
    service.start()
    return service


def _raw(value: bytes) -> bytes:
    return value


def is_grpc(sock: Any) -> bool:
    """Whether a new connection opens with the HTTP/2 preface (peeked: the bytes stay for whoever reads)."""
    try:
        return bool(sock.recv(len(PREFACE), socket.MSG_PEEK) == PREFACE)
    except OSError:
        return False


def relay(sock: Any, port: int) -> None:
    """Pipe a client's connection to the gRPC server on ``port`` and back, until either side closes."""
    import gevent
    from gevent import socket as gsocket

    try:
        upstream = gsocket.create_connection(("127.0.0.1", port))
    except OSError:
        return
    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def pump(source: Any, target: Any) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    back = gevent.spawn(pump, upstream, sock)
    pump(sock, upstream)
    back.join()
    upstream.close()

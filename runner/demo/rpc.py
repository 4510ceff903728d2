"""The demo's XML-RPC service (``POST /RPC2``), for scenarios that test a protocol other than HTTP from Python.

Methods: ``add(a, b)``, ``echo(value)``, ``item(id)`` (a catalogue item; a fault for an unknown id), and the
standard ``system.listMethods``. The service counts the calls and faults of each method for ``/__stats``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from xmlrpc.client import Fault
from xmlrpc.server import SimpleXMLRPCDispatcher

NO_SUCH_ITEM = 404


class RpcService:
    def __init__(self, items: Sequence[dict[str, Any]]) -> None:
        self.items = {item["id"]: item for item in items}
        self.calls: dict[str, int] = {}
        self.faults: dict[str, int] = {}
        self.dispatcher = SimpleXMLRPCDispatcher(allow_none=True, encoding="utf-8")
        self.dispatcher.register_introspection_functions()
        for name, function in (("add", self.add), ("echo", self.echo), ("item", self.item)):
            self.dispatcher.register_function(self._counted(name, function), name)

    def handle(self, body: bytes) -> bytes:
        """An XML-RPC request body -> the response body (a fault for a bad call, as the protocol says)."""
        response: bytes | str = self.dispatcher._marshaled_dispatch(body)  # what xmlrpc.server's handlers call
        return response.encode() if isinstance(response, str) else response

    def stats(self) -> dict[str, Any]:
        return {"calls": dict(self.calls), "faults": dict(self.faults)}

    def _counted(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            try:
                return function(*args)
            except Exception:
                self.faults[name] = self.faults.get(name, 0) + 1
                raise

        return call

    @staticmethod
    def add(a: int | float, b: int | float) -> int | float:
        return a + b

    @staticmethod
    def echo(value: Any) -> Any:
        return value

    def item(self, item_id: int) -> dict[str, Any]:
        if item_id not in self.items:
            raise Fault(NO_SUCH_ITEM, f"no item {item_id}")
        return self.items[item_id]

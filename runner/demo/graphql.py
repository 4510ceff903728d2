"""The demo target's GraphQL endpoint (``/graphql``, POST JSON or GET): a fixed schema, resolved by hand.

    type Query    { items: [Item]  item(id: Int!): Item }
    type Mutation { order(item: Int!, quantity: Int!): Order }
    type Item     { id: Int  name: String  price: Float }
    type Order    { id: Int  item: Int  quantity: Int  total: Float }

One top-level field per operation, arguments as literals or ``$variables``, a flat selection. What it cannot
resolve is answered as GraphQL servers do: 200 with ``errors`` (an unknown field, an unknown item). Operations are
counted by name (``/__stats`` "graphql").
"""

from __future__ import annotations

import json
import re
from typing import Any

_OPERATION = re.compile(
    r"^\s*(?:(query|mutation)\s*([A-Za-z_]\w*)?\s*(?:\(([^)]*)\))?\s*)?\{\s*([A-Za-z_]\w*)\s*(?:\(([^)]*)\))?\s*"
    r"\{([^{}]*)\}\s*\}\s*$",
    re.DOTALL,
)
_ARGUMENT = re.compile(r"([A-Za-z_]\w*)\s*:\s*(\$[A-Za-z_]\w*|-?\d+(?:\.\d+)?|\"[^\"]*\")")
_FIELDS = {"Item": ("id", "name", "price"), "Order": ("id", "item", "quantity", "total")}
_ROOTS = {"query": {"items": "Item", "item": "Item"}, "mutation": {"order": "Order"}}


class GraphqlDemo:
    def __init__(self, items: tuple[dict[str, Any], ...]) -> None:
        self.items = {item["id"]: item for item in items}
        self.operations: dict[str, int] = {}
        self.errors = 0
        self.next_order = 1

    def stats(self) -> dict[str, Any]:
        return {"operations": self.operations, "errors": self.errors}

    def execute(self, query: str, variables: dict[str, Any], operation: str | None) -> dict[str, Any]:
        """A GraphQL response: {"data": ...} or {"data": null, "errors": [...]}."""
        match = _OPERATION.match(query or "")
        name = operation or (match[2] if match else None) or "anonymous"
        self.operations[name] = self.operations.get(name, 0) + 1
        if match is None:
            return self._error("Syntax Error: this demo resolves one field with a flat selection")
        kind, field = match[1] or "query", match[4]
        type_name = _ROOTS[kind].get(field)
        if type_name is None:
            return self._error(f"Cannot query field '{field}' on type '{kind.title()}'")
        selection = match[6].split()
        unknown = [f for f in selection if f not in _FIELDS[type_name]]
        if unknown:
            return self._error(f"Cannot query field '{unknown[0]}' on type '{type_name}'")
        args: dict[str, Any] = {}
        for key, raw in _ARGUMENT.findall(match[5] or ""):
            args[key] = variables.get(raw[1:]) if raw.startswith("$") else json.loads(raw)
        try:
            value = self._resolve(field, args)
        except LookupError as exc:
            return self._error(str(exc.args[0]), data={field: None})
        pick = lambda obj: {f: obj.get(f) for f in selection}  # noqa: E731
        return {"data": {field: [pick(v) for v in value] if isinstance(value, list) else pick(value)}}

    def _resolve(self, field: str, args: dict[str, Any]) -> Any:
        if field == "items":
            return list(self.items.values())
        item = self.items.get(_int(args.get("id" if field == "item" else "item")))
        if item is None:
            raise LookupError(f"no item {args.get('id' if field == 'item' else 'item')}")
        if field == "item":
            return item
        quantity = _int(args.get("quantity")) or 1
        order = {"id": self.next_order, "item": item["id"], "quantity": quantity, "total": item["price"] * quantity}
        self.next_order += 1
        return order

    def _error(self, message: str, data: Any = None) -> dict[str, Any]:
        self.errors += 1
        return {"data": data, "errors": [{"message": message}]}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def request_parts(method: str, query: dict[str, list[str]], body: Any) -> tuple[str, dict[str, Any], str | None]:
    """(query, variables, operationName) of a GraphQL request: a JSON body for POST, the query string for GET."""
    if method == "GET":
        variables = json.loads((query.get("variables") or ["{}"])[0] or "{}")
        operation = query.get("operationName")
        return (query.get("query") or [""])[0], variables or {}, operation[0] if operation else None
    if not isinstance(body, dict):
        return "", {}, None
    return str(body.get("query") or ""), body.get("variables") or {}, body.get("operationName")

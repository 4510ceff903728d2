"""JSONPath, compiled once: a fast path for plain paths, jsonpath-ng for the rest.

``$.token``, ``$.items[0].id`` and ``$['a b'].c`` are walked directly (they are most of what load tests
extract, on the hot path); filters, wildcards and slices go to ``jsonpath_ng.ext``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

Finder = Callable[[Any], list[Any]]

_STEP = re.compile(r"""\.([A-Za-z_][\w-]*)|\[(-?\d+)\]|\[['"]([^'"]*)['"]\]""")


def _plain_steps(expr: str) -> list[str | int] | None:
    if not expr.startswith("$"):
        return None
    steps: list[str | int] = []
    pos = 1
    while pos < len(expr):
        match = _STEP.match(expr, pos)
        if not match:
            return None
        name, index, quoted = match.groups()
        steps.append(int(index) if index is not None else (name if name is not None else quoted))
        pos = match.end()
    return steps


def _walker(steps: list[str | int]) -> Finder:
    def find(document: Any) -> list[Any]:
        node = document
        for step in steps:
            try:
                if isinstance(step, int):
                    if not isinstance(node, list):
                        return []
                    node = node[step]
                else:
                    if not isinstance(node, dict):
                        return []
                    node = node[step]
            except (KeyError, IndexError):
                return []
        return [node]

    return find


@lru_cache(maxsize=1024)
def compile_jsonpath(expr: str) -> Finder:
    """Return ``find(document) -> list of matches``; raise ``ValueError`` for a malformed path."""
    steps = _plain_steps(expr.strip())
    if steps is not None:
        return _walker(steps)
    from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
    from jsonpath_ng.ext import parse

    try:
        compiled = parse(expr)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:
        raise ValueError(f"invalid JSONPath {expr!r}: {exc}") from None
    return lambda document: [match.value for match in compiled.find(document)]

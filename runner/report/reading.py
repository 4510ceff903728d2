"""Parsing a results file that may be hostile: bounded in size, depth and values, before the model sees it.

A results file is shared (CI artifacts, tickets), so ``lrun report`` may be given anything. What it gets from
here is plain JSON with every number finite and within ``MAX_MAGNITUDE``, nested at most ``MAX_DEPTH`` levels,
at most ``MAX_VALUES`` values, from a file of at most ``MAX_BYTES``; anything else is ``ValueError`` with one
line saying what (the caller names the file).
"""

from __future__ import annotations

import json
from typing import Any

from runner.report.model import MAX_MAGNITUDE

MAX_BYTES = 256 * 2**20  # a one-hour run writes ~12 MB; series are capped in points, so long runs do not grow it
MAX_DEPTH = 32  # the results nest 6 levels
MAX_VALUES = 4_000_000  # values in the whole document (a one-hour run: about 400,000)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number results hold (the file is strict JSON)")


def _float(text: str) -> float:
    value = float(text)
    if not -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:
        raise ValueError(f"the number {text[:40]} is out of range (at most 1e18)")
    return value


def _int(text: str) -> int:
    if len(text) > 20 or not -MAX_MAGNITUDE <= (value := int(text)) <= MAX_MAGNITUDE:
        shown = text if len(text) <= 40 else f"of {len(text.lstrip('-'))} digits"
        raise ValueError(f"the number {shown} is out of range (at most 1e18)")
    return value


def parse_results_text(text: str) -> Any:
    """The JSON of ``text``, checked as the module says; ``ValueError`` (``json.JSONDecodeError`` for syntax)."""
    if len(text) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES // 2**20} MiB: not a results file lrun wrote")
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_float, parse_int=_int)
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None
    check_shape(data)
    return data


def check_shape(data: Any) -> None:
    """Depth and count of the values of ``data``, without recursion; ``ValueError`` naming where."""
    pending: list[tuple[Any, str, int]] = [(data, "", 0)]
    seen = 0
    while pending:
        value, where, depth = pending.pop()
        values = value.values() if isinstance(value, dict) else value
        seen += len(values)
        if seen > MAX_VALUES:
            raise ValueError(f"more than {MAX_VALUES:,} values: not a results file lrun wrote")
        if depth >= MAX_DEPTH:
            raise ValueError(f"{where or '(top level)'}: nested more than {MAX_DEPTH} levels deep")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        pending.extend(
            (item, f"{where}.{key}" if where else str(key), depth + 1)
            for key, item in items
            if isinstance(item, dict | list)
        )

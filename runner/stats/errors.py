"""Failures and exceptions, grouped and counted, in bounded memory.

- A *failure* is a request that failed (HTTP error, checkpoint, timeout): grouped by (method, name, message).
- An *exception* is an error raised inside a user outside of a request (a bug in the scenario or in lrun):
  grouped by (exception type, message), keeping the first traceback seen.

Messages are grouped as they are: ``order 1234 not found`` and ``order 1235 not found`` are two groups. To keep
memory bounded, at most ``max_groups`` groups of each kind are kept; past that, occurrences of new groups are
counted in one extra group marked ``"other": true`` whose message says so.
"""

from __future__ import annotations

import traceback as tb
from dataclasses import dataclass, field
from typing import Any

MAX_GROUPS = 500
TRACEBACK_LIMIT = 20_000  # characters kept of a traceback (its start and its end)


def _seen(value: float) -> float:
    return round(value, 3)


@dataclass(slots=True)
class FailureGroup:
    method: str
    name: str
    message: str
    count: int = 0
    first_seen: float = 0.0  # epoch s
    last_seen: float = 0.0
    other: bool = False

    def add(self, count: int, first_seen: float, last_seen: float) -> None:
        self.first_seen = first_seen if not self.count else min(self.first_seen, first_seen)
        self.last_seen = max(self.last_seen, last_seen)
        self.count += count

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "name": self.name,
            "message": self.message,
            "count": self.count,
            "first_seen": _seen(self.first_seen),
            "last_seen": _seen(self.last_seen),
            "other": self.other,
        }


@dataclass(slots=True)
class ExceptionGroup:
    type: str
    message: str
    traceback: str = ""
    count: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0
    users: set[str] = field(default_factory=set)  # user types it happened in
    nodes: set[str] = field(default_factory=set)  # processes it happened in ("local", or worker ids)
    other: bool = False

    def add(self, count: int, first_seen: float, last_seen: float, users: set[str], nodes: set[str]) -> None:
        self.first_seen = first_seen if not self.count else min(self.first_seen, first_seen)
        self.last_seen = max(self.last_seen, last_seen)
        self.count += count
        self.users |= users
        self.nodes |= nodes

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            "count": self.count,
            "traceback": self.traceback,
            "first_seen": _seen(self.first_seen),
            "last_seen": _seen(self.last_seen),
            "users": sorted(self.users),
            "nodes": sorted(self.nodes),
            "other": self.other,
        }


def exception_type(error: BaseException) -> str:
    """``ValueError``, ``gevent.timeout.Timeout``: the module is left out for builtins."""
    cls = type(error)
    return cls.__qualname__ if cls.__module__ in ("builtins", "__main__") else f"{cls.__module__}.{cls.__qualname__}"


def exception_message(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:  # a broken __str__ must not break the statistics
        return f"<unprintable {type(error).__name__}>"


def format_traceback(error: BaseException) -> str:
    try:
        text = "".join(tb.format_exception(error))
    except Exception:
        return ""
    if len(text) > TRACEBACK_LIMIT:
        half = TRACEBACK_LIMIT // 2
        text = f"{text[:half]}\n[… {len(text) - 2 * half} characters left out …]\n{text[-half:]}"
    return text


class ErrorStats:
    """The failure and exception groups of a run (or of a worker's delta)."""

    def __init__(self, max_groups: int = MAX_GROUPS, node: str = "local") -> None:
        self.max_groups = max_groups
        self.node = node
        self.failures: dict[tuple[str, str, str], FailureGroup] = {}
        self.exceptions: dict[tuple[str, str], ExceptionGroup] = {}
        self.other_failures: FailureGroup | None = None
        self.other_exceptions: ExceptionGroup | None = None

    def __bool__(self) -> bool:
        return bool(self.failures or self.exceptions or self.other_failures or self.other_exceptions)

    def clear(self) -> None:
        self.failures = {}
        self.exceptions = {}
        self.other_failures = None
        self.other_exceptions = None

    # ------------------------------------------------------------------------------------------ adding

    def add_failure(self, method: str, name: str, message: str, now: float, count: int = 1) -> None:
        group = self.failures.get((method, name, message))
        if group is None:
            group = self._failure_group(method, name, message)
        group.add(count, now, now)

    def _failure_group(self, method: str, name: str, message: str) -> FailureGroup:
        if len(self.failures) < self.max_groups:
            group = self.failures[(method, name, message)] = FailureGroup(method, name, message)
            return group
        if self.other_failures is None:
            text = f"other failures: more than {self.max_groups} distinct (method, name, message), counted here"
            self.other_failures = FailureGroup("", "", text, other=True)
        return self.other_failures

    def add_exception(self, error: BaseException, user_type: str, now: float) -> None:
        kind, message = exception_type(error), exception_message(error)
        group = self.exceptions.get((kind, message))
        if group is None:
            group = self._exception_group(kind, message)
            if not group.traceback and not group.other:
                group.traceback = format_traceback(error)
        group.add(1, now, now, {user_type}, {self.node})

    def _exception_group(self, kind: str, message: str) -> ExceptionGroup:
        if len(self.exceptions) < self.max_groups:
            group = self.exceptions[(kind, message)] = ExceptionGroup(kind, message)
            return group
        if self.other_exceptions is None:
            text = f"other exceptions: more than {self.max_groups} distinct (type, message), counted here"
            self.other_exceptions = ExceptionGroup("", text, other=True)
        return self.other_exceptions

    # ------------------------------------------------------------------------------------------ reading

    def failure_list(self) -> list[dict[str, Any]]:
        """Most frequent first; the "other" group, if any, last."""
        groups = sorted(self.failures.values(), key=lambda g: (-g.count, g.method, g.name, g.message))
        if self.other_failures is not None:
            groups.append(self.other_failures)
        return [g.to_dict() for g in groups]

    def exception_list(self) -> list[dict[str, Any]]:
        groups = sorted(self.exceptions.values(), key=lambda g: (-g.count, g.type, g.message))
        if self.other_exceptions is not None:
            groups.append(self.other_exceptions)
        return [g.to_dict() for g in groups]

    def to_state(self) -> dict[str, Any]:
        return {"failures": self.failure_list(), "exceptions": self.exception_list()}

    # ------------------------------------------------------------------------------------------ merging

    def merge(self, other: ErrorStats | dict[str, Any]) -> None:
        """Add another set of groups (``ErrorStats`` or ``to_state()``), within this one's bound."""
        state = other.to_state() if isinstance(other, ErrorStats) else other
        try:
            for f in state.get("failures", ()):
                if f.get("other"):
                    if self.other_failures is None:
                        self.other_failures = FailureGroup("", "", str(f["message"]), other=True)
                    group = self.other_failures
                else:
                    method, name, message = str(f["method"]), str(f["name"]), str(f["message"])
                    group = self.failures.get((method, name, message)) or self._failure_group(method, name, message)
                group.add(int(f["count"]), float(f["first_seen"]), float(f["last_seen"]))
            for e in state.get("exceptions", ()):
                if e.get("other"):
                    if self.other_exceptions is None:
                        self.other_exceptions = ExceptionGroup("", str(e["message"]), other=True)
                    xgroup = self.other_exceptions
                else:
                    kind, message = str(e["type"]), str(e["message"])
                    xgroup = self.exceptions.get((kind, message)) or self._exception_group(kind, message)
                if not xgroup.traceback and not xgroup.other:
                    xgroup.traceback = str(e.get("traceback") or "")
                users, nodes = {str(u) for u in e.get("users", ())}, {str(n) for n in e.get("nodes", ())}
                xgroup.add(int(e["count"]), float(e["first_seen"]), float(e["last_seen"]), users, nodes)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not an error report: {exc!r}") from None

"""Events of a run for Python API users: ``request`` (each request or timed call, in this process), ``spawn``
(all users started: their count), ``stop`` (the run ended: its typed ``Results``), ``start`` (the load started: the
run's ``live.state.Live``, for lrun's own tools). Listeners run in the run's greenlets;
an exception in one is logged once and does not stop the run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("lrun")


class EventHook:
    """Listeners of one event: ``hook.add_listener(fn)`` (or ``@hook.add_listener``), ``hook.fire(*args)``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.listeners: list[Callable[..., Any]] = []
        self._failed: set[int] = set()

    def add_listener(self, listener: Callable[..., Any]) -> Callable[..., Any]:
        self.listeners.append(listener)
        return listener

    def fire(self, *args: Any) -> None:
        for listener in self.listeners:
            try:
                listener(*args)
            except Exception as exc:
                if id(listener) not in self._failed:
                    self._failed.add(id(listener))
                    log.warning("a %s listener failed (reported once): %s: %s", self.name, type(exc).__name__, exc)

    def __bool__(self) -> bool:
        return bool(self.listeners)


@dataclass
class Events:
    request: EventHook = field(default_factory=lambda: EventHook("request"))  # (user, RequestResult)
    spawn: EventHook = field(default_factory=lambda: EventHook("spawn"))  # (user count)
    stop: EventHook = field(default_factory=lambda: EventHook("stop"))  # (runner.report.model.Results)
    start: EventHook = field(default_factory=lambda: EventHook("start"))  # (the run's live.state.Live) load started

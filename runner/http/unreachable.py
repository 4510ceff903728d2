"""``Unreachable``: notices a target that answers nothing but connection errors, and says so once.

A load test against a target that is down, on the wrong port or behind a firewall fails every request in
microseconds; thousands of failures a second hide the one thing to fix. After ``after`` seconds in which every
request failed to connect (refused, timed out, name not resolved …), ``note`` returns one warning naming the
cause and the address; a request that reaches a server starts the count again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

AFTER = 3.0  # seconds of nothing but connection errors before the warning


class Unreachable:
    __slots__ = ("_clock", "after", "since", "warned")

    def __init__(self, after: float = AFTER, clock: Callable[[], float] = time.monotonic) -> None:
        self.after = after
        self._clock = clock
        self.since: float | None = None  # when the current run of connection errors began
        self.warned = False

    def note(self, connect_error: str | None) -> str | None:
        """Count one request: ``connect_error`` when it could not connect, else None. A warning, once."""
        if connect_error is None:
            self.since = None
            return None
        if self.warned:
            return None
        now = self._clock()
        if self.since is None:
            self.since = now
            return None
        if now - self.since < self.after:
            return None
        self.warned = True
        return (
            f"for {self.after:g} s every request failed to connect: {connect_error}. "
            "Is the target running at that address (host, -H)?"
        )

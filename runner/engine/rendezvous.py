"""Rendezvous points: users arriving wait until the release policy is met, then all go at once.

``RendezvousSpec`` is what the compiler makes of a rendezvous step: its name and policy, never changed.
``Gate`` is the bookkeeping of one point in one test — arrivals, the policy, the timeout, the record of
releases — with no greenlets in it, so a distributed master can run the same gate over arrivals reported by its
workers. ``RendezvousPoint`` puts a gate to work in one process: arriving users block on an event until a
release. Gates and points are a test's own (``runner.engine.state.RunState``), made fresh for each test.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import Event

POLICY_TEXT = {"users": "{:g} users", "percent": "{:g}% of all users", "percent_running": "{:g}% of running users"}


@dataclass(frozen=True, slots=True)
class RendezvousSpec:
    """A rendezvous point as the scenario declares it."""

    name: str
    kind: str  # "users", "percent" or "percent_running"
    value: float
    timeout: float  # seconds after the last arrival that release whoever waits


@dataclass(slots=True)
class Release:
    t: float  # epoch seconds
    released: int
    reason: str  # "policy", "timeout" or "stopping"
    waited_ms: float  # the longest wait in the group

    def as_dict(self) -> dict[str, Any]:
        return {"t": round(self.t, 3), "released": self.released, "reason": self.reason, "waited_ms": self.waited_ms}


class Gate:
    """Arrivals at one rendezvous point and when they are released."""

    def __init__(self, name: str, kind: str, value: float, timeout: float) -> None:
        self.name = name
        self.kind = kind
        self.value = value
        self.timeout = timeout
        self.arrivals = 0
        self.waiting = 0
        self.first_arrival = 0.0
        self.last_arrival = 0.0
        self.releases: list[Release] = []

    @property
    def policy(self) -> str:
        return POLICY_TEXT[self.kind].format(self.value)

    def needed(self, total: int, running: int) -> int:
        """How many waiting users release the group, given all users of the test and those running now."""
        if self.kind == "users":
            return int(self.value)
        base = total if self.kind == "percent" else running
        return max(1, math.ceil(base * self.value / 100 - 1e-9))

    def arrive(self, count: int, now: float, total: int, running: int) -> Release | None:
        """``count`` users arrived; a ``Release`` when that meets the policy."""
        if not self.waiting:
            self.first_arrival = now
        self.arrivals += count
        self.waiting += count
        self.last_arrival = now
        return self.check(now, total, running)

    def check(self, now: float, total: int, running: int) -> Release | None:
        """Release by policy (the population may have changed) or by timeout, if due."""
        if not self.waiting:
            return None
        if self.waiting >= self.needed(total, running):
            return self.release("policy", now)
        if now - self.last_arrival >= self.timeout:
            return self.release("timeout", now)
        return None

    def release(self, reason: str, now: float) -> Release | None:
        if not self.waiting:
            return None
        record = Release(now, self.waiting, reason, round((now - self.first_arrival) * 1000, 3))
        self.releases.append(record)
        self.waiting = 0
        return record

    def summary(self) -> dict[str, Any]:
        """This point's part of the results."""
        return {
            "name": self.name,
            "policy": self.policy,
            "timeout_s": self.timeout,
            "arrivals": self.arrivals,
            "releases": [r.as_dict() for r in self.releases],
        }


class RendezvousPoint:
    """A gate in this process. Disabled (debug, ``--no-rendezvous``) it lets every user pass at once.

    ``population`` gives (all users of the test, users running now); the run sets it before its users start. In
    a worker of a distributed run the gate is the master's: ``remote(name, count)`` reports arrivals to it, and
    ``open()`` lets the users waiting here go when the master broadcasts a release.
    """

    def __init__(self, name: str, kind: str, value: float, timeout: float) -> None:
        self.gate = Gate(name, kind, value, timeout)
        self.enabled = False
        self.population: Callable[[], tuple[int, int]] = lambda: (0, 0)
        self.remote: Callable[[str, int], None] | None = None
        self._event = Event()
        self._watch: gevent.Greenlet | None = None

    @classmethod
    def of(cls, spec: RendezvousSpec) -> RendezvousPoint:
        return cls(spec.name, spec.kind, spec.value, spec.timeout)

    @property
    def name(self) -> str:
        return self.gate.name

    def wait(self) -> float:
        """Arrive and wait for the release; return the seconds waited."""
        gate = self.gate
        if not self.enabled:
            gate.arrivals += 1
            return 0.0
        start = time.monotonic()
        event = self._event
        if self.remote is not None:
            gate.arrivals += 1
            self.remote(gate.name, 1)
            event.wait()
            return time.monotonic() - start
        if gate.arrive(1, time.time(), *self.population()) is not None:
            self.open()
            return 0.0
        if self._watch is None:
            self._watch = gevent.spawn(self._watcher)
        event.wait()
        return time.monotonic() - start

    def open(self) -> None:
        """Let the users waiting now go (later arrivals wait for the next release)."""
        event, self._event = self._event, Event()
        event.set()

    def _watcher(self) -> None:
        """Release on timeout, or when the running users fall to what the policy needs; ends when none wait."""
        gate = self.gate
        try:
            while gate.waiting:
                due = gate.last_arrival + gate.timeout - time.time()
                gevent.sleep(min(1.0, max(0.001, due)))
                if gate.check(time.time(), *self.population()) is not None:
                    self.open()
        finally:
            self._watch = None

    def release_all(self, reason: str = "stopping") -> None:
        """Let everybody go (the test is stopping)."""
        if self.remote is not None or self.gate.release(reason, time.time()) is not None:
            self.open()

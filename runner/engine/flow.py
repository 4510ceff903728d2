"""Signals a step raises to change what a virtual user does next. They are not errors."""

from __future__ import annotations


class FlowSignal(Exception):
    """Base of the control-flow signals; ``reason`` says why, for logs and reports."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


class StopIteration_(FlowSignal):
    """End this iteration now; the user starts the next one."""


class StopUser(FlowSignal):
    """End this user (its on_stop steps still run)."""


class StopTest(FlowSignal):
    """End the whole test: a failure (stop_test after a failed checkpoint), or the planned end (``failed=False``:
    a data pool with when_empty: stop_test ran out of rows)."""

    def __init__(self, reason: str = "", failed: bool = True) -> None:
        super().__init__(reason)
        self.failed = failed


ON_FAIL: dict[str, type[FlowSignal] | None] = {
    "continue": None,
    "stop_iteration": StopIteration_,
    "stop_user": StopUser,
    "stop_test": StopTest,
}

"""The load that actually ran: users asked beside users that ran, and the requests cut off by the stop."""

from __future__ import annotations

from collections.abc import Mapping

from runner.report.model import Interrupted, InterruptedRequest, UserCounts


def user_counts(asked: int | None, peak: int, started: int | None, ended_early: int) -> UserCounts:
    """The ``user_counts`` part of the results."""
    return UserCounts(asked=asked, peak=peak, started=started, ended_early=ended_early)


def interrupted(cut: Mapping[tuple[str, str], int]) -> Interrupted:
    """The ``interrupted`` part of the results: requests in flight when the run stopped, per (method, name)."""
    return Interrupted(
        total=sum(cut.values()),
        requests=[InterruptedRequest(method=m, name=n, count=c) for (m, n), c in sorted(cut.items())],
    )

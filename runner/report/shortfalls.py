"""Where the load did not happen as planned: typed warnings read from the results, one function per part.

A run can pass its thresholds while the load it was meant to apply never happened (arrivals never started, users
ended early, a worker lost, lrun itself saturated). Such a run does not end in a plain PASSED: the results carry
``load_warnings``, the verdict line says what went wrong, and ``--strict`` fails the run on them (exit code 1).

A part adds a kind by writing ``@shortfall def _mine(results) -> Iterable[LoadWarning]`` here: it reads only the
typed ``Results``, so ``lrun report`` re-renders the same warnings from a saved file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from runner.report.model import LoadWarning, Results, StopCode

DROPPED_LIMIT = 0.01  # arrivals never started beyond this share of the planned ones are a warning

# stopped before the load could be reached: by a person, an error, an abort or the scenario itself
_CUT_SHORT = frozenset(
    {
        StopCode.INTERRUPTED,
        StopCode.STOPPED,
        StopCode.ERROR,
        StopCode.THRESHOLD_ABORT,
        StopCode.RESOURCE_ABORT,
        StopCode.STOP_TEST,
        StopCode.POOL_DRY,
    }
)

Check = Callable[[Results], Iterable[LoadWarning]]
CHECKS: list[Check] = []


def shortfall(check: Check) -> Check:
    """Register ``check``: every run's results go through it."""
    CHECKS.append(check)
    return check


def load_warnings(results: Results) -> list[LoadWarning]:
    """Everything about ``results`` that says the load was not what was planned (empty when it was)."""
    return [warning for check in CHECKS for warning in check(results)]


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@shortfall
def _arrivals(results: Results) -> Iterable[LoadWarning]:
    arrivals = results.arrivals
    if arrivals is None or not arrivals.planned:
        return
    dropped = arrivals.dropped if arrivals.dropped is not None else max(0, arrivals.planned - arrivals.started)
    if dropped > DROPPED_LIMIT * arrivals.planned:
        yield LoadWarning(
            kind="arrivals_dropped",
            message=f"{dropped} of {arrivals.planned} planned arrivals never started",
            count=dropped,
        )


@shortfall
def _users(results: Results) -> Iterable[LoadWarning]:
    users = results.user_counts
    if users is None:
        return
    iterations = results.load.iterations  # users that end after their iterations end by design
    # users stopped by a dry pool are the pools' own warning (below), which names the pool
    ended_early = max(0, users.ended_early - sum(pool.users_stopped for pool in results.pools or []))
    if ended_early:
        yield LoadWarning(
            kind="users_ended_early",
            message=f"{ended_early} of {_plural(users.started or users.peak, 'user')} ended before the test did "
            "(stop_user, a failed on_start, an error)",
            count=ended_early,
        )
    elif results.code == StopCode.USERS_DONE and results.load.run_time_s and not iterations:
        yield LoadWarning(
            kind="users_ended_early",
            message=f"every user ended after {results.duration_s:g}s of the {results.load.run_time_s:g}s asked",
            count=users.peak,
        )
    asked = users.asked
    if asked and users.peak < asked and results.code not in _CUT_SHORT and not users.ended_early and not iterations:
        yield LoadWarning(
            kind="users_short",
            message=f"at most {users.peak} of the {_plural(asked, 'user')} asked ran at once",
            count=asked - users.peak,
        )


@shortfall
def _workers(results: Results) -> Iterable[LoadWarning]:
    lost = [w.id for w in results.workers or [] if w.state == "missing"]
    if lost:
        yield LoadWarning(
            kind="worker_lost",
            message=f"{_plural(len(lost), 'worker')} lost during the run ({', '.join(lost[:5])})",
            count=len(lost),
        )


@shortfall
def _saturation(results: Results) -> Iterable[LoadWarning]:
    saturation = results.saturation
    if saturation is not None and saturation.saturated:
        yield LoadWarning(
            kind="generator_saturated",
            message=f"lrun itself was saturated for {saturation.saturated_s:g}s: response times include its waiting",
        )


@shortfall
def _pools(results: Results) -> Iterable[LoadWarning]:
    """Users that stopped because a data pool had no row for them."""
    for pool in results.pools or []:
        if pool.users_stopped > 0:
            yield LoadWarning(
                kind="pool_users_stopped",
                message=f"{_plural(pool.users_stopped, 'user')} stopped for lack of rows in data pool {pool.name}",
                count=pool.users_stopped,
            )

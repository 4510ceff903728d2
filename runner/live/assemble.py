"""One results assembly: ``assemble(live, end)`` builds the ``Results`` of a test from its live state, for the
CLI's run at its end, the web UI (at the end and for a download while the test runs) and the Python API alike.

Each optional part is built as its typed model by the module that owns it (the checkpoint counts by
``stats.checks``, pools and rendezvous by the compiled scenario, saturation, arrivals and accounting by
``engine/``, resources and remote monitoring by ``monitor/``, workers by the master); a part that fails its model
(an lrun bug) is logged and left out, the run's own figures stay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

import runner
from runner.config import load_given_by_user
from runner.engine.accounting import interrupted, user_counts
from runner.engine.arrivals import from_intended_start
from runner.live.state import Live
from runner.redact import redact, secret_values
from runner.report.model import ABORTS, Load, Results, StopCode, Transactions, Verdict, stop_code
from runner.report.results import FORMAT, FORMAT_VERSION, iso_time
from runner.report.shortfalls import load_warnings
from runner.slo import window_verdicts
from runner.stats import TransactionStats
from runner.thresholds import evaluate, parse_rule

log = logging.getLogger("lrun")


def assemble(live: Live, end: float, *, ended: bool) -> Results:
    """The results of ``live``'s test as of ``end``: at its end (``ended``: the statistics finished, the exit code
    final, the load's shortfalls judged and said), or while it runs (the same document, ``stop_reason``
    "running", no ``load_warnings``)."""
    context, test = live.context, live.runner
    settings, model = context.settings, context.loaded.model
    state = test.run_state
    reason = test.stop_reason or ("stopped" if ended else "running")
    stats_start = max(live.started, live.stats.start_time)
    measured_s = max(0.0, end - stats_start)
    snapshot = live.stats.snapshot(duration=measured_s)
    transactions = _transactions(live.transactions, end - max(live.started, live.transactions.start_time))
    stopped_early = stop_code(reason) not in (StopCode.RUN_TIME, StopCode.STAGES_DONE)
    saturation, remote, open_model, distributed = live.saturation, live.remote, test.open_model, test.distributed
    arrivals = open_model.arrival_results(stopped_early=stopped_early) if open_model is not None else None
    builders: dict[str, Callable[[], Any]] = {
        "warnings": lambda: list(live.warnings),
        "resources": live.monitor.results_part,
        "resource_thresholds": live.watch.results_part,
        "transactions": lambda: transactions,
        "checks": state.checks.results,
        "rendezvous": lambda: context.compiled.rendezvous_results(state),
        "pools": lambda: context.compiled.pool_results(state),
        "user_counts": lambda: user_counts(
            _users_asked(live), test.user_count_max, test.users_started, test.users_ended_early
        ),
        "interrupted": lambda: interrupted(test.interrupted),
    }
    if saturation is not None:
        builders["saturation"] = saturation.results
    if remote is not None:
        builders["remote"] = remote.results_part
    if open_model is not None and arrivals is not None:  # an ArrivalRunner's, or the master's from its workers
        builders["arrivals"] = lambda: arrivals
        builders["from_intended_start"] = lambda: from_intended_start(open_model.intended, end - live.started)
    if distributed is not None:
        builders["workers"] = distributed.worker_results
    if live.slo is not None:
        builders["windows"] = live.slo.results
    if live.goal is not None:
        builders["goal"] = live.goal.results
    if (apdex_t := settings.apdex_t) is not None:  # the HTML report's T: lrun report renders the file with it again
        builders["apdex_t_ms"] = lambda: round(apdex_t * 1000, 3)
    parts = _parts(builders)
    # thresholds and the exit code are judged on the figures the results then get
    figures = replace(snapshot, transactions=transactions, arrivals=parts.get("arrivals"))
    verdicts = [
        Verdict.model_validate(verdict)
        for verdict in window_verdicts(
            live.slo,
            model.thresholds,
            lambda t: {**evaluate(parse_rule(t.expect), t.request, figures), "abort": t.abort},
        )
    ]
    total = snapshot.total
    aborted = stop_code(reason) in ABORTS
    if model.thresholds:
        code = 1 if any(not v.passed for v in verdicts) or aborted else 0  # with an SLA, the SLA decides
    else:
        failed = (total.requests and total.failures) or snapshot.exceptions or aborted
        code = settings.exit_code_on_error if failed else 0
    if total.requests == 0 and code == 0:
        code = 1
        if ended:
            live.warn("no request was made")
            parts["warnings"] = list(live.warnings)
    results = Results.model_validate(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "lrun_version": runner.__version__,
            "scenario": context.loaded.name,
            "scenario_file": str(context.loaded.path),
            "host": redact(settings.host or model.host or ""),  # a URL's password stays out of the results
            "command": redact(context.command, secret_values(settings)),
            "start": iso_time(live.started),
            "end": iso_time(end),
            "duration_s": round(max(0.0, end - live.started), 3),
            "stats_start": iso_time(stats_start),
            "measured_s": round(measured_s, 3),
            "load": _load(live),
            "users_max": test.user_count_max,
            "total": total,
            "requests": snapshot.requests,
            "series": snapshot.series,
            "errors": snapshot.errors,
            "exceptions": snapshot.exceptions,
            "thresholds": verdicts,
            "passed": code == 0 and all(v.passed for v in verdicts),
            "exit_code": code,
            "stop_reason": reason,
            "stop_code": stop_code(reason).value,
            **parts,
        }
    )
    noted = load_warnings(results) if ended else []
    if noted:
        for warning in noted:  # said now (and on the web UI's page); the results carry them typed
            live.warn(f"load not as planned: {warning.message}")
        if settings.strict and code == 0:
            code = 1
        update = {"load_warnings": noted, "exit_code": code, "passed": results.passed and code == 0}
        results = results.model_copy(update=update)
    return results


def _parts(builders: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Each part its owner builds; one that does not match its model (an lrun bug) is logged and left out."""
    parts: dict[str, Any] = {}
    for key, build in builders.items():
        try:
            parts[key] = build()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in (key, *first["loc"]))
            log.error(
                "results do not match runner.report.model (an lrun bug, please report it): %s: %s; left out: %s",
                where,
                first["msg"],
                key,
            )
    return parts


def _transactions(transactions: TransactionStats, duration: float) -> Transactions:
    snapshot = transactions.snapshot(duration=max(1e-9, duration))
    return Transactions(total=snapshot.total, entries=snapshot.requests, series=snapshot.series, errors=snapshot.errors)


def _load(live: Live) -> Load:
    """The load asked for: the settings' users and spawn rate, the run time in effect, the scenario's stages."""
    settings, model = live.settings, live.context.loaded.model
    state = live.runner.run_state
    return Load(
        users=settings.users,
        spawn_rate=settings.spawn_rate,
        run_time_s=state.run_time if state.run_time is not None else settings.run_time,
        iterations=settings.iterations,
        stages=[s.model_dump() for s in model.load.stages] if model.load.stages else None,
    )


def _users_asked(live: Live) -> int | None:
    """The most users the closed model asks for (the stages' peak, or -u); None in the open model."""
    settings, model = live.settings, live.context.loaded.model
    if model.load.is_open and not load_given_by_user(settings):
        return None
    stages = [] if load_given_by_user(settings) else model.load.stages or []
    return max((stage.users for stage in stages), default=0) if stages else settings.users

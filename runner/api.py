"""lrun as a library: the run API the ``lrun`` command itself calls.

    from gevent import monkey; monkey.patch_all()   # first, before other imports (lrun runs on gevent)
    import runner

    scenario = runner.load("scenarios/quickstart.yaml")          # ScenarioError lists every problem
    settings = runner.settings(scenario, users=5, run_time="10s")  # names and values of the command's options
    events = runner.Events()
    events.request.add_listener(lambda user, result: ...)       # result: method, name, elapsed_ms, failure …
    outcome = runner.run(scenario, settings, events=events)      # settings.processes=N: N local workers
    outcome.exit_code, outcome.typed.total.requests           # or the JSON file's dict: outcome.results

Errors a user can cause are ``runner.LrunError`` (``ScenarioError``, ``RunError``).
"""

from __future__ import annotations

import functools
import logging
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from runner.config import RunSettings, resolve
from runner.errors import RunError
from runner.events import Events
from runner.redact import MASK, SECRET_SETTINGS
from runner.report.model import Results
from runner.scenario import LoadedScenario, load_scenario

log = logging.getLogger("lrun")


@dataclass
class Outcome:
    """How a run ended: its exit code (0 passed, 1 failed: thresholds, errors, no request) and its results as
    typed models (``runner.report.model.Results``; None when the run failed before it had any)."""

    exit_code: int
    typed: Results | None

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    @functools.cached_property
    def results(self) -> dict[str, Any]:
        """The results as the JSON results file holds them (``{}`` when there are none)."""
        return self.typed.to_dict() if self.typed is not None else {}


def load(path: str | Path, data_dir: str | Path | None = None) -> LoadedScenario:
    """Load, validate and check a scenario (its pools and Python module too); ``ScenarioError`` otherwise."""
    return load_scenario(path, data_dir)


def settings(scenario: LoadedScenario | None = None, **options: Any) -> RunSettings:
    """Run settings from the command's options by name (``users=10, run_time="30s", processes=2, json="r.json"``),
    over the scenario's ``load`` section; ``LrunError`` for a bad value. Environment and config file do not count."""
    scenario_load = scenario.model.load.model_dump() if scenario is not None else None
    return resolve(options, environ={}, config=None, scenario_load=scenario_load)


def require_gevent() -> None:
    """The run's users are greenlets: sockets, ``time.sleep`` and the rest must be gevent's."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        raise RunError(
            "lrun runs on gevent: call `from gevent import monkey; monkey.patch_all()` first thing in your program, "
            "before other imports"
        )


def run(
    scenario: LoadedScenario,
    settings: RunSettings,
    *,
    events: Events | None = None,
    out: TextIO | None = None,
    command: str = "python",
) -> Outcome:
    """Run the load test in this process (or with ``settings.processes`` local workers, or as ``--master``).

    Outputs (``settings.json``, ``csv``, ``html``, ``junit``; the console summary on ``out``, default stdout) are
    written whatever ends the run. Request events fire for requests made in this process: a distributed run's
    are made in its workers."""
    require_gevent()
    events = events or Events()
    ended: list[Results] = []
    events.stop.add_listener(ended.append)
    try:
        code = _run(scenario, settings, events, out or sys.stdout, command)
    finally:
        events.stop.listeners.remove(ended.append)
    return Outcome(code, ended[-1] if ended else None)


def _run(loaded: LoadedScenario, settings: RunSettings, events: Events, out: TextIO, command: str) -> int:
    from runner.compile.compiler import CompileOptions, compile_scenario, needs_demo
    from runner.drive import run_local

    model = loaded.model
    outside: dict[str, list[str]] = {}
    for name, source in settings.sources.items():
        if source not in ("default", "scenario load", "command line"):
            value = MASK if name in SECRET_SETTINGS else getattr(settings, name)  # a secret stays out of logs
            outside.setdefault(source, []).append(f"{name}={value}")
    for source, values in outside.items():
        log.info("settings from %s: %s", source, ", ".join(values))
    if events.request and (settings.master or settings.processes):
        log.warning("request listeners hear this process only: a distributed run's requests are made in its workers")
    with ExitStack() as stack:
        demo_url = None
        if needs_demo(model, settings.host):
            from runner.demo import start_demo

            demo = stack.enter_context(start_demo())
            demo_url = demo.url
            log.info("demo target started at %s", demo_url)
        compiled = compile_scenario(
            loaded,
            CompileOptions(
                host=settings.host,
                demo_url=demo_url,
                tags=tuple(settings.tags),
                exclude_tags=tuple(settings.exclude_tags),
            ),
        )
        if not compiled.user_classes:
            raise RunError("no user type left to run: --tags / --exclude-tags excluded them all")
        missing_host = [c.type_name for c in compiled.user_classes if not c.host]
        if missing_host:
            raise RunError(f"no host for {', '.join(missing_host)}: add host: to the scenario or pass -H URL")
        if settings.master or settings.processes:
            from runner.distributed.master import run_master

            return run_master(loaded, compiled, settings, demo_url=demo_url, command=command, out=out, events=events)
        return run_local(loaded, compiled, settings, command=command, out=out, events=events)

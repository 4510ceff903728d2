"""The ``lrun`` command. Imports of heavy modules stay inside commands so ``--help`` is fast.

Exit codes: 0 all good; 1 a run or debug found failures; 2 usage or validation error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NoReturn

import click

from runner import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _patch_gevent() -> None:
    """Patch the standard library for gevent: once, first thing in the commands that run users (before the
    scenario's Python module is imported, so that what it imports is patched too)."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(EXIT_USAGE)


def _load(path: str, data_dir: str | None = None, *, warn: bool = True) -> Any:
    from runner.errors import ScenarioError
    from runner.scenario import load_scenario

    try:
        loaded = load_scenario(path, data_dir)
    except ScenarioError as exc:
        _fail(_fragment_message(path) or str(exc))
    if warn:
        _warnings(loaded)
    return loaded


def _warnings(loaded: Any, settings: Any = None) -> None:
    """The scenario's warnings; with the run's settings, a rendezvous's 'the load has N' only where -u/-t did not
    replace the scenario's load (the run then judges it with the effective user count)."""
    from runner.config import load_given_by_user
    from runner.scenario.analysis import LOAD_HAS

    replaced = settings is not None and load_given_by_user(settings)
    for warning in loaded.warnings:
        if not (replaced and warning.message.startswith("rendezvous '") and LOAD_HAS in warning.message):
            click.echo(warning.format(), err=True)


def _fragment_message(path: str | Path) -> str:
    """For a fragment (a file other scenarios include) given as a scenario: what it is, and who includes it."""
    from runner.scenario import included_by

    users = included_by(path)
    if not users:
        return ""
    names = ", ".join(str(p) for p in users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
    return f"{path}: a fragment, included by {names}; it is checked and run as part of them"


class DefaultRun(click.Group):
    """``lrun SCENARIO [OPTIONS]`` means ``lrun run SCENARIO [OPTIONS]``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = args[0] if args else ""
        looks_like_file = Path(first).suffix in (".yaml", ".yml", ".json") or Path(first).exists()
        a_file = first and first not in self.commands and not first.startswith("-") and looks_like_file
        an_option = first.startswith("-") and first not in ("-h", "--help", "-V", "--version")  # lrun -f x.yaml …
        if a_file or an_option:
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultRun, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="lrun")
def cli() -> None:
    """lrun: declarative load testing.

    \b
    Describe virtual users in a YAML scenario, then:
      lrun scenarios/quickstart.yaml    run the load test (same as lrun run ...)
      lrun scenarios/quickstart.yaml --web
                                        the same, steered from a web page (127.0.0.1:8089)
      lrun debug scenarios/quickstart.yaml
                                        one user, one iteration, every step shown
      lrun validate scenarios/          check scenarios (for CI)
      lrun capacity SCENARIO --until "p95 < 200ms"
                                        the highest arrival rate that meets the conditions
      lrun report results.json -o report.html
                                        the HTML report of saved results
      lrun compare base.json new.json   the regression gate: slower beyond noise? (exit 1)
      lrun import recording.har -o scenario.yaml
                                        a browser recording to a correlated scenario
      lrun init                         a starter scenario, its data, the schema and a CI job
      lrun demo                         serve the built-in demo shop
      lrun schema [--results]           JSON Schema of the scenario language (or of the results file)

    Exit codes: 0 all good, 1 failures or failed thresholds, 2 usage or validation error.
    """


def _setup_logging(level: str, logfile: str | None, secrets: Sequence[str] = ()) -> None:
    import logging

    from runner.redact import RedactingFilter

    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        _fail(f"-L/--loglevel: unknown level {level!r} (use DEBUG, INFO, WARNING, ERROR)")
    try:
        handler: logging.Handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    except OSError as exc:
        _fail(f"lrun: --logfile {logfile}: {exc.strerror or exc}")
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter(secrets))  # the run's secrets never reach the log
    root = logging.getLogger("lrun")
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    root.propagate = False


@cli.command()
@click.argument("scenario", type=click.Path(), required=False)
@click.option("-f", "scenario_option", metavar="SCENARIO", help="The scenario (Locust's -f; same as the argument).")
@click.option(
    "-l", "--list", "list_users", is_flag=True, help="List user types and their tasks with weights, then exit."
)
@click.option("--show-task-ratio", is_flag=True, help="Print the share of users and tasks each type gets, then exit.")
@click.option("--show-task-ratio-json", is_flag=True, help="The same, as JSON (Locust's layout), then exit.")
@click.option("--headless", is_flag=True, help="Accepted for Locust habits: running headless is the default.")
@click.option("-u", "--users", help="Peak number of concurrent users.  [default: scenario's, or 1]")
@click.option("-r", "--spawn-rate", help="Users started per second.  [default: scenario's, or 1]")
@click.option("-t", "--run-time", help="Stop after this long: 300s, 20m, 1h30m.  [default: until Ctrl-C]")
@click.option("-H", "--host", help="Host to load (a URL, or 'demo'); overrides the scenario's.")
@click.option("-i", "--iterations", help="Stop each user after this many iterations.")
@click.option("--stop-timeout", help="On stop, let users finish their iteration for this long.")
@click.option("-T", "--tags", help="Only run user types and tasks with one of these tags (comma-separated).")
@click.option("-E", "--exclude-tags", help="Leave out user types and tasks with one of these tags.")
@click.option("--csv", "csv_prefix", metavar="PREFIX", help="Write PREFIX_stats.csv and friends (Locust's layout).")
@click.option("--csv-full-history", is_flag=True, default=None, help="Per-request rows in PREFIX_stats_history.csv.")
@click.option("--json", "json_file", metavar="FILE", help="Write the results as JSON (the input of reports and CI).")
@click.option("--html", metavar="FILE", help="Write the HTML report (self-contained, for people).")
@click.option("--apdex-t", help="Apdex's T: a response at most T is satisfied (500ms, 1.5s).  [default: 500ms]")
@click.option("--junit", metavar="FILE", help="Write JUnit XML: a test per threshold and checkpoint.")
@click.option(
    "--monitor", multiple=True, metavar="PID_OR_NAME", help="Also watch this local process's CPU and memory (repeat)."
)
@click.option("--print-stats", is_flag=True, default=None, help="Print the statistics table during the run (default).")
@click.option("--only-summary", is_flag=True, default=None, help="Print only the summary at the end.")
@click.option("-L", "--loglevel", help="DEBUG, INFO, WARNING or ERROR.  [default: INFO]")
@click.option("--logfile", help="Write the log to this file instead of stderr.")
@click.option("--exit-code-on-error", help="Exit code when requests failed (without thresholds). [1]")
@click.option("--reset-stats", is_flag=True, default=None, help="Reset statistics once all users are spawned.")
@click.option("--data-dir", help="Look up data pools' CSV files here first (then next to the scenario).")
@click.option("--no-rendezvous", is_flag=True, default=None, help="Switch rendezvous off: users pass at once.")
@click.option(
    "--strict", is_flag=True, default=None, help="Exit 1 when the load did not run as planned (dropped arrivals …)."
)
@click.option("--config", "config_file", help="Settings file (default: ./lrun.conf, or [tool.lrun] in pyproject.toml).")
@click.option("--processes", help="Run a master and N worker processes here (auto: one per core).")
@click.option("--master", is_flag=True, default=None, help="Be the master of workers on other machines.")
@click.option("--worker", is_flag=True, default=None, help="Be a worker of a master (SCENARIO optional: it sends it).")
@click.option("--master-host", help="Worker: the master's address.  [default: 127.0.0.1]")
@click.option("--master-port", help="Worker: the master's port.  [default: 5557]")
@click.option("--master-bind-host", help="Master: the address to listen on.  [default: * (all)]")
@click.option("--master-bind-port", help="Master: the port to listen on.  [default: 5557]")
@click.option("--expect-workers", help="Master: start when this many workers are ready.  [default: 1]")
@click.option("--expect-workers-max-wait", help="Master: give up when they are not there after this long.")
@click.option("--master-token", help="Shared secret: CURVE keys that encrypt and authenticate (or LRUN_MASTER_TOKEN).")
@click.option("--master-key-file", help="The master's CURVE key file (master: its .key_secret; worker: its .key).")
@click.option("--worker-key-file", help="Worker: its own CURVE secret key file (with --master-key-file).")
@click.option("--worker-keys", metavar="DIR", help="Master: the folder of the workers' public key files it accepts.")
@click.option("--master-insecure", is_flag=True, default=None, help="Master: listen beyond loopback without a token.")
@click.option("--allow-env", metavar="NAMES", help="Worker: variables env() may read here (NAME,PREFIX*).")
@click.option("--heartbeat-interval", help="Seconds between worker heartbeats.  [default: 1s]")
@click.option("--heartbeat-liveness", help="Heartbeats missed before a worker is missing.  [default: 3]")
@click.option("--report-interval", help="Seconds between workers' statistics reports.  [default: 3s]")
@click.option("--master-timeout", help="Worker: stop the users and exit when the master is silent this long. [10s]")
@click.option("--metrics-port", help="Serve Prometheus metrics at http://127.0.0.1:PORT/metrics.")
@click.option("--metrics-host", help="Address for --metrics-port; beyond loopback needs --web-auth. [127.0.0.1]")
@click.option("--web-auth", metavar="USER:PASSWORD", help="Basic auth for what lrun serves (or LRUN_WEB_AUTH).")
@click.option("--otel", is_flag=True, default=None, help="Export metrics over OTLP (the OTEL_* variables).")
@click.option("--webhook", metavar="URL", help="Post to this incoming webhook when a rule trips and when the run ends.")
@click.option("--jsonl", metavar="FILE", help="Write a JSON line of figures every second, live (tail -f it).")
@click.option("--web", is_flag=True, default=None, help="Serve the web UI (start, watch, steer the test in a browser).")
@click.option("--web-host", help="Web UI: the address to listen on.  [default: 127.0.0.1]")
@click.option("--web-port", help="Web UI: the port to listen on (0: any free port).  [default: 8089]")
@click.option(
    "--web-allowed-host", multiple=True, metavar="NAME", help="Web UI: another name it is reached as (repeat)."
)
@click.option("--tls-cert", help="Web UI: serve HTTPS with this certificate (PEM).")
@click.option("--tls-key", help="Web UI: the private key of --tls-cert (PEM).")
@click.option("--autostart", is_flag=True, default=None, help="Web UI: start the test at once.")
@click.option("--autoquit", metavar="SECONDS", help="Web UI: quit this long after the test ended.")
@click.option("--exit-with-parent", is_flag=True, hidden=True, help="Worker: exit when stdin closes (--processes).")
@click.option("--baseline", metavar="FILE", help="Then judge the run against these results (the regression gate).")
@click.option("--fail-on", multiple=True, metavar="RULE", help='With --baseline: a gate rule ("p95 +10%"; repeat).')
def run(
    scenario: str | None,
    scenario_option: str | None,
    list_users: bool,
    show_task_ratio: bool,
    show_task_ratio_json: bool,
    headless: bool,
    config_file: str | None,
    csv_prefix: str | None,
    json_file: str | None,
    exit_with_parent: bool,
    **options: Any,
) -> None:
    """Run a load test and print its statistics; write --json / --csv / --html / --junit outputs.

    Settings come from, highest first: these options, LRUN_* environment variables (LRUN_USERS,
    LRUN_RUN_TIME …), the config file, the scenario's load section. Ctrl-C stops gracefully and still writes
    every output; a second Ctrl-C stops at once. In a terminal, w/W add 1/10 users and s/S remove 1/10.

    \b
    Distributed: lrun SCENARIO --processes 4       master and 4 workers on this machine
                 lrun SCENARIO --master            master; then, on other machines:
                 lrun --worker --master-host HOST  a worker (add --processes auto for one per core)
    """
    _patch_gevent()  # before anything imports the scenario's Python module
    from runner.config import find_config, resolve
    from runner.errors import LrunError
    from runner.output_paths import check_outputs
    from runner.redact import redact_command, secret_values

    if scenario and scenario_option and scenario != scenario_option:
        _fail(f"lrun: two scenarios: {scenario} and -f {scenario_option}; give one")
    scenario = scenario or scenario_option
    if list_users or show_task_ratio or show_task_ratio_json:
        if not scenario:
            _fail("lrun: -l / --show-task-ratio: which scenario? lrun -l SCENARIO")
        from runner.task_ratio import listing, task_ratio, task_ratio_text

        model = _load(scenario).model
        if list_users:
            click.echo(listing(model))
        if show_task_ratio:
            click.echo(task_ratio_text(model))
        if show_task_ratio_json:
            import json

            click.echo(json.dumps(task_ratio(model), indent=2))
        sys.exit(EXIT_OK)
    options.update(csv=csv_prefix, json=json_file)
    try:
        config = find_config(config_file, Path.cwd())
        data_dir = resolve(options, config=config).data_dir  # needed to load the scenario's pools
    except LrunError as exc:
        _fail(f"lrun: {exc}")
    loaded = _load(scenario, data_dir, warn=False) if scenario else None
    try:
        settings = resolve(options, config=config, scenario_load=loaded.model.load.model_dump() if loaded else None)
    except LrunError as exc:
        _fail(f"lrun: {exc}")
    if loaded is not None:
        _warnings(loaded, settings)
    settings = _roles(settings, exit_with_parent)
    _web_flags(settings, headless)
    try:
        check_outputs(settings)  # before any load: a typo in a path must not cost the whole test
    except LrunError as exc:
        _fail(f"lrun: {exc}")
    if settings.worker:
        _setup_logging(settings.loglevel, settings.logfile, secret_values(settings))
        if settings.metrics_port is not None:
            message = "lrun: --metrics-port is ignored by a worker: the master serves the metrics of the run"
            click.echo(message, err=True)
        _run_worker(scenario, settings, exit_with_parent)
    if loaded is None:
        _fail("lrun run: missing SCENARIO (only a --worker may go without one)")
    _check_load(loaded.model, settings)
    if settings.host is not None:
        from runner.scenario.model import check_host

        try:
            check_host(settings.host)
        except ValueError as exc:
            _fail(f"-H: {exc}")
    _setup_logging(settings.loglevel, settings.logfile, secret_values(settings))
    command = redact_command(["lrun", *sys.argv[1:]], secret_values(settings))  # shown in results and reports
    if settings.web:
        from runner.web.server import serve_web

        try:
            sys.exit(serve_web(loaded, settings, command=command))
        except LrunError as exc:
            _fail(f"lrun: {exc}")
    from runner.api import run as run_test

    if settings.fail_on and not settings.baseline and settings.sources.get("fail_on") == "command line":
        _fail("lrun: --fail-on goes with --baseline FILE (or lrun compare BASE NEW --fail-on …)")
    gate = _baseline_gate(settings.baseline, settings.fail_on, loaded.name, settings) if settings.baseline else None
    outcome = run_test(loaded, settings, command=command)
    sys.exit(gate(outcome) if gate else outcome.exit_code)


def _baseline_gate(path: str, fail_on: list[str], scenario: str, settings: Any) -> Any:
    """--baseline: the baseline and rules checked before any load (exit 2), the gate to judge the run by."""
    from runner.compare.command import baseline_gate
    from runner.errors import LrunError

    if settings.web or settings.worker:
        _fail("lrun: --baseline goes with a headless run (not --web or --worker): compare later with lrun compare")
    try:
        return baseline_gate(path, fail_on, scenario, settings.json)
    except LrunError as exc:
        _fail(f"lrun: --baseline {exc}")


def _web_flags(settings: Any, headless: bool) -> None:
    """--web and what only makes sense with it."""
    if settings.web and headless:
        _fail("lrun: --web and --headless: choose one (headless is the default)")
    if settings.web and settings.worker:
        _fail("lrun: --web on a worker: the master serves the web UI")
    if not settings.web:
        given = [n for n in ("autostart", "autoquit", "tls_cert") if settings.sources.get(n) == "command line"]
        if given:
            _fail(f"lrun: --{given[0].replace('_', '-')} goes with --web")


def _check_load(model: Any, settings: Any) -> None:
    """What would run nothing, or names what the scenario does not have, stops here: before any target starts."""
    load = model.load
    stages_in_force = load.stages and all(
        settings.sources.get(name) in ("default", "scenario load") for name in ("users", "run_time")
    )
    if settings.users == 0 and not load.is_open and not stages_in_force:
        source = settings.sources.get("users", "default")
        where = "-u 0" if source == "command line" else f"users = 0 (from {source})"
        _fail(f"lrun: {where}: no user would run; give at least 1 user (-u 1), or load stages")
    from runner.config import too_many_users, users_limit

    peak = max([stage.users for stage in load.stages or ()] + [load.max_users if load.is_open else 0])
    if (stages_in_force or load.is_open) and peak > users_limit(settings):
        _fail(f"lrun: the scenario's load: {too_many_users(peak, settings)}")
    known = set()
    for user in model.users.values():
        known.update(user.tags)
        known.update(tag for task in user.tasks or () for tag in task.tags)
    from runner.scenario.loader import did_you_mean

    for option, tags in (("-T/--tags", settings.tags), ("-E/--exclude-tags", settings.exclude_tags)):
        for tag in tags:
            if tag not in known:
                hint = did_you_mean(tag, known) or (
                    f"its tags: {', '.join(sorted(known))}" if known else "it has no tags"
                )
                _fail(f"lrun: {option}: no user type or task of the scenario has the tag '{tag}' ({hint})")


def _roles(settings: Any, local_child: bool) -> Any:
    """--master / --worker / --processes together: the command line wins over the environment and files."""
    from dataclasses import replace

    if settings.master and settings.worker:
        from_cli = [name for name in ("master", "worker") if settings.sources.get(name) == "command line"]
        if len(from_cli) != 1:
            _fail("lrun: --master and --worker: a process is one or the other")
        settings = replace(settings, **{"worker" if from_cli == ["master"] else "master": False})
    if local_child:  # a worker started by --processes never starts workers of its own
        settings = replace(settings, processes=None)
    for name in ("users", "spawn_rate", "run_time") if settings.worker else ():
        if settings.sources.get(name) == "command line":
            click.echo(f"lrun: --{name.replace('_', '-')} is the master's to decide; this worker ignores it", err=True)
    return settings


def _run_worker(scenario: str | None, settings: Any, exit_with_parent: bool) -> None:
    from runner.distributed.worker import WorkerOptions, run_worker

    if settings.processes:
        from runner.distributed.local import supervise

        sys.exit(supervise(settings.processes, Path(scenario).resolve() if scenario else None, settings))
    options = WorkerOptions(
        master_host=settings.master_host,
        master_port=settings.master_port,
        token=settings.master_token,
        keys=_worker_keys(settings),
        allow_env=tuple(settings.allow_env),
        master_timeout=settings.master_timeout,
        connect_timeout=max(60.0, settings.master_timeout),
        data_dir=settings.data_dir,
    )
    sys.exit(run_worker(Path(scenario) if scenario else None, options, exit_with_parent=exit_with_parent))


def _worker_keys(settings: Any) -> Any:
    from runner.distributed.security import keys_for
    from runner.errors import LrunError

    try:
        return keys_for(settings.master_token, settings.master_key_file, settings.worker_key_file, master=False)
    except LrunError as exc:
        _fail(f"lrun: {exc}")


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option("-q", "--quiet", is_flag=True, help="Print problems only, no 'ok' lines.")
@click.option("--data-dir", envvar="LRUN_DATA_DIR", help="Look up data pools' CSV files here first.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "junit"]),
    default="text",
    show_default=True,
    help="text: one line per problem (stderr); json or junit: one document on stdout, for CI.",
)
def validate(paths: tuple[str, ...], strict: bool, quiet: bool, output_format: str, data_dir: str | None) -> None:
    """Check scenario files (or every scenario under directories) without running them.

    Prints one line per problem as path:line:col: message. Exit 0 when every file is valid, 2 otherwise.
    Files that other files only include (fragments) are checked as part of the files that include them.
    """
    from runner.errors import Problem, ScenarioError
    from runner.scenario import find_scenarios, included_by, load_scenario

    missing = [p for p in paths if not Path(p).exists()]
    files = find_scenarios(p for p in paths if p not in missing)
    if not files and not missing:
        _fail(f"no scenario files (*.yaml, *.yml, *.json) under {', '.join(paths)}")
    checked = []  # (path, problems, valid)
    queue: list[str | Path] = [*missing, *files]
    named_files = {str(Path(p)) for p in paths if Path(p).is_file()}
    for path in queue:
        try:
            problems = load_scenario(path, data_dir).warnings  # a missing file raises, with a did-you-mean
        except ScenarioError as exc:
            named = path not in missing and str(path) in named_files  # not found under a directory
            fragment = _fragment_message(path) if named else ""
            if fragment:  # named on the command line: check the files that include it instead
                message = fragment.split(": ", 1)[1]
                checked.append((str(path), [Problem(str(path), 1, 1, message, severity="info")], True))
                seen = {Path(p).resolve() for p in queue}
                queue.extend(p for p in included_by(path) if p.resolve() not in seen)
                continue
            checked.append((str(path), exc.problems, False))
            continue
        checked.append((str(path), problems, not (strict and problems)))
    bad = sum(1 for _, _, valid in checked if not valid)
    if output_format == "text":
        for path, problems, valid in checked:
            for problem in problems:
                click.echo(problem.format(), err=True)
            if valid and not quiet:
                click.echo(f"{path}: ok")
        if bad:
            _fail(f"{bad} of {len(checked)} file(s) have problems")
        return
    documents = [
        {
            "path": path,
            "valid": valid,
            "problems": [
                {
                    "path": p.path,
                    "line": p.line,
                    "col": p.col,
                    "severity": p.severity,
                    "message": p.message,
                    "hint": p.hint,
                    "text": p.format(),
                }
                for p in problems
            ],
        }
        for path, problems, valid in checked
    ]
    if output_format == "json":
        import json

        click.echo(json.dumps({"valid": not bad, "strict": strict, "files": documents}, indent=2, ensure_ascii=False))
    else:
        from runner.report.junit import validation_junit

        click.echo(validation_junit(documents, strict=strict), nl=False)
    sys.exit(EXIT_USAGE if bad else EXIT_OK)


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path())
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="The HTML file to write.  [default: report.html, or comparison.html for several results]",
)
@click.option("--junit", type=click.Path(dir_okay=False), help="Also write JUnit XML (one results file only).")
@click.option(
    "--apdex-t",
    help="Apdex's T: a response at most T is satisfied.  [default: the T the run used (lrun run --apdex-t), or 500ms]",
)
def report(results: tuple[str, ...], output: str | None, junit: str | None, apdex_t: str | None) -> None:
    """Render the HTML report from saved JSON results (lrun run --json FILE).

    \b
    One file: the report of that run.
    Several files: a side-by-side comparison; the first is the baseline, the others show deltas against it
    (p95, requests/s, failures, per request).
    """
    from runner.errors import LrunError
    from runner.output_paths import check_writable
    from runner.report.html import write_html
    from runner.report.results import read_json

    if junit and len(results) > 1:
        _fail("lrun: --junit takes one results file, not a comparison")
    output = output or ("report.html" if len(results) == 1 else "comparison.html")
    from runner.report.apdex import parse_apdex_t

    apdex_t_ms = None  # each results file's own T
    try:
        if apdex_t is not None:
            apdex_t_ms = parse_apdex_t(apdex_t)
    except ValueError as exc:
        _fail(f"lrun: --apdex-t {apdex_t}: {exc}")
    try:
        check_writable(output, "-o")
        if junit:
            check_writable(junit, "--junit")
        loaded = [read_json(path) for path in results]
        labels = _run_labels(results)
        write_html(loaded[0] if len(loaded) == 1 else loaded, output, labels=labels, apdex_t_ms=apdex_t_ms)
        if junit:
            from runner.report.junit import write_junit

            write_junit(loaded[0], junit)
    except LrunError as exc:
        _fail(f"lrun: {exc}")
    what = "report" if len(loaded) == 1 else f"comparison of {len(loaded)} runs"
    click.echo(f"{what} written to {output}" + (f"; JUnit XML to {junit}" if junit else ""))


def _run_labels(paths: tuple[str, ...]) -> list[str]:
    """Short names for the runs of a comparison: the file names, or the paths when names repeat."""
    names = [Path(p).stem for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(Path(p).with_suffix("")) for p in paths]


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False), default=".")
@click.option("--force", is_flag=True, help="Overwrite files that are already there.")
def init(directory: str, force: bool) -> None:
    """Write a starter scenario, its data file, the schema for editors and a CI workflow into DIRECTORY.

    The scenario runs as it is against the built-in demo shop; point its host at your system.
    """
    from runner import starter

    target = Path(directory)
    clash = starter.existing(target)
    if clash and not force:
        _fail(f"lrun init: {', '.join(str(p) for p in clash)} already exist; --force overwrites them")
    try:
        written = starter.write(target)
    except OSError as exc:
        _fail(f"lrun init: cannot write into {target}: {exc.strerror or exc}")
    for path in written:
        click.echo(f"wrote {path}")
    scenario = target / "scenario.yaml"
    click.echo(f"next: lrun validate {scenario} && lrun debug {scenario} && lrun {scenario}")


@cli.command()
@click.argument("base", type=click.Path())
@click.argument("new", type=click.Path())
@click.option("--fail-on", multiple=True, metavar="RULE", help='A rule: "p95 +10%", "errors +0.5pp", "rps -10%", '
              '"GET /item: p99 +20%", "p99 off" (repeat; replaces that metric\'s default).')  # fmt: skip
@click.option("--json", "json_file", metavar="FILE", help="Write the comparison as JSON (for programs).")
@click.option("--junit", metavar="FILE", help="Write JUnit XML: a test case per gated metric.")
@click.option("--html", metavar="FILE", help="Write the comparison HTML report (self-contained).")
@click.option("--apdex-t", help="The HTML report's Apdex T: a response at most T is satisfied.  [default: the T "
              "the baseline used (lrun run --apdex-t), or 500ms]")  # fmt: skip
def compare(base: str, new: str, fail_on: tuple[str, ...], json_file: str | None, junit: str | None,
            html: str | None, apdex_t: str | None) -> None:  # fmt: skip
    """The regression gate: did NEW (results JSON) get worse than BASE beyond run-to-run noise?

    Per request and in total: p50, p90, p95, p99, error rate and requests/s, each judged by a statistical test
    on the two runs' histograms and counts and by its rule's minimum change (defaults: p50 +10%, p90 +15%,
    p95 +20%, p99 +30%, errors +0.5pp, rps -10%). Exit 1 on a regression, 0 otherwise, 2 on bad input.
    """
    from runner.compare.command import Outputs, gate, rules
    from runner.config import find_config, resolve
    from runner.errors import LrunError
    from runner.report.apdex import parse_apdex_t
    from runner.report.results import read_json

    try:
        apdex_t_ms = None if apdex_t is None else parse_apdex_t(apdex_t)
    except ValueError as exc:
        _fail(f"lrun compare: --apdex-t {apdex_t}: {exc}")
    try:
        config = find_config(None, Path.cwd())
        given = rules(resolve({"fail_on": fail_on}, config=config).fail_on)  # lrun.conf's fail_on, or these
        outputs = Outputs(json_file, junit, html, apdex_t_ms)
        outputs.check()
        comparison = gate(read_json(base), read_json(new), base, new, given, outputs, sys.stdout)
    except LrunError as exc:
        _fail(f"lrun compare: {exc}")
    sys.exit(comparison.exit_code)


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to a file.")
@click.option("--results", is_flag=True, help="The schema of the results file (--json) instead.")
@click.option("--comparison", is_flag=True, help="The schema of lrun compare's --json file instead.")
def schema(output: str | None, results: bool, comparison: bool) -> None:
    """Print the JSON Schema of the scenario language (for editors and CI), or of the results file."""
    from runner.report.model import results_schema_text
    from runner.scenario.schema import schema_text

    text = results_schema_text() if results else schema_text()
    if comparison:
        from runner.compare.model import comparison_schema_text

        text = comparison_schema_text()
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("scenario", type=click.Path())
@click.option("-u", "--user", "user_names", multiple=True, help="Only this user type (repeatable).")
@click.option("-H", "--host", help="Host to use instead of the scenario's (a URL, or 'demo').")
@click.option("--think", is_flag=True, help="Wait think times (skipped by default).")
@click.option("--show-body", is_flag=True, help="Print every response body (failed ones are always shown).")
@click.option("--data-dir", envvar="LRUN_DATA_DIR", help="Look up data pools' CSV files here first.")
def debug(
    scenario: str, user_names: tuple[str, ...], host: str | None, think: bool, show_body: bool, data_dir: str | None
) -> None:
    """Run one user of each type through one iteration and show every step.

    Exit 1 when a request or checkpoint failed.
    """
    _patch_gevent()
    from runner.compile.compiler import CompileOptions, compile_scenario, needs_demo
    from runner.debug import TraceRuntime, debug_users

    loaded = _load(scenario, data_dir)
    unknown = [n for n in user_names if n not in loaded.model.users]
    if unknown:
        from runner.suggest import did_you_mean

        hint = did_you_mean(unknown[0], loaded.model.users) or f"user types: {', '.join(loaded.model.users)}"
        _fail(f"{scenario}: no user type '{unknown[0]}' ({hint})")
    if host is not None:
        from runner.scenario.model import check_host

        try:
            check_host(host)
        except ValueError as exc:
            _fail(f"-H: {exc}")
    with ExitStack() as stack:
        demo_url = None
        if needs_demo(loaded.model, host):
            from runner.demo import start_demo

            demo = stack.enter_context(start_demo())
            demo_url = demo.url
            click.echo(f"demo target started at {demo_url}")
        compiled = compile_scenario(loaded, CompileOptions(host=host, demo_url=demo_url))
        classes = [c for c in compiled.user_classes if not user_names or c.type_name in user_names]
        if not all(c.host for c in classes):
            _fail(f"{scenario}: no host for some users: add host: to the scenario or pass -H URL")
        from runner.scenario.scripting import HookEnvironment

        env = HookEnvironment(loaded.name, host or loaded.model.host or "", None, {})
        script = compiled.script
        for hook in ("on_init", "on_test_start"):
            if script is not None:
                script.call_hook(hook, env)
        passed = debug_users(classes, TraceRuntime(think=think, show_body=show_body), compiled.setup, env.variables)
    sys.exit(EXIT_OK if passed else EXIT_FAILED)


@cli.command("import")
@click.argument("recording", type=click.Path())
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the scenario here (default: stdout).")
@click.option("--name", help="The scenario's name (default: the recording's file name).")
@click.option("--keep-host", "hosts", multiple=True, help="Keep requests to this host too (glob; repeatable).")
@click.option("--keep-static", is_flag=True, help="Keep static assets (scripts, styles, images, fonts).")
@click.option("--exclude", multiple=True, help="Leave out requests whose URL matches this regex (repeatable).")
@click.option("--include", multiple=True, help="Keep requests whose URL matches this regex, whatever else says.")
@click.option("--think", default="recorded", show_default=True, help="Think times: recorded, none or max:2s.")
@click.option("--pool", is_flag=True, help="Typed form fields become a CSV data pool next to the scenario (-o).")
@click.option("--min-length", default=6, show_default=True, type=click.IntRange(1), help="Shortest value correlated.")
@click.option("--verify", is_flag=True, help="Replay one user and compare each status with the recording.")
@click.option("-H", "--host", help="With --verify: replay against this host instead of the recorded one.")
def import_(
    recording: str,
    output: str | None,
    name: str | None,
    hosts: tuple[str, ...],
    keep_static: bool,
    exclude: tuple[str, ...],
    include: tuple[str, ...],
    think: str,
    pool: bool,
    min_length: int,
    verify: bool,
    host: str | None,
) -> None:
    """Turn a browser recording (HAR) into a correlated scenario."""
    if verify:
        _patch_gevent()
    from runner.importers.cli import run_import

    sys.exit(
        run_import(recording, output, name, hosts, keep_static, exclude, include, think, pool, min_length, verify, host)
    )


@cli.command()
@click.argument("scenario", type=click.Path())
@click.option("--until", multiple=True, metavar="EXPR", help="A condition every good step meets: 'p95 < 200ms', "
              "'errors < 1%', 'GET /items: p99 < 1s' (repeat).  [default: the scenario's thresholds]")  # fmt: skip
@click.option("--start-rate", default="10", show_default=True, help="The first step's arrivals per second.")
@click.option("--factor", default="2", show_default=True, help="Each next step's rate: the last one's times this.")
@click.option("--increment", help="Raise the rate by this many arrivals/s per step instead of by --factor.")
@click.option("--max-rate", default="1000", show_default=True, help="Never ask for more arrivals per second.")
@click.option("--precision", default="5%", show_default=True, help="Narrow until good and bad are this close.")
@click.option("--step", default="10s", show_default=True, help="How long each step is judged.")
@click.option("--warmup", default="3s", show_default=True, help="Time at each step's rate before judging it.")
@click.option("--max-time", default="10m", show_default=True, help="Stop the search after this long.")
@click.option("--drain", default="10s", show_default=True, help="Time a step's last requests have to finish.")
@click.option("--max-users", help="Users running at once at most.  [default: the scenario's max_users, or 1000]")
@click.option("-H", "--host", help="Host to load (a URL, or 'demo'); overrides the scenario's.")
@click.option("--json", "json_file", metavar="FILE", help="Write the results (the steps under 'capacity') as JSON.")
@click.option("--html", metavar="FILE", help="Write the HTML report, with latency and errors against the rate.")
@click.option("--processes", help="Run the steps with a master and N worker processes here.")
@click.option("-T", "--tags", help="Only run user types and tasks with one of these tags (comma-separated).")
@click.option("-E", "--exclude-tags", help="Leave out user types and tasks with one of these tags.")
@click.option("--data-dir", help="Look up data pools' CSV files here first (then next to the scenario).")
@click.option("-L", "--loglevel", help="DEBUG, INFO, WARNING or ERROR.  [default: INFO]")
@click.option("--logfile", help="Write the log to this file instead of stderr.")
@click.option("--master", is_flag=True, default=None, help="Be the master of workers elsewhere (lrun --worker).")
@click.option("--master-bind-host", help="Master: the address to listen on.  [default: * (all)]")
@click.option("--master-bind-port", help="Master: the port to listen on.  [default: 5557]")
@click.option("--master-token", help="Shared secret of master and workers (or LRUN_MASTER_TOKEN).")
@click.option("--expect-workers", help="Master: search once this many workers are ready.  [default: 1]")
def capacity(
    scenario: str, until: tuple[str, ...], max_users: str | None, json_file: str | None, **options: Any
) -> None:
    """Find the highest arrival rate that meets every --until condition (the open model, in steps).

    \b
    The rate rises step by step (--start-rate, then x --factor or + --increment, up to --max-rate), each step
    held --step after --warmup; then it narrows between the last good and the first bad rate to --precision.
    A step with dropped arrivals is not good. Exit 0 with an answer, 1 when even the first step failed.
    """
    _patch_gevent()
    from runner.capacity.command import Options, capacity_command
    from runner.config import resolve
    from runner.errors import LrunError
    from runner.output_paths import check_outputs
    from runner.redact import secret_values

    search = {k: options.pop(k) for k in ("start_rate", "factor", "increment", "max_rate", "precision", "step")}
    search.update(warmup=options.pop("warmup"), max_time=options.pop("max_time"), drain=options.pop("drain"))
    try:
        settings = resolve({**options, "json": json_file}, config=None)
        check_outputs(settings)
    except LrunError as exc:
        _fail(f"lrun: {exc}")
    loaded = _load(scenario, settings.data_dir)
    _setup_logging(settings.loglevel, settings.logfile, secret_values(settings))
    sys.exit(capacity_command(loaded, settings, Options(until=until, **search), max_users))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8090, show_default=True, help="Port to listen on (0: any free port).")
def demo(host: str, port: int) -> None:
    """Serve the built-in demo shop (the target of the example scenarios) until Ctrl-C."""
    from runner.demo.server import serve

    serve(host, port, ready=lambda url: click.echo(f"lrun demo target listening on {url}  (Ctrl-C to stop)"))


def main() -> None:
    from runner.errors import LrunError

    try:
        cli.main(prog_name="lrun", standalone_mode=True)
    except LrunError as exc:
        click.echo(f"lrun: {exc}", err=True)
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()

"""Run settings and where they come from.

Precedence, highest first: the command line, ``LRUN_*`` environment variables, a config file (``--config FILE``,
else ``lrun.conf`` in the current directory, else ``[tool.lrun]`` in ``pyproject.toml``), the scenario's
``load`` section, the defaults. Names are Locust's (``users``, ``spawn-rate``, ``run-time`` …), so a
``locust.conf`` habit carries over: ``lrun.conf`` holds ``key = value`` lines.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import LrunError
from runner.scenario.numbers import (
    MAX_COUNT,
    MAX_ITERATIONS,
    MAX_USERS,
    MAX_USERS_PER_PROCESS,
    rate,
    whole,
)
from runner.scenario.types import parse_duration

MAX_PROCESSES = 1024  # --processes: worker processes on one machine


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not true or false")


def _tags(value: Any) -> list[str]:
    """A comma list, or a list of them (a repeated option: ``--monitor nginx,1234 --monitor 99``)."""
    values = value if isinstance(value, list | tuple) else [value]
    return [t.strip() for v in values for t in str(v).split(",") if t.strip()]


def _optional_duration(value: Any) -> float | None:
    return None if value in (None, "") else parse_duration(value)


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return seconds


def _positive_int(value: Any) -> int:
    try:
        return whole(value, low=1)
    except ValueError:
        raise ValueError(f"{value!r} is not a positive number (at most {MAX_COUNT:,})") from None


def _at_least(low: int, high: int = MAX_COUNT) -> Callable[[Any], int]:
    """A whole number from ``low`` to ``high``: the scenario's ``load`` rules and messages, for every source."""
    return lambda value: whole(value, low=low, high=high)


def _port(value: Any) -> int:
    if str(value).startswith("tcp://"):  # what Kubernetes sets for a Service named lrun-master
        raise ValueError(
            f"{value!r} is not a port number: a Kubernetes service link? "
            "set enableServiceLinks: false in the pod, or give the Service another name"
        )
    try:
        return whole(value, low=0, high=65535)
    except ValueError:
        raise ValueError(f"{value!r} is not a port number (0 to 65535)") from None


def _apdex_t(value: Any) -> float:
    """Apdex's T in seconds from ``500ms`` or ``0.5s`` (a unit is required, as in ``lrun report --apdex-t``)."""
    from runner.report.apdex import parse_apdex_t

    return parse_apdex_t(str(value)) / 1000


def _processes(value: Any) -> int:
    """A number of processes, or "auto" (or -1, as in Locust): one per core."""
    if str(value).strip().lower() in ("auto", "-1"):
        return os.cpu_count() or 1
    try:
        return whole(value, low=1, high=MAX_PROCESSES)
    except ValueError:
        raise ValueError(f"{value!r} is neither a positive number nor 'auto' (at most {MAX_PROCESSES})") from None


# name -> how a value given as text (or TOML) becomes the setting; its default is RunSettings'. Names use
# underscores; files and env vars may use dashes.
SETTINGS: dict[str, Callable[[Any], Any]] = {
    "users": _at_least(0, MAX_USERS),
    "spawn_rate": rate,
    "run_time": _optional_duration,
    "host": str,
    "stop_timeout": parse_duration,
    "iterations": _at_least(1, MAX_ITERATIONS),
    "tags": _tags,
    "exclude_tags": _tags,
    "csv": str,
    "csv_full_history": _bool,
    "json": str,
    "print_stats": _bool,
    "only_summary": _bool,
    "loglevel": str,
    "logfile": str,
    "exit_code_on_error": _at_least(0, 255),
    "reset_stats": _bool,
    "no_rendezvous": _bool,
    "strict": _bool,
    "data_dir": str,
    "html": str,
    "apdex_t": _apdex_t,
    "junit": str,
    "monitor": _tags,
    # live outputs (runner.outputs)
    "metrics_port": _port,
    "metrics_host": str,
    "web_auth": str,
    "otel": _bool,
    "webhook": str,
    "jsonl": str,
    # distributed runs (runner.distributed)
    "processes": _processes,
    "master": _bool,
    "worker": _bool,
    "master_host": str,
    "master_port": _port,
    "master_bind_host": str,
    "master_bind_port": _port,
    "expect_workers": _positive_int,
    "expect_workers_max_wait": _optional_duration,
    "master_token": str,
    "master_key_file": str,
    "worker_key_file": str,
    "worker_keys": str,
    "master_insecure": _bool,
    "allow_env": _tags,
    "heartbeat_interval": _positive_duration,
    "heartbeat_liveness": _positive_int,
    "report_interval": _positive_duration,
    "master_timeout": _positive_duration,
    # the web UI (runner.web)
    "web": _bool,
    "web_host": str,
    "web_port": _port,
    "web_allowed_host": _tags,
    "tls_cert": str,
    "tls_key": str,
    "autostart": _bool,
    "autoquit": _optional_duration,
    # the regression gate (runner.compare)
    "baseline": str,
    "fail_on": _tags,
}
MASTER_PORT = 5557  # a master listens on it, and a worker looks for its master there
FROM_SCENARIO = ("users", "spawn_rate", "run_time", "iterations", "stop_timeout")


@dataclass(frozen=True)
class RunSettings:
    users: int = 1
    spawn_rate: float = 1.0
    run_time: float | None = None
    host: str | None = None
    stop_timeout: float = 0.0
    iterations: int | None = None
    tags: list[str] = field(default_factory=list)
    exclude_tags: list[str] = field(default_factory=list)
    csv: str | None = None
    csv_full_history: bool = False
    json: str | None = None
    print_stats: bool = False
    only_summary: bool = False
    loglevel: str = "INFO"
    logfile: str | None = None
    exit_code_on_error: int = 1
    reset_stats: bool = False
    no_rendezvous: bool = False
    strict: bool = False  # a run whose load did not happen as planned (report.shortfalls) fails: exit code 1
    data_dir: str | None = None
    html: str | None = None  # the HTML report
    apdex_t: float | None = None  # seconds: Apdex's T in the HTML report and the results (None: 500 ms)
    junit: str | None = None  # JUnit XML of the thresholds and checkpoints
    monitor: list[str] = field(default_factory=list)  # local processes to watch: PIDs or names
    metrics_port: int | None = None  # Prometheus /metrics (0: any free port)
    metrics_host: str = "127.0.0.1"  # beyond loopback only with web_auth
    web_auth: str | None = None  # USER:PASSWORD for every HTTP endpoint lrun serves
    otel: bool = False  # export metrics over OTLP/HTTP (OTEL_* variables)
    webhook: str | None = None  # incoming webhook URL told of tripped rules and the run's end
    jsonl: str | None = None  # per-second samples as JSON lines, written live
    processes: int | None = None  # local worker processes (--processes N or auto)
    master: bool = False
    worker: bool = False
    master_host: str = "127.0.0.1"  # where a worker finds its master
    master_port: int = MASTER_PORT
    master_bind_host: str = "*"  # where the master listens ("*": every interface)
    master_bind_port: int = MASTER_PORT
    expect_workers: int | None = None  # None: 1 with --master, N with --processes N
    expect_workers_max_wait: float | None = None  # None: wait forever (--master), 60 s (--processes)
    master_token: str | None = None
    master_key_file: str | None = None  # the master's key file: its secret one on the master, public on a worker
    worker_key_file: str | None = None  # worker: its own secret key file
    worker_keys: str | None = None  # master: the folder of the workers' public key files it accepts
    master_insecure: bool = False  # master: listen beyond loopback without a token or keys
    allow_env: list[str] = field(default_factory=list)  # worker: names (or NAME* patterns) env() may read here
    heartbeat_interval: float = 1.0
    heartbeat_liveness: int = 3  # heartbeats missed before a worker counts as missing
    report_interval: float = 3.0
    master_timeout: float = 10.0  # a worker that hears nothing from its master for this long stops
    web: bool = False  # serve the web UI (runner.web)
    web_host: str = "127.0.0.1"
    web_port: int = 8089
    web_allowed_host: list[str] = field(default_factory=list)  # more names the UI may be reached as (Host)
    tls_cert: str | None = None
    tls_key: str | None = None
    autostart: bool = False  # --web: start the test at once
    autoquit: float | None = None  # --web: quit this long after the test ended
    baseline: str | None = None  # results to judge the run against (runner.compare)
    fail_on: list[str] = field(default_factory=list)  # the gate's rules, "p95 +10%"
    sources: dict[str, str] = field(default_factory=dict)  # setting -> where its value came from


def env_name(name: str) -> str:
    return "LRUN_" + name.upper()


def find_config(explicit: str | None, cwd: Path) -> tuple[Path, dict[str, Any]] | None:
    """The config file in force and its settings, or None."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise LrunError(f"--config: file not found: {explicit}")
        return path, read_config(path)
    if (cwd / "lrun.conf").is_file():
        return cwd / "lrun.conf", read_config(cwd / "lrun.conf")
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        try:
            table = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("lrun")
        except tomllib.TOMLDecodeError:
            return None  # not ours to judge
        if table:
            text = pyproject.read_text(encoding="utf-8")
            return pyproject, _checked(pyproject, {str(k): (v, _line_of(text, str(k))) for k, v in table.items()})
    return None


def read_config(path: Path) -> dict[str, Any]:
    """``key = value`` lines (TOML, or locust.conf style with bare values); ``#`` comments; an optional [lrun]."""
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        pass
    else:
        data = data.get("lrun", data)
        return _checked(path, {str(k): (v, _line_of(text, str(k))) for k, v in data.items()})
    found: dict[str, tuple[Any, int]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line or (line.startswith("[") and line.endswith("]")):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise LrunError(f"{path}:{number}:1: expected 'key = value', got {raw.strip()!r}")
        found[key.strip()] = (value.strip().strip("'\""), number)
    return _checked(path, found)


def _line_of(text: str, key: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.split("=", 1)[0].strip() == key:
            return number
    return 1


def _checked(path: Path, found: dict[str, tuple[Any, int]]) -> dict[str, Any]:
    from runner.suggest import did_you_mean

    out = {}
    for key, (value, line) in found.items():
        name = key.replace("-", "_")
        if name not in SETTINGS:
            hint = did_you_mean(name, SETTINGS)
            raise LrunError(f"{path}:{line}:1: unknown setting '{key}'{' (' + hint + ')' if hint else ''}")
        out[name] = value
    return out


def resolve(
    cli: Mapping[str, Any],
    *,
    environ: Mapping[str, str] = os.environ,
    config: tuple[Path, dict[str, Any]] | None = None,
    scenario_load: Mapping[str, Any] | None = None,
) -> RunSettings:
    """Merge every source into ``RunSettings``; a bad value names its source."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, convert in SETTINGS.items():
        candidates: list[tuple[str, Any]] = []
        if cli.get(name) is not None and cli.get(name) != ():
            candidates.append(("command line", cli[name]))
        if env_name(name) in environ:
            candidates.append((env_name(name), environ[env_name(name)]))
        if config and name in config[1]:
            candidates.append((str(config[0]), config[1][name]))
        if scenario_load and name in FROM_SCENARIO and scenario_load.get(name) is not None:
            candidates.append(("scenario load", scenario_load[name]))
        if not candidates:
            sources[name] = "default"  # RunSettings' own
            continue
        source, value = candidates[0]
        try:
            values[name] = convert(value) if value is not None else None
        except (TypeError, ValueError) as exc:
            option = "--" + name.replace("_", "-")
            raise LrunError(f"{option} from {source}: {exc}") from None
        sources[name] = source
    if sources.get("iterations") == "scenario load" and sources.get("run_time") not in ("default", "scenario load"):
        values["iterations"] = None  # the user's -t says how long: the scenario's iteration cap (a replay's 1) goes
        sources["iterations"] = "default"
    settings = RunSettings(**values, sources=sources)  # frozen: a run reads its settings, never writes them
    if settings.users > users_limit(settings):
        raise LrunError(f"--users from {sources['users']}: {too_many_users(settings.users, settings)}")
    return settings


def users_limit(settings: RunSettings) -> int:
    """The most users this run may ask for: a process's maximum, times the processes when known."""
    if settings.master:
        return MAX_USERS
    return min(MAX_USERS, MAX_USERS_PER_PROCESS * (settings.processes or 1))


def too_many_users(users: int, settings: RunSettings) -> str:
    limit = users_limit(settings)
    where = f"{settings.processes} processes" if settings.processes else "one process"
    return (
        f"{users:,} users is more than {where} can run (at most {limit:,}; {MAX_USERS_PER_PROCESS:,} per process): "
        f"spread them over --processes N or workers (at most {MAX_USERS:,} in all)"
    )


def load_given_by_user(settings: RunSettings) -> bool:
    """-u, -r or -t from anywhere but the scenario replace the scenario's stages (or arrivals)."""
    return any(settings.sources.get(name) not in ("default", "scenario load") for name in ("users", "run_time"))

"""Fuzz: 360 seeded mutants of the example scenarios. ``validate`` never raises anything but a
``ScenarioError`` (no traceback) and never takes over 5 s; a valid mutant compiles; a sample runs for real.
240 mutants of the recorded HARs: ``lrun import`` gives one line or a scenario that validates."""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import pytest
import yaml
from jinja2 import nodes
from mutants import har_mutants, mutants

from conftest import ROOT, SCENARIOS, run_lrun
from runner.compile.compiler import CompileOptions, compile_scenario
from runner.debug import TraceRuntime, debug_users
from runner.engine.user import VirtualUser
from runner.errors import ScenarioError
from runner.importers.convert import ImportOptions, import_har
from runner.importers.har import HarError
from runner.importers.write import WriteOptions
from runner.scenario import load_scenario
from runner.scenario.templating import is_template, parse

FRAGMENTS = ("common.yaml", "pools.yaml")
SOURCES = sorted(p for p in SCENARIOS.glob("*.yaml") if p.name not in FRAGMENTS)
COUNT = 360
INTERNAL = {"AssertionError", "AttributeError", "KeyError", "IndexError", "NameError", "UnboundLocalError"}
RUN_SAMPLE = 6  # mutants that validate also run as real lrun processes against the demo target


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The mutants, written next to a copy of the examples (their includes, CSV files and Python modules)."""
    here = tmp_path_factory.mktemp("fuzz") / "scenarios"
    shutil.copytree(SCENARIOS, here)
    written = []
    for name, text in mutants(SOURCES, COUNT):
        path = here / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def test_validate_every_mutant(corpus: list[Path]) -> None:
    valid, invalid, slow, crashes = [], 0, [], []
    for path in corpus:
        started = time.monotonic()
        try:
            loaded = load_scenario(path)
            compile_scenario(loaded, CompileOptions(demo_url="http://127.0.0.1:9"))
        except ScenarioError as exc:
            invalid += 1
            assert exc.problems and all(p.message for p in exc.problems), path.name
        except Exception as exc:  # the point: anything else is a crash a user would see
            crashes.append(f"{path.name}: {type(exc).__name__}: {exc}")
        else:
            valid.append(path)
        if time.monotonic() - started > 5:
            slow.append(f"{path.name}: {time.monotonic() - started:.1f}s")
    assert not crashes, "\n".join(crashes)
    assert not slow, "\n".join(slow)
    assert len(corpus) == COUNT and invalid > COUNT // 3 and len(valid) > COUNT // 10, (invalid, len(valid))


def test_every_valid_mutant_debugs_without_an_internal_error(corpus: list[Path], demo_url: str) -> None:
    """One iteration of each user type of every valid mutant, in this process, against the demo target."""
    crashes = []
    for path in corpus:
        try:
            loaded = load_scenario(path)
        except ScenarioError:
            continue
        compiled = compile_scenario(loaded, CompileOptions(host=demo_url, demo_url=demo_url))
        runtime = Recording(echo=lambda _text: None, color=False)
        started = time.monotonic()
        with gevent.Timeout(20, False):
            debug_users(compiled.user_classes, runtime, compiled.setup, {})
        assert time.monotonic() - started < 25, path.name
        crashes += [f"{path.name}: {type(e).__name__}: {e}" for e in runtime.seen if type(e).__name__ in INTERNAL]
    assert not crashes, "\n".join(crashes)


@dataclass
class Recording(TraceRuntime):
    seen: list[BaseException] = field(default_factory=list)

    def on_error(self, user: VirtualUser, error: BaseException) -> None:
        self.seen.append(getattr(error, "__cause__", None) or error)
        super().on_error(user, error)


def test_a_sample_of_valid_mutants_runs_without_a_crash(corpus: list[Path], demo_url: str, tmp_path: Path) -> None:
    valid = []
    for path in corpus:
        try:
            load_scenario(path)
        except ScenarioError:
            continue
        valid.append(path)
    sample = valid[:: max(1, len(valid) // RUN_SAMPLE)][:RUN_SAMPLE]
    assert len(sample) >= RUN_SAMPLE // 2
    for path in sample:
        debug = run_lrun("debug", str(path), "-H", demo_url, timeout=60)
        output = debug.stdout + debug.stderr
        assert debug.returncode in (0, 1), f"{path.name} debug: exit {debug.returncode}\n{output[-3000:]}"
        assert re.search(r"^\d+ requests?, \d+ failed", debug.stdout, re.M), f"{path.name} debug:\n{output[-3000:]}"
        results = tmp_path / f"{path.stem}.json"
        args = ["-H", demo_url, "-u", "2", "-r", "10", "-i", "1", "-t", "3s", "--only-summary", "--json", str(results)]
        run = run_lrun("run", str(path), *args, timeout=60)
        output = run.stdout + run.stderr
        assert run.returncode in (0, 1) and "Traceback" not in output, f"{path.name} run:\n{output[-3000:]}"
        exceptions = json.loads(results.read_text()).get("exceptions", [])
        internal = [e for e in exceptions if e.get("type") in INTERNAL]
        assert not internal, f"{path.name}: lrun's own error inside users: {internal}"


# -- recordings: lrun import ---------------------------------------------------------------------------------------

HAR_SOURCES = sorted((ROOT / "tests" / "data" / "har").glob("*.har"))
HAR_COUNT = 240
SAFE_NODES = (nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.Getattr)
TEMPLATED = {"get", "post", "put", "patch", "delete", "head", "options", "query", "headers", "json", "form", "body"}
TEMPLATED |= {"check"}  # contains: a page's title


class Hang(Exception):
    pass


def _alarm(_signum: int, _frame: Any) -> None:
    raise Hang


def rendered_code(scenario: Any) -> list[str]:
    """Every template of an imported scenario's requests (keys too) that does more than insert a variable or
    write a constant: what a recorded string would run if it were not escaped."""
    requests = []
    for step in scenario["users"]["recorded"]["sequence"]:
        requests += step["steps"] if "transaction" in step else [step]
    stack: list[Any] = [{k: v for k, v in step.items() if k in TEMPLATED} for step in requests]
    found = []
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack += [*value.keys(), *value.values()]
        elif isinstance(value, list):
            stack += value
        elif isinstance(value, str) and is_template(value):
            tree = parse(value)
            every = [tree, *tree.find_all(nodes.Node)]
            pool = [n for n in every if isinstance(n, nodes.Getattr) and getattr(n.node, "name", "") == "inputs"]
            if not all(isinstance(n, SAFE_NODES) for n in every) or len(pool) != sum(
                isinstance(n, nodes.Getattr) for n in every
            ):
                found.append(value)
    return found


def test_recording_mutants_import_to_scenarios_that_validate(tmp_path: Path) -> None:
    """240 seeded mutants of the recorded HARs: import is one ``HarError`` line or a scenario that validates and
    renders nothing but its correlations; no traceback, no case over 10 s. No --verify: nothing is contacted."""
    crashes, slow, invalid, code, refused, imported = [], [], [], [], 0, 0
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for name, content in har_mutants(HAR_SOURCES, HAR_COUNT):
            path = tmp_path / name
            path.write_bytes(content)
            started = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, 10)
            try:
                pool = int(path.stem[-3:]) % 2 == 0  # half of them with --pool: typed fields to a CSV file
                write = WriteOptions(name=path.stem, pool=pool, pool_file=f"{path.stem}.csv")
                result = import_har(str(path), ImportOptions(write=write))
                scenario = path.with_suffix(".yaml")
                scenario.write_text(result.yaml, encoding="utf-8")
                if result.pool and result.pool.columns:
                    path.with_suffix(".csv").write_text(result.pool.csv_text(), encoding="utf-8")
                load_scenario(scenario)
                imported += 1
                code += [f"{name}: {t!r}" for t in rendered_code(yaml.safe_load(result.yaml))]
            except HarError as exc:
                refused += 1
                message = str(exc)
                if not message.startswith(str(path)) or "\n" in message:
                    crashes.append(f"{name}: not one line naming the file: {message[:300]!r}")
            except ScenarioError as exc:
                invalid.append(f"{name}: does not validate: {str(exc)[:500]}")
            except Hang:
                slow.append(f"{name}: over 10 s")
            except Exception as exc:  # the point: anything else is a traceback a user would see
                crashes.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if time.monotonic() - started > 10:
                slow.append(f"{name}: {time.monotonic() - started:.1f}s")
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not crashes, "\n".join(crashes)
    assert not slow, "\n".join(slow)
    assert not invalid, "\n".join(invalid)
    assert not code, "\n".join(code)
    assert imported > HAR_COUNT // 2 and refused >= 5, (imported, refused)  # both paths taken, often


def test_a_sample_of_recording_mutants_through_the_command(tmp_path: Path) -> None:
    """The same mutants through ``lrun import`` as a user runs it: exit 0 with a scenario ``lrun validate``
    accepts, or exit 2 and one line; never a traceback."""
    sample = list(har_mutants(HAR_SOURCES, HAR_COUNT))[::40]
    exits = []
    for name, content in sample:
        path = tmp_path / name
        path.write_bytes(content)
        scenario = path.with_suffix(".yaml")
        result = run_lrun("import", str(path), "-o", str(scenario), timeout=60)
        exits.append(result.returncode)
        assert "Traceback" not in result.stderr, f"{name}:\n{result.stderr[-3000:]}"
        if result.returncode == 2:
            assert len(result.stderr.strip().splitlines()) == 1, f"{name}:\n{result.stderr[-3000:]}"
        else:
            assert result.returncode == 0, f"{name}: exit {result.returncode}\n{result.stderr[-3000:]}"
            validate = run_lrun("validate", str(scenario), timeout=60)
            assert validate.returncode == 0, f"{name}:\n{validate.stdout[-3000:]}{validate.stderr[-3000:]}"
    assert len(exits) == 6 and 0 in exits, exits

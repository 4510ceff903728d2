"""Whatever a file holds, loading it either works or says what is wrong, where: never any other exception.

The documents are random data, random text, and (more to the point) mutations of the valid scenarios in
scenarios/: a key deleted or misspelt, a value of another type, characters inserted into the YAML text, the
text cut short. Runs are derandomized and use no example database, so CI sees the same examples every time.
"""

from __future__ import annotations

import json
import shutil
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import ScenarioError
from runner.scenario import find_scenarios, load_scenario
from runner.scenario.loader import LINE_BREAK
from runner.scenario.model import (
    Boundary,
    Check,
    Extract,
    FileUpload,
    Http,
    Load,
    Request,
    Scenario,
    SequenceTask,
    User,
)

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
VALID = {p.name: p.read_text(encoding="utf-8") for p in find_scenarios([SCENARIOS])}  # not fragments
PARSED = {name: yaml.safe_load(text) for name, text in VALID.items()}

CHECKED = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Keys the language knows, so random documents reach past the first unknown key now and then.
KEYS = sorted(
    {
        f.alias or name
        for model in (Scenario, User, Request, SequenceTask, Check, Extract, Boundary, FileUpload, Http, Load)
        for name, f in model.model_fields.items()
    }
    | {"between", "gaussian", "mean", "stddev", "set", "think", "sequence", "visitor", "x"}
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of scenarios/, so that mutated files still find the fragments they include."""
    target = tmp_path_factory.mktemp("mutants")
    shutil.copytree(SCENARIOS, target, dirs_exist_ok=True)
    return target


def assert_loads_or_explains(path: Path) -> None:
    """Load ``path``: any exception but ``ScenarioError`` fails, and every problem (or warning) has a place."""
    try:
        problems = load_scenario(path).warnings
    except ScenarioError as exc:
        assert exc.problems, "a ScenarioError without problems"
        assert str(exc)
        problems = exc.problems
    lines = len(LINE_BREAK.findall(path.read_text(encoding="utf-8"))) + 1
    for problem in problems:
        assert problem.path, problem
        assert problem.line >= 1 and problem.col >= 1, problem.format()
        assert problem.message.strip(), problem
        assert problem.severity in ("error", "warning"), problem
        if Path(problem.path) == path:
            assert problem.line <= lines, f"line {problem.line} of a {lines}-line file: {problem.format()}"


def write(workdir: Path, text: str, suffix: str = ".yaml") -> Path:
    path = workdir / f"mutant{suffix}"
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------- strategies

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "2s",
            "-1s",
            "2xx",
            "demo",
            "/",
            "$.a[",
            "//a[",
            "(",
            "{{ x }}",
            "{{ x",
            "{{ x | nope }}",
            "{% if %}",
        ]
    )
    | st.dates()
)
keys = st.sampled_from(KEYS) | st.text(string.ascii_letters + "_", min_size=1, max_size=8)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)


def _nodes(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _nodes(value, (*path, index))


def _typo(key: str, position: int, kind: int) -> str:
    position %= len(key) + 1
    if kind == 0:
        return key[:position] + key[position + 1 :] or "k"  # a letter dropped
    if kind == 1:
        return key[:position] + "x" + key[position:]  # a letter added
    if kind == 2 and position + 1 < len(key):
        return key[:position] + key[position + 1] + key[position] + key[position + 2 :]  # two letters swapped
    return key.upper()


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A valid scenario with one to three keys deleted, misspelt or given a value of another type."""
    name = draw(st.sampled_from(sorted(PARSED)))
    data = json.loads(json.dumps(PARSED[name]))  # a deep copy
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_nodes(data))))
        if not path:
            continue
        parent = data
        for element in path[:-1]:
            parent = parent[element]
        last = path[-1]
        action = draw(st.sampled_from(["delete", "rename", "replace", "replace"]))
        if action == "delete":
            del parent[last]
        elif action == "rename" and isinstance(parent, dict):
            new = _typo(str(last), draw(st.integers(0, 20)), draw(st.integers(0, 3)))
            parent[new] = parent.pop(last)
        else:
            parent[last] = draw(documents)
    return data


YAML_TRICKS = st.sampled_from(
    ["&a ", "*a", "<<: *a\n", "!!binary ", "!!set ", "!!omap ", "!!python/object:os.system ", "---\n", "? ", "~"]
)


@st.composite
def edited_text(draw: st.DrawFn) -> str:
    """A valid scenario's text with characters inserted, a part deleted, or cut short."""
    text = VALID[draw(st.sampled_from(sorted(VALID)))]
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "insert", "delete", "truncate"]))
        if action == "insert":
            noise = draw(st.text(alphabet=":{}[]-#\"'\t\n &*!|>%@,?\\ ax0{{}}", min_size=1, max_size=4) | YAML_TRICKS)
            text = text[:at] + noise + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        else:
            text = text[:at]
    return text


# ----------------------------------------------------------------------------------------------- properties


def test_valid_scenarios_load() -> None:
    for name in VALID:
        load_scenario(SCENARIOS / name)


@settings(CHECKED, max_examples=600)
@given(document=documents, as_json=st.booleans())
def test_random_documents(workdir: Path, document: Any, as_json: bool) -> None:
    if as_json:
        path = write(workdir, json.dumps(document, indent=2, default=str), ".json")
    else:
        path = write(workdir, yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
    assert_loads_or_explains(path)


@settings(CHECKED, max_examples=600)
@given(text=st.text(max_size=200) | st.text(alphabet=":{}[]- \n\t#'\"ab{}*&!", max_size=80))
def test_random_text(workdir: Path, text: str) -> None:
    assert_loads_or_explains(write(workdir, text))


@settings(CHECKED, max_examples=1500)
@given(document=mutated(), as_json=st.booleans())
def test_mutated_scenarios(workdir: Path, document: Any, as_json: bool) -> None:
    if as_json:
        path = write(workdir, json.dumps(document, indent=1, default=str), ".json")
    else:
        path = write(workdir, yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
    assert_loads_or_explains(path)


@settings(CHECKED, max_examples=2000)
@given(text=edited_text())
def test_edited_scenario_text(workdir: Path, text: str) -> None:
    assert_loads_or_explains(write(workdir, text))

"""The corpus of broken scenarios in tests/broken: every mistake is reported where a user would look.

Each case states what ``lrun validate`` must say about it, in comment lines at the top of the file::

    # expect: LINE:COL: message            an error, in output order
    # expect-warning: LINE:COL: message    a warning
    #     hint: text                       (optional) the hint of the problem just above, exactly

A case is a file directly in tests/broken, or a directory whose ``main.yaml`` is loaded; there, every file
states the problems reported in that file (an error in an included fragment is reported in the fragment).
JSON and CSV have no comments, so a ``.json`` or ``.csv`` file states its expectations in ``NAME.json.expect``
next to it. A scenario's Python module (``.py``) states them in its own comment lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from conftest import ROOT, run_lrun
from runner.errors import Problem, ScenarioError
from runner.scenario import find_scenarios, load_scenario

BROKEN = ROOT / "tests" / "broken"
SUFFIXES = (".yaml", ".yml", ".json")
CASE_SUFFIXES = (*SUFFIXES, ".csv", ".py")  # files a case directory may hold problems in
EXPECT = re.compile(r"#\s*expect(-warning)?:\s*(\d+):(\d+):\s(.*)$")
HINT = re.compile(r"#\s*hint:\s(.*)$")


@dataclass(frozen=True)
class Expected:
    file: Path
    line: int
    col: int
    severity: str
    message: str
    hint: str | None  # None: not checked


def _expectations(file: Path) -> list[Expected]:
    source = Path(f"{file}.expect") if file.suffix in (".json", ".csv") else file
    if not source.exists():
        return []
    found: list[Expected] = []
    for text in source.read_text(encoding="utf-8").splitlines():
        if not text.startswith("#"):
            break  # only the comment lines at the top of the file
        if expect := EXPECT.match(text):
            severity = "warning" if expect[1] else "error"
            found.append(Expected(file, int(expect[2]), int(expect[3]), severity, expect[4], None))
        elif (hint := HINT.match(text)) and found:
            found[-1] = replace(found[-1], hint=hint[1])
    return found


def _cases() -> list[Path]:
    """Entry files: the files directly in tests/broken, and main.yaml of each directory in it."""
    files = [p for p in BROKEN.iterdir() if p.is_file() and p.suffix in SUFFIXES]
    dirs = [p / "main.yaml" for p in BROKEN.iterdir() if p.is_dir()]
    return sorted(files + dirs)


def _case_files(entry: Path) -> list[Path]:
    if entry.parent == BROKEN:
        return [entry]
    return sorted(p for p in entry.parent.rglob("*") if p.suffix in CASE_SUFFIXES)


def _reported(entry: Path) -> list[Problem]:
    try:
        return load_scenario(entry).warnings
    except ScenarioError as exc:
        return exc.problems


CASES = _cases()


@pytest.mark.parametrize("entry", CASES, ids=[str(p.relative_to(BROKEN)) for p in CASES])
def test_broken_scenario_reports_what_it_states(entry: Path) -> None:
    files = _case_files(entry)
    expected = {file: _expectations(file) for file in files}
    assert any(expected.values()), f"{entry}: no '# expect:' lines"
    problems = _reported(entry)
    for problem in problems:
        assert Path(problem.path).resolve() in expected, f"problem in a file outside the case: {problem.format()}"
    for file in files:
        want = expected[file]
        got = [p for p in problems if Path(p.path).resolve() == file]
        assert [(p.line, p.col, p.severity, p.message) for p in got] == [
            (e.line, e.col, e.severity, e.message) for e in want
        ], f"{file.relative_to(BROKEN)}:\n" + "\n".join(p.format() for p in got)
        for problem, expectation in zip(got, want, strict=True):
            if expectation.hint is not None:
                assert problem.hint == expectation.hint, problem.format()


def test_corpus_is_complete() -> None:
    """Every scenario file under tests/broken belongs to a case, and every case expects something."""
    in_cases = {file for entry in CASES for file in _case_files(entry)}
    on_disk = {
        p for p in BROKEN.rglob("*") if p.suffix in SUFFIXES or (p.suffix in CASE_SUFFIXES and p.parent != BROKEN)
    }
    assert on_disk == in_cases
    assert len(CASES) >= 45


def test_include_may_name_one_file_without_a_list(tmp_path: Path) -> None:
    (tmp_path / "common.yaml").write_text("variables: {password: secret}\n")
    (tmp_path / "main.yaml").write_text(
        "include: common.yaml\nhost: demo\nusers:\n  v:\n    sequence:\n      - get: '/{{ password }}'\n"
    )
    assert load_scenario(tmp_path / "main.yaml").model.variables == {"password": "secret"}


# ----------------------------------------------------------------------------------------------- the real CLI


CLI_CASES = [
    "yaml_tab.yaml",
    "json_syntax.json",
    "unknown_key_request.yaml",
    "enum_on_fail.yaml",
    "template_json.yaml",
    "undefined_variable.yaml",
    "include_fragment_key/main.yaml",
    "include_cycle/main.yaml",
]


@pytest.mark.parametrize("name", CLI_CASES)
def test_lrun_validate_prints_positions_not_tracebacks(name: str) -> None:
    entry = BROKEN / name
    result = run_lrun("validate", str(entry.relative_to(ROOT)))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    first = next(e for file in _case_files(entry) for e in _expectations(file))
    where = Path(first.file).relative_to(ROOT)
    assert f"{where}:{first.line}:{first.col}: {first.message}" in result.stderr


def test_lrun_validate_warning_only_passes_unless_strict() -> None:
    path = "tests/broken/only_other_task.yaml"
    relaxed = run_lrun("validate", path)
    assert relaxed.returncode == 0, relaxed.stderr
    assert f"{path}:11:14: warning: variable 'item_id' is only set by another task" in relaxed.stderr
    strict = run_lrun("validate", "--strict", path)
    assert strict.returncode == 2
    assert "Traceback" not in strict.stdout + strict.stderr


def test_lrun_validate_whole_corpus() -> None:
    result = run_lrun("validate", "tests/broken")
    output = result.stdout + result.stderr
    assert result.returncode == 2
    assert "Traceback" not in output
    checked = set(find_scenarios([BROKEN]))  # fragments that other files include are checked through them
    assert {p for p in CASES if p.parent == BROKEN} <= checked
    for entry in CASES:
        if entry in checked:
            first = next(e for file in _case_files(entry) for e in _expectations(file))
            where = first.file.relative_to(ROOT)
            assert f"{where}:{first.line}:{first.col}: " in result.stderr, f"{where} not reported"

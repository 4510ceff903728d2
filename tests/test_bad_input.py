"""Bad input is a clear message and exit 2 before anything starts: command-line numbers, tags, alias bombs."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import write

from conftest import ROOT, run_lrun
from runner.errors import ScenarioError
from runner.scenario import load_scenario

TAGGED = """host: demo
users:
  shopper:
    tags: [shop]
    tasks:
      - {weight: 1, get: /, tags: [home]}
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-u", "-3"], "lrun: --users from command line: must be at least 0; got -3"),
        (["-u", "0"], "lrun: -u 0: no user would run; give at least 1 user (-u 1), or load stages"),
        (["-r", "0"], "lrun: --spawn-rate from command line: must be at least 0.001; got 0"),
        (["-r", "-1"], "lrun: --spawn-rate from command line: must be at least 0.001; got -1"),
        # issue 29 / 28: strict, finite, bounded (each of these was accepted)
        (["-u", "１２"], "lrun: --users from command line: expected a whole number; got '１２' (write ASCII digits"),
        (["-u", "1_0"], "lrun: --users from command line: expected a whole number; got '1_0'"),
        (["-u", "1000000000000"], "lrun: --users from command line: must be at most 10,000,000; got 1000000000000"),
        (["-u", "100001"], "lrun: --users from command line: 100,001 users is more than one process can run"),
        (["-r", "1e308"], "lrun: --spawn-rate from command line: must be at most 1,000,000; got 1e+308"),
        (["-r", "1e-320"], "lrun: --spawn-rate from command line: must be at least 0.001; got 9.99989e-321"),
        (["-r", "nan"], "lrun: --spawn-rate from command line: expected a number; got 'nan'"),
        (["-r", "１"], "lrun: --spawn-rate from command line: expected a number; got '１'"),
        (["-t", "inf"], "lrun: --run-time from command line: 'inf' is not a duration"),
        (["-t", "1e400"], "lrun: --run-time from command line: '1e400' is not a duration"),
        (["-t", "nan"], "lrun: --run-time from command line: 'nan' is not a duration"),
        (["-t", "1_0s"], "lrun: --run-time from command line: '1_0s' is not a duration"),
        (["-t", "800h"], "lrun: --run-time from command line: 2,880,000s is longer than lrun takes (30 days)"),
        (["-i", "1e3"], "lrun: --iterations from command line: expected a whole number; got '1e3'"),
        (["--web-port", "８０８０"], "lrun: --web-port from command line: '８０８０' is not a port number"),
        (["-H", "http://[::1"], "-H: host 'http://[::1' is not a URL (Invalid IPv6 URL)"),
        (["-i", "0"], "lrun: --iterations from command line: must be at least 1; got 0"),
        (
            ["-T", "hom"],
            "lrun: -T/--tags: no user type or task of the scenario has the tag 'hom' (did you mean 'home'?)",
        ),
        (["-E", "nope"], "lrun: -E/--exclude-tags: no user type or task of the scenario has the tag 'nope' (its tags:"),
    ],
)
def test_command_line_load_follows_the_scenarios_rules(tmp_path: Path, args: list[str], message: str) -> None:
    path = write(tmp_path, TAGGED)
    result = run_lrun("run", str(path), *(args if "-t" in args else ["-t", "30s", *args]), timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(message) and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "demo target started" not in result.stderr and not result.stdout


def test_the_same_rules_hold_for_every_source(tmp_path: Path) -> None:
    path = write(tmp_path, TAGGED.replace("host: demo\n", "host: demo\nload: {users: 0}\n"))
    result = run_lrun("run", str(path), "-t", "30s")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "lrun: users = 0 (from scenario load): no user would run; give at least 1 user (-u 1), or load stages"
    )
    (tmp_path / "lrun.conf").write_text("spawn-rate = -2\n")
    result = run_lrun("run", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"lrun: --spawn-rate from {tmp_path / 'lrun.conf'}: must be at least 0.001; got -2"


def test_stages_or_an_arrival_rate_need_no_users(tmp_path: Path, demo_url: str) -> None:
    scenario = TAGGED.replace("host: demo\n", "host: demo\nload: {users: 0, stages: [{duration: 1s, users: 1}]}\n")
    result = run_lrun("run", str(write(tmp_path, scenario)), "-H", demo_url, "--only-summary")
    assert result.returncode == 0, result.stderr


def bomb(levels: int = 9, copies: int = 9) -> str:
    lines = ["host: demo", 'x-l0: &l0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"x-l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * copies)}]")
    lines += [f"variables: {{bomb: *l{levels}}}", "users: {u: {sequence: [{get: /}]}}"]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_a_place_and_a_message_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, bomb())
    started = time.monotonic()
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    elapsed = time.monotonic() - started
    [problem] = caught.value.problems
    assert (problem.path, problem.line) == (str(path), 7)  # the anchored list that aliases repeat
    assert problem.message == "aliases (*name) here expand to more than 100,000 values"
    assert elapsed < 5, elapsed  # ~0.3 s here; unbounded, the same file takes minutes and gigabytes


def test_aliases_of_a_normal_size_still_work(tmp_path: Path) -> None:
    path = write(tmp_path, bomb(levels=3, copies=5))  # 125 values
    loaded = load_scenario(path)
    assert len(loaded.model.variables["bomb"]) == 5


def test_validate_reports_the_bomb_in_one_line(tmp_path: Path) -> None:
    result = run_lrun("validate", str(write(tmp_path, bomb())), cwd=ROOT)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{tmp_path / 'scenario.yaml'}:7:7: aliases (*name) here expand" in result.stderr


def test_validating_a_fragment_names_the_files_that_include_it(tmp_path: Path) -> None:
    write(tmp_path, "headers: {X-Team: perf}\n", "common.yaml")
    write(tmp_path, "include: [common.yaml]\nhost: demo\nusers: {u: {sequence: [{get: /}]}}\n", "a.yaml")
    write(tmp_path, "include: common.yaml\nhost: demo\nusers: {u: {sequence: [{get: /nowhere}]}}\n", "b.yaml")
    result = run_lrun("validate", "common.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "common.yaml:1:1: info: a fragment, included by a.yaml, b.yaml; it is checked" in result.stderr
    assert result.stdout.splitlines() == ["common.yaml: ok", "a.yaml: ok", "b.yaml: ok"]  # checked through them
    run = run_lrun("run", "common.yaml", cwd=tmp_path)
    assert run.returncode == 2
    assert (
        run.stderr.strip()
        == "common.yaml: a fragment, included by a.yaml, b.yaml; it is checked and run as part of them"
    )
    junit = run_lrun("validate", "--strict", "--format", "junit", "common.yaml", cwd=tmp_path)
    assert junit.returncode == 0, junit.stdout
    suite = ET.fromstring(junit.stdout).find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and suite.get("tests") == "3"
    assert "a fragment, included by a.yaml, b.yaml" in junit.stdout  # the info line is kept, as output
    write(tmp_path, "headers: {X-Team: perf}\n", "alone.yaml")  # nothing includes it: what is missing, as before
    result = run_lrun("validate", "alone.yaml", cwd=tmp_path)
    assert result.returncode == 2 and "missing required key 'users'" in result.stderr

"""The CI examples in examples/ci/ are valid YAML, and every lrun command in them exists with those options."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import pytest
import yaml

from conftest import ROOT, run_lrun
from runner.cli import cli

EXAMPLES = ROOT / "examples" / "ci"


def lrun_commands(script: str) -> list[list[str]]:
    """The lrun command lines in a shell script (folded lines joined, redirections and comments dropped)."""
    found = []
    for line in script.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "lrun":
            found.append(words[1 : words.index(">")] if ">" in words else words[1:])
    return found


def check_command(words: list[str]) -> None:
    """The subcommand exists (or the file form of `lrun SCENARIO`), every option is one of its options."""
    name = words[0] if words[0] in cli.commands else "run"
    command = cli.commands[name]
    args = words[1:] if words[0] in cli.commands else words
    options = {opt for param in command.params if isinstance(param, click.Option) for opt in param.opts}
    for word in args:
        if word.startswith("-"):
            assert word.split("=")[0] in options, f"lrun {name} has no option {word}"
        elif word.endswith((".yaml", ".yml")) or word.rstrip("/") == "scenarios":
            assert (ROOT / word).exists(), f"{word} does not exist in this repository"


def test_github_actions_example() -> None:
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    assert set(workflow[True]) == {"push", "pull_request"}  # YAML 1.1 reads the key `on` as true
    jobs = workflow["jobs"]
    assert jobs["load-test"]["needs"] == "validate"
    commands = []
    for job in jobs.values():
        assert job["runs-on"] and job["steps"]
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), step
            if "run" in step:
                commands += lrun_commands(step["run"])
    assert [c[0] for c in commands] == ["validate", "scenarios/quickstart.yaml"]
    for words in commands:
        check_command(words)
    load = commands[1]
    for option in ("--html", "--junit", "--json", "-t"):
        assert option in load
    upload = jobs["load-test"]["steps"][-1]
    assert upload["if"] == "always()" and "report.html" in upload["with"]["path"]


def test_gitlab_ci_example() -> None:
    pipeline = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    assert pipeline["stages"] == ["validate", "load"]
    commands = [c for job in ("validate", "load-test") for line in pipeline[job]["script"] for c in lrun_commands(line)]
    assert len(commands) == 2
    for words in commands:
        check_command(words)
    assert pipeline["load-test"]["artifacts"]["reports"]["junit"] == "junit.xml"
    assert "report.html" in pipeline["load-test"]["artifacts"]["paths"]


@pytest.mark.parametrize("example", ["github-actions.yml", "gitlab-ci.yml"])
def test_the_validate_step_runs_as_written(example: str, tmp_path: Path) -> None:
    text = (EXAMPLES / example).read_text()
    line = next(line for line in text.splitlines() if "lrun validate" in line)
    words = shlex.split(line.split("lrun", 1)[1].split(">")[0])
    result = run_lrun(*words)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('<?xml version="1.0"') and 'failures="0"' in result.stdout

"""The typed results: the committed schema is generated from them, old files still open, bad ones are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, run_lrun
from runner.report.model import StopCode, stop_code
from runner.report.results import read_json

SCHEMA_FILE = ROOT / "schemas" / "results.schema.json"
OLD = ROOT / "tests" / "data" / "results"  # written by lrun before the typed models (format_version 1)


def test_committed_results_schema_matches_lrun_schema_results() -> None:
    result = run_lrun("schema", "--results")
    assert result.returncode == 0, result.stderr
    assert result.stdout == SCHEMA_FILE.read_text(), (
        "schemas/results.schema.json is stale: run `lrun schema --results -o schemas/results.schema.json`"
    )


def _undocumented(schema: dict[str, Any]) -> list[str]:
    """Every property (and model) of ``schema`` without a description, as a path: ``Point.t``, ``$defs.Pool``."""
    found = [f"$defs.{name}" for name, model in schema.get("$defs", {}).items() if "description" not in model]
    for name, model in [("Results", schema), *schema.get("$defs", {}).items()]:
        found += [f"{name}.{key}" for key, value in model.get("properties", {}).items() if "description" not in value]
    return found


def test_every_key_of_the_results_schema_is_described() -> None:
    """The schema is the results' documentation: each key says what it counts, its unit and when it is null."""
    schema = json.loads(SCHEMA_FILE.read_text())
    assert _undocumented(schema) == []
    assert len([m for m in schema["$defs"].values() if "properties" in m]) >= 30  # the walk sees the models


def test_the_walk_finds_an_undocumented_key() -> None:
    schema = {
        "description": "Documented.",
        "properties": {"inner": {"$ref": "#/$defs/Inner", "description": "Documented."}, "bare": {"type": "string"}},
        "$defs": {"Inner": {"properties": {"deep": {"type": "integer"}}}},
    }
    assert _undocumented(schema) == ["$defs.Inner", "Results.bare", "Inner.deep"]


@pytest.mark.parametrize("name", ["v1_full.json", "v1_run.json"])
def test_an_old_results_file_validates_and_round_trips(name: str) -> None:
    import jsonschema

    data = json.loads((OLD / name).read_text())
    assert "stop_code" not in data  # written before the code existed
    assert not list(jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).iter_errors(data))
    typed = read_json(OLD / name)
    assert typed.to_dict() == data  # nothing added, nothing lost, numbers keep their JSON type
    assert typed.code is StopCode.RUN_TIME and typed.total.requests == data["total"]["requests"]


def test_an_old_results_file_opens_in_lrun_report(tmp_path: Path) -> None:
    out = tmp_path / "old.html"
    result = run_lrun("report", str(OLD / "v1_run.json"), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "flash_sale" in out.read_text() and "run time reached" in out.read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"total": {"requests": "many"}}, "not valid lrun results: total.method: Field required (and "),
        ({"exit_code": "one"}, "not valid lrun results: exit_code: Input should be a valid integer"),
        ({"checks": [{"method": "GET"}]}, "not valid lrun results: checks.0.name: Field required (and 3 more)"),
        ({"load": {"stages": [{"duration": 2}]}}, "not valid lrun results: load.stages.0.users: Field required"),
    ],
)
def test_a_bad_results_file_is_one_clear_line(tmp_path: Path, change: dict, message: str) -> None:
    data = {**json.loads((OLD / "v1_run.json").read_text()), **change}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    result = run_lrun("report", str(path), "-o", str(tmp_path / "r.html"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}: {message}" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("run time reached", StopCode.RUN_TIME),
        ("stages completed", StopCode.STAGES_DONE),
        ("all users finished", StopCode.USERS_DONE),
        ("interrupted", StopCode.INTERRUPTED),
        ("terminated", StopCode.INTERRUPTED),
        ("threshold errors < 1% failed (measured 8%)", StopCode.THRESHOLD_ABORT),
        ("resource threshold generator_cpu above 90% for 5s failed (peak 99%)", StopCode.RESOURCE_ABORT),
        ("stop_test: status 200 failed", StopCode.STOP_TEST),
        ("data pool 'accounts' ran out of rows (100 handed out)", StopCode.POOL_DRY),
        ("setup failed: GET /login: status 500", StopCode.ERROR),
        ("no worker can run the scenario: boom", StopCode.ERROR),
    ],
)
def test_stop_codes(reason: str, code: StopCode) -> None:
    assert stop_code(reason) is code


def test_a_run_writes_its_stop_code(tmp_path: Path, demo_url: str) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("host: demo\nusers: {u: {sequence: [{get: /items}]}}\n")
    out = tmp_path / "r.json"
    result = run_lrun("run", str(scenario), "-H", demo_url, "-u", "1", "-i", "2", "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "do not match runner.report.model" not in result.stderr  # what lrun wrote fits its own models
    data = json.loads(out.read_text())
    assert (data["stop_reason"], data["stop_code"]) == ("all users finished", "users_done")
    assert data["total"]["requests"] == 2
    assert read_json(out).to_dict() == data  # the file is the typed results' dump: read back, the same keys and values


def test_results_that_do_not_fit_the_models_keep_the_rest_and_the_bug_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from runner.report.results import build_results
    from runner.stats import RequestStats

    stats = RequestStats()
    with caplog.at_level("ERROR", logger="lrun"):
        results = build_results(
            stats, scenario="s", scenario_file="s.yaml", host="", start=1.0, end=2.0, users_max=0, load={},
            command="lrun", thresholds=[], stop_reason="stopped", exit_code=0, extra={"checks": [{"method": 1}]},
        )  # fmt: skip
    assert results.checks is None and results.total.requests == 0  # the rest of the figures are kept
    assert "do not match runner.report.model (an lrun bug, please report it): checks.0.method:" in caplog.text
    assert "left out: checks" in caplog.text

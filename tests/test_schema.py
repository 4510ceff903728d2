"""The committed JSON Schema is exactly what ``lrun schema`` prints, and it accepts the examples."""

from __future__ import annotations

import json

import yaml

from conftest import ROOT, SCENARIOS, run_lrun
from runner.scenario.schema import schema_text

SCHEMA_FILE = ROOT / "schemas" / "scenario.schema.json"


def test_committed_schema_matches_lrun_schema() -> None:
    result = run_lrun("schema")
    assert result.returncode == 0, result.stderr
    assert result.stdout == SCHEMA_FILE.read_text(encoding="utf-8"), (
        "schemas/scenario.schema.json is stale: run `lrun schema -o schemas/scenario.schema.json`"
    )


def test_schema_describes_the_language() -> None:
    schema = json.loads(schema_text())
    assert schema["title"] == "lrun scenario"
    assert schema["required"] == ["users"]
    request = schema["$defs"]["Request"]["properties"]
    for key in (
        "get",
        "post",
        "name",
        "query",
        "headers",
        "json",
        "form",
        "body",
        "timeout",
        "extract",
        "check",
    ):
        assert request[key].get("description"), key
    assert schema["$defs"]["Extract"]["properties"]["jsonpath"]["examples"] == ["$.token"]


def test_example_scenarios_carry_the_schema_line() -> None:
    for path in SCENARIOS.glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if "users" in data:  # fragments need not
            assert "yaml-language-server: $schema=../schemas/scenario.schema.json" in path.read_text(), path


def test_editors_accept_every_example_and_reject_a_typo() -> None:
    """What an editor or a CI schema check sees: the examples are valid, a misspelt key is not."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    for path in SCENARIOS.glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if "users" in data:
            assert not list(validator.iter_errors(data)), path
    broken = {"users": {"u": {"sequence": [{"get": "/", "hedaers": {}}]}}}
    assert list(validator.iter_errors(broken))


# one of each step kind, each accepted by lrun validate; the schema must accept each too (a step is a oneOf)
EVERY_STEP_KIND = [
    {"get": "/items", "name": "items", "think": "1s"},
    {"post": "/orders", "json": {"id": 1}},
    {"think": "1s"},
    {"think": {"between": ["1s", "2s"]}},
    {"set": {"x": "{{ 1 + 1 }}"}},
    {"sequence": [{"get": "/"}, {"think": 0.5}]},
    {"transaction": "browse", "steps": [{"get": "/"}, {"think": "1s"}]},
    {"rendezvous": "sale"},
    {"if": "{{ x == 2 }}", "then": [{"get": "/a"}], "else": [{"think": "1s"}]},
    {"loop": 3, "steps": [{"get": "/"}]},
]


def test_every_step_kind_lrun_accepts_the_schema_accepts(tmp_path) -> None:
    import jsonschema

    from runner.scenario import load_scenario

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    for step in EVERY_STEP_KIND:
        data = {"host": "demo", "variables": {"x": 1}, "users": {"u": {"sequence": [step]}}}
        path = tmp_path / "s.json"
        path.write_text(json.dumps(data))
        load_scenario(path)  # lrun accepts it (raises otherwise)
        assert [e.message for e in validator.iter_errors(data)] == [], step
    tasks = {"host": "demo", "users": {"u": {"tasks": [{"get": "/", "weight": 2, "think": "1s"}]}}}
    assert not list(validator.iter_errors(tasks))
    for wrong in ({"think": "1s", "hedaers": {}}, {"get": "/", "post": "/"}):
        assert list(validator.iter_errors({"users": {"u": {"sequence": [wrong]}}})), wrong


def test_every_scenario_lrun_accepts_the_schema_accepts() -> None:
    """Every example and test scenario that is a whole scenario (not a fragment) and that lrun validates."""
    import jsonschema

    from runner.errors import ScenarioError
    from runner.scenario import find_scenarios, load_scenario

    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    checked = 0
    for path in find_scenarios([SCENARIOS, ROOT / "tests"]):
        try:
            load_scenario(path)
        except ScenarioError:
            continue  # broken on purpose, or a fragment
        data = yaml.safe_load(path.read_text()) if path.suffix != ".json" else json.loads(path.read_text())
        if "include" in data:
            continue  # its keys are completed by the files it includes
        assert [e.message for e in validator.iter_errors(data)] == [], path
        checked += 1
    assert checked >= 10

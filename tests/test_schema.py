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

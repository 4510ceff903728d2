"""The JSON Schema of the scenario language, generated from the models (``lrun schema``)."""

from __future__ import annotations

import json
from typing import Any

from runner.scenario.model import HTTP_METHODS, Scenario


def scenario_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema(by_alias=True, mode="validation")
    for name in ("Request", "RequestTask"):  # a request has its method as a key: ``{think: 1s}`` is a think step
        schema["$defs"][name]["oneOf"] = [{"required": [method]} for method in HTTP_METHODS]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text() -> str:
    return json.dumps(scenario_schema(), indent=2, ensure_ascii=False) + "\n"

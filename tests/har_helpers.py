"""HAR 1.2 recordings written by hand for the import tests (``test_import*.py``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from runner.importers.convert import ImportOptions, import_har
from runner.importers.write import WriteOptions

HOST = "https://app.example.test"


def har_entry(method: str, path: str, status: int = 200, mime: str = "application/json", text: str = "", **kw: Any):
    """One HAR 1.2 entry; ``headers``, ``response_headers``, ``post`` (postData) and ``t`` (seconds) optional."""
    started = 1_800_000_000 + kw.get("t", 0.0)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started)) + f".{int(started % 1 * 1000):03d}Z"
    entry: dict[str, Any] = {
        "startedDateTime": stamp,
        "time": 5,
        "request": {
            "method": method,
            "url": path if path.startswith("http") else HOST + path,
            "httpVersion": "HTTP/1.1",
            "headers": [{"name": k, "value": v} for k, v in kw.get("headers", [])],
            "queryString": [],
            "cookies": [],
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": {
            "status": status,
            "statusText": "",
            "httpVersion": "HTTP/1.1",
            "headers": [{"name": "Content-Type", "value": mime}]
            + [{"name": k, "value": v} for k, v in kw.get("response_headers", [])],
            "cookies": [],
            "content": {"size": len(text), "mimeType": mime, "text": text},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
        },
        "cache": {},
        "timings": {"send": 0, "wait": 5, "receive": 0},
    }
    if "post" in kw:
        entry["request"]["postData"] = kw["post"]
    return entry


def write_har(path: Path, entries: list[dict[str, Any]], **log: Any) -> Path:
    path.write_text(json.dumps({"log": {"version": "1.2", "creator": {"name": "test"}, "entries": entries, **log}}))
    return path


def imported(path: Path, **write: Any) -> Any:
    return import_har(str(path), ImportOptions(write=WriteOptions(name="t", **write)))


def scenario_steps(text: str) -> list[dict[str, Any]]:
    """The request steps of an imported scenario, transactions flattened."""
    out = []
    for step in yaml.safe_load(text)["users"]["recorded"]["sequence"]:
        out += step["steps"] if "transaction" in step else [step]
    return out

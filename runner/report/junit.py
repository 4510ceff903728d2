"""JUnit XML, so CI systems (GitLab, Jenkins, GitHub test reporters, Azure …) show pass/fail natively.

``junit_xml(results)`` makes, from the results dict, one ``<testsuites>`` with these suites:

- ``run``: one test case, the run's verdict (fails when the exit code is not 0, saying why);
- ``thresholds``: one test case per threshold; a failure's message is ``measured X, limit OP Y``;
- ``resource thresholds``: one per resource threshold; a breached ``abort`` fails, a breached ``warn`` passes
  and is said in the suite's ``system-out`` (a warning must not turn a pipeline red);
- ``checkpoints``: one per request and checkpoint (from ``checks``), failing when the checkpoint ever failed;
  without ``checks``, one per request, failing when any of its requests failed.

``validation_junit(files)`` does the same for ``lrun validate --format junit``: one test case per file.

The layout is the one every consumer reads (Ant's, as described by the common JUnit XSDs): ``testsuites`` >
``testsuite`` (name, tests, failures, errors, skipped, time, timestamp, hostname, id, package) > ``properties``,
``testcase`` (name, classname, time) with an optional ``failure`` (message, type), ``system-out``, ``system-err``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from runner.errors import LrunError

CLASS = "lrun"


def _timestamp(iso: Any) -> str:
    """``2024-05-01T12:00:00``: the schema's dateTime without zone (the results' start is UTC)."""
    text = str(iso or "")
    return text[:19] if len(text) >= 19 and text[10] == "T" else "1970-01-01T00:00:00"


class _Suite:
    def __init__(self, name: str, *, timestamp: str, hostname: str, time: float, properties: dict[str, Any]) -> None:
        self.name = name
        self.timestamp = timestamp
        self.hostname = hostname
        self.time = time
        self.properties = properties
        self.cases: list[tuple[str, str, str | None, str | None, str]] = []  # name, class, message, type, detail
        self.out: list[str] = []

    def case(self, name: str, *, failure: str | None = None, kind: str = "failure", detail: str = "") -> None:
        self.cases.append((name, f"{CLASS}.{self.name.replace(' ', '_')}", failure, kind, detail))

    def element(self, index: int) -> ET.Element:
        failures = sum(1 for c in self.cases if c[2] is not None)
        suite = ET.Element(
            "testsuite",
            {
                "name": self.name,
                "tests": str(len(self.cases)),
                "failures": str(failures),
                "errors": "0",
                "skipped": "0",
                "time": f"{self.time:.3f}",
                "timestamp": self.timestamp,
                "hostname": self.hostname,
                "id": str(index),
                "package": CLASS,
            },
        )
        properties = ET.SubElement(suite, "properties")
        for key, value in self.properties.items():
            ET.SubElement(properties, "property", {"name": key, "value": "" if value is None else str(value)})
        for name, classname, failure, kind, detail in self.cases:
            case = ET.SubElement(suite, "testcase", {"name": name, "classname": classname, "time": "0"})
            if failure is not None:
                element = ET.SubElement(case, "failure", {"message": failure, "type": kind or "failure"})
                element.text = detail or failure
        ET.SubElement(suite, "system-out").text = "\n".join(self.out)
        ET.SubElement(suite, "system-err").text = ""
        return suite


def _document(name: str, suites: Sequence[_Suite]) -> str:
    root = ET.Element(
        "testsuites",
        {
            "name": name,
            "tests": str(sum(len(s.cases) for s in suites)),
            "failures": str(sum(1 for s in suites for c in s.cases if c[2] is not None)),
            "errors": "0",
            "time": f"{max((s.time for s in suites), default=0.0):.3f}",
        },
    )
    for index, suite in enumerate(suites):
        root.append(suite.element(index))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _threshold_text(verdict: dict[str, Any]) -> tuple[str, str]:
    """(test name, failure message) of a threshold verdict."""
    from runner.thresholds import parse_rule

    scope = verdict.get("request") or "all requests"
    name = f"{verdict.get('expression')} [{scope}]"
    try:
        rule = parse_rule(str(verdict.get("expression")))
        measured, limit = rule.show(verdict.get("actual")), rule.show(rule.limit)
    except ValueError:
        measured, limit = str(verdict.get("actual")), str(verdict.get("limit"))
    bound = f"limit {verdict.get('operator', '')} {limit}".replace("  ", " ")
    if verdict.get("actual") is None:
        return name, f"{verdict.get('detail') or 'no data'}; {bound}"
    return name, f"measured {measured}, {bound}"


def junit_xml(results: dict[str, Any]) -> str:
    """The JUnit XML document of a run (see the module docstring)."""
    total = results.get("total") or {}
    common: dict[str, Any] = {
        "timestamp": _timestamp(results.get("start")),
        "hostname": socket.gethostname() or "localhost",
        "time": float(results.get("duration_s") or 0.0),
        "properties": {
            "scenario": results.get("scenario"),
            "host": results.get("host"),
            "command": results.get("command"),
            "lrun_version": results.get("lrun_version"),
            "requests": total.get("requests"),
            "failures": total.get("failures"),
            "rps": total.get("rps"),
            "p95_ms": (total.get("percentiles") or {}).get("95"),
        },
    }
    scenario = results.get("scenario") or "lrun"
    run = _Suite("run", **common)
    code = results.get("exit_code")
    verdict = f"{total.get('requests', 0)} requests, {total.get('failures', 0)} failed; {results.get('stop_reason')}"
    run.case(
        f"{scenario}: the run passes",
        failure=None if results.get("passed") else f"exit code {code}: {verdict}",
        kind="RunFailed",
        detail="\n".join([verdict, *[str(w) for w in results.get("warnings") or []]]),
    )
    run.out += [f"warning: {w}" for w in results.get("warnings") or []]
    suites = [run]

    common["properties"] = {}  # said once, in the first suite
    thresholds = _Suite("thresholds", **common)
    for item in results.get("thresholds") or []:
        name, message = _threshold_text(item)
        thresholds.case(name, failure=None if item.get("passed") else message, kind="ThresholdFailed")
    suites.append(thresholds)

    resources = _Suite("resource thresholds", **common)
    for item in results.get("resource_thresholds") or []:
        breached = not item.get("passed")
        abort = item.get("action") == "abort"
        resources.case(
            str(item.get("expression")),
            failure=str(item.get("detail")) if breached and abort else None,
            kind="ResourceThresholdFailed",
        )
        if breached and not abort:
            resources.out.append(f"warning: {item.get('expression')}: {item.get('detail')}")
    if resources.cases:
        suites.append(resources)

    checkpoints = _Suite("checkpoints", **common)
    checks = results.get("checks")
    if checks:
        for check in checks:
            where = f"{check.get('method') or ''} {check.get('name') or ''}".strip()
            passed, failed = check.get("passed") or 0, check.get("failed") or 0
            checkpoints.case(
                f"{where}: {check.get('check')}",
                failure=f"failed {failed} of {passed + failed} times" if failed else None,
                kind="CheckpointFailed",
            )
    else:
        errors = results.get("errors") or []
        for entry in results.get("requests") or []:
            where = f"{entry.get('method') or ''} {entry.get('name') or ''}".strip()
            failed = entry.get("failures") or 0
            messages = [
                f"{e.get('count')} × {e.get('message')}"
                for e in errors
                if e.get("method") == entry.get("method") and e.get("name") == entry.get("name")
            ]
            checkpoints.case(
                f"{where}: no failed requests",
                failure=f"{failed} of {entry.get('requests')} requests failed" if failed else None,
                kind="RequestsFailed",
                detail="\n".join(messages),
            )
    suites.append(checkpoints)
    return _document(f"lrun: {scenario}", suites)


def validation_junit(files: Sequence[dict[str, Any]], *, strict: bool = False) -> str:
    """JUnit XML of ``lrun validate``: one test case per file, failing with its problems."""
    from datetime import UTC, datetime

    suite = _Suite(
        "validate",
        timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        hostname=socket.gethostname() or "localhost",
        time=0.0,
        properties={"strict": str(strict).lower()},
    )
    for file in files:
        problems = file["problems"]
        counted = [p for p in problems if p["severity"] == "error" or (strict and p["severity"] != "info")]
        lines = [p["text"] for p in problems]
        first = counted[0] if counted else None
        message = f"{first['line']}:{first['col']}: {first['message']}" if first else None
        if message and len(counted) > 1:
            message += f" (and {len(counted) - 1} more)"
        suite.case(file["path"], failure=message, kind="ScenarioInvalid", detail="\n".join(lines))
        suite.out += [p["text"] for p in problems if p not in counted]
    return _document("lrun validate", [suite])


def write_junit(results: dict[str, Any], path: str | os.PathLike[str]) -> None:
    try:
        Path(path).write_text(junit_xml(results), encoding="utf-8")
    except OSError as exc:
        raise LrunError(f"cannot write the JUnit XML {path}: {exc.strerror or exc}") from None

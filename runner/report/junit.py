"""JUnit XML, so CI systems (GitLab, Jenkins, GitHub test reporters, Azure …) show pass/fail natively.

``junit_xml(results)`` makes, from the typed results, one ``<testsuites>`` with these suites:

- ``run``: one test case, the run's verdict (fails when the exit code is not 0, saying why);
- ``load``: where the load did not happen as planned (``load_warnings``), a test case per warning: passing
  and said in ``system-out``, failing only in a run that failed (``--strict``);
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
from runner.report.formats import threshold_figures
from runner.report.model import Results, Verdict
from runner.scenario.windows import split_over

CLASS = "lrun"


def _timestamp(text: str) -> str:
    """``2024-05-01T12:00:00``: the schema's dateTime without zone (the results' start is UTC)."""
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


def _threshold_text(verdict: Verdict) -> tuple[str, str]:
    """(test name, failure message) of a threshold verdict."""
    name = f"{verdict.expression} [{verdict.request or 'all requests'}]"
    measured, limit = threshold_figures(verdict)
    if verdict.actual is None:
        return name, f"{measured}; limit {limit}"
    window = f" ({verdict.detail})" if split_over(verdict.expression)[1] else ""  # a live SLO window: its breaches
    return name, f"measured {measured}, limit {limit}{window}"


def _ran(results: Results) -> dict[str, Any]:
    """What actually ran, as properties: users asked and at most running, requests cut at the stop, arrivals."""
    users, cut, arrivals = results.user_counts, results.interrupted, results.arrivals
    return {
        "users_max": results.users_max,
        **({"users_asked": users.asked, "users_started": users.started} if users is not None else {}),
        **({"interrupted": cut.total} if cut is not None else {}),
        **({"arrivals_planned": arrivals.planned, "arrivals_started": arrivals.started} if arrivals else {}),
    }


def junit_xml(results: Results) -> str:
    """The JUnit XML document of a run (see the module docstring)."""
    total = results.total
    common: dict[str, Any] = {
        "timestamp": _timestamp(results.start),
        "hostname": socket.gethostname() or "localhost",
        "time": float(results.duration_s),
        "properties": {
            "scenario": results.scenario,
            "host": results.host,
            "command": results.command,
            "lrun_version": results.lrun_version,
            "requests": total.requests,
            "failures": total.failures,
            "rps": total.rps,
            "p95_ms": total.percentiles.get("95"),
            **_ran(results),
        },
    }
    scenario = results.scenario or "lrun"
    warnings = results.warnings or []
    run = _Suite("run", **common)
    verdict = f"{total.requests} requests, {total.failures} failed; {results.stop_reason}"
    run.case(
        f"{scenario}: the run passes",
        failure=None if results.passed else f"exit code {results.exit_code}: {verdict}",
        kind="RunFailed",
        detail="\n".join([verdict, *warnings]),
    )
    run.out += [f"warning: {w}" for w in warnings]
    suites = [run]
    noted = results.load_warnings or []
    if noted:  # the load did not happen as planned: said; red only when the run failed (--strict, or anyway)
        load = _Suite("load", **{**common, "properties": {}})
        for warning in noted:
            load.case(warning.kind, failure=None if results.passed else warning.message, kind="LoadNotAsPlanned")
            load.out.append(f"warning: {warning.message}")
        suites.append(load)

    common["properties"] = {}  # said once, in the first suite
    thresholds = _Suite("thresholds", **common)
    for item in results.thresholds:
        name, message = _threshold_text(item)
        thresholds.case(name, failure=None if item.passed else message, kind="ThresholdFailed")
    suites.append(thresholds)

    resources = _Suite("resource thresholds", **common)
    for rv in results.resource_thresholds or []:
        breached, abort = not rv.passed, rv.action == "abort"
        resources.case(rv.expression, failure=rv.detail if breached and abort else None, kind="ResourceThresholdFailed")
        if breached and not abort:
            resources.out.append(f"warning: {rv.expression}: {rv.detail}")
    if resources.cases:
        suites.append(resources)

    checkpoints = _Suite("checkpoints", **common)
    if results.checks:
        for check in results.checks:
            where = f"{check.method} {check.name}".strip()
            checkpoints.case(
                f"{where}: {check.check}",
                failure=f"failed {check.failed} of {check.passed + check.failed} times" if check.failed else None,
                kind="CheckpointFailed",
            )
    else:
        for entry in results.requests:
            where = f"{entry.method} {entry.name}".strip()
            messages = [
                f"{e.count} × {e.message}" for e in results.errors if (e.method, e.name) == (entry.method, entry.name)
            ]
            checkpoints.case(
                f"{where}: no failed requests",
                failure=f"{entry.failures} of {entry.requests} requests failed" if entry.failures else None,
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


def write_junit(results: Results, path: str | os.PathLike[str]) -> None:
    try:
        Path(path).write_text(junit_xml(results), encoding="utf-8")
    except OSError as exc:
        raise LrunError(f"cannot write the JUnit XML {path}: {exc.strerror or exc}") from None

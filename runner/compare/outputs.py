"""The comparison for machines: its JSON (the ``Comparison`` model's dump) and JUnit XML, a test case per gated
metric (failing on a regression), in the layout of ``runner.report.junit``."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from runner.compare.console import change_text, value_text
from runner.compare.model import Comparison
from runner.errors import LrunError
from runner.report.junit import _document, _Suite, _timestamp


def junit_xml(comparison: Comparison) -> str:
    suite = _Suite(
        "regression gate",
        timestamp=_timestamp(comparison.new.start),
        hostname=socket.gethostname() or "localhost",
        time=0.0,
        properties={
            "base": comparison.base.file,
            "new": comparison.new.file,
            "scenario": comparison.new.scenario,
            "method": comparison.method,
            "rules": ", ".join(comparison.rules),
        },
    )
    for m in comparison.metrics:
        if m.verdict == "off":
            continue
        figures = f"{value_text(m.metric, m.base)} -> {value_text(m.metric, m.new)} ({change_text(m)})"
        failure = f"{figures}: beyond {m.rule} and noise; {m.test}" if m.verdict == "regression" else None
        suite.case(f"{m.request}: {m.metric}", failure=failure, kind="Regression")
        if m.verdict != "regression":
            suite.out.append(f"{m.request}: {m.metric} {figures}: {m.verdict.replace('_', ' ')}")
    suite.out += [f"only in the {'baseline' if u.only_in == 'base' else 'new run'}: {u.request}" for u in
                  comparison.unmatched]  # fmt: skip
    suite.out += [f"warning: {w}" for w in comparison.warnings]
    return _document(f"lrun compare: {comparison.new.scenario}", [suite])


def _write(path: str | os.PathLike[str], text: str, what: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise LrunError(f"cannot write the {what} {path}: {exc.strerror or exc}") from None


def write_junit(comparison: Comparison, path: str | os.PathLike[str]) -> None:
    _write(path, junit_xml(comparison), "JUnit XML")


def write_json(comparison: Comparison, path: str | os.PathLike[str]) -> None:
    text = json.dumps(comparison.model_dump(mode="json"), indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    _write(path, text, "comparison JSON")

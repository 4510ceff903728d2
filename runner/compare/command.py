"""``lrun compare BASE NEW`` and the gate of ``lrun SCENARIO --baseline BASE``: read, judge, print, write."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from runner.compare.console import report
from runner.compare.gate import check_scopes, compare
from runner.compare.model import Comparison
from runner.compare.rules import Rule, rule_set
from runner.errors import LrunError
from runner.report.model import Results


@dataclass(frozen=True)
class Outputs:
    json: str | None = None
    junit: str | None = None
    html: str | None = None
    apdex_t_ms: float | None = None  # the HTML report's Apdex T (None: the baseline's, or 500 ms)

    def check(self) -> None:
        """``LrunError`` for a path that cannot be written: before any work (or any load)."""
        from runner.output_paths import check_writable

        for path, option in ((self.json, "--json"), (self.junit, "--junit"), (self.html, "--html")):
            if path:
                check_writable(path, option)


def rules(texts: Sequence[str]) -> list[Rule]:
    return rule_set(list(texts))


def gate(
    base: Results,
    new: Results,
    base_file: str,
    new_file: str,
    given: list[Rule],
    outputs: Outputs,
    out: TextIO,
) -> Comparison:
    """Compare, print the table and write the outputs; ``LrunError`` for runs that do not compare."""
    check_scopes(given, base, new)
    comparison = compare(base, new, given, base_file, new_file)
    print(report(comparison), file=out)
    from runner.compare import outputs as files

    if outputs.json:
        files.write_json(comparison, outputs.json)
    if outputs.junit:
        files.write_junit(comparison, outputs.junit)
    if outputs.html:
        from runner.compare.html import write_html

        write_html(comparison, base, new, outputs.html, outputs.apdex_t_ms)
    return comparison


def baseline_gate(path: str, fail_on: Sequence[str], scenario: str, json_file: str | None) -> Callable[[Any], int]:
    """``lrun SCENARIO --baseline FILE``: the baseline read and checked now (``LrunError``: bad input, before any
    load); returns the gate that judges the run's outcome and gives the exit code (the run's failure, or 1 on a
    regression, or 2 when the run cannot be compared)."""
    from runner.report.results import read_json

    given = rules(fail_on)
    base = read_json(path)
    if base.scenario != scenario:
        raise LrunError(f"{path} is a run of scenario {base.scenario!r}, this is {scenario!r}: a baseline must be "
                        "a run of the same scenario")  # fmt: skip

    def judge(outcome: Any) -> int:
        if not outcome.results:
            return int(outcome.exit_code)
        print(file=sys.stdout)
        try:
            comparison = gate(base, outcome.typed, path, json_file or "this run", given, Outputs(), sys.stdout)
        except LrunError as exc:
            print(f"lrun: --baseline {exc}", file=sys.stderr)
            return max(int(outcome.exit_code), 2)
        return max(int(outcome.exit_code), comparison.exit_code)

    return judge

"""The typed result of ``lrun compare`` (``--json FILE``): the verdict of each gated metric of two runs."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Verdict = Literal["regression", "improvement", "within_limit", "noise", "no_data", "off"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class RunRef(_Open):
    """One of the two runs compared."""

    file: str = Field(description="The results file.")
    scenario: str = Field(description="Its scenario's name.")
    start: str = Field(description="When it started, ISO 8601 UTC.")
    lrun_version: str = Field(description="The lrun that wrote it.")
    requests: int = Field(description="Its requests in all.")
    measured_s: float = Field(description="Seconds its rates are divided by.")


class Interval(_Open):
    """A percentile's confidence interval in milliseconds; ``high`` null where too few requests bound it."""

    low: float = Field(description="The lower bound, ms.")
    high: float | None = Field(description="The upper bound, ms; null: unbounded (too few requests).")


class Gated(_Open):
    """One metric of one request (or of all requests) in both runs, and its verdict."""

    request: str = Field(description='The request\'s label ("GET /item"), or "total" for all requests.')
    metric: str = Field(description="p50, p90, p95, p99 (ms), errors (the failure ratio) or rps (requests/s).")
    rule: str = Field(description='The rule applied ("p95 +10%"; "p95 off": shown, not judged).')
    base: float | None = Field(description="The baseline's value (ms, a ratio for errors, per s); null: no data.")
    new: float | None = Field(
        description="The new run's value, in the same unit; null: no data. The total's percentiles: at the "
        "baseline's mix of request names (the new run's requests of each name weighted to the share that name had "
        "of the baseline's)."
    )
    change: float | None = Field(
        description="new - base in the metric's unit (ms; for errors percentage points; requests/s)."
    )
    change_ratio: float | None = Field(
        description="new / base - 1 (0.12 is +12%); null where base is 0 or there is no data."
    )
    significant: bool = Field(description="The change is beyond run-to-run noise by the statistical test.")
    test: str = Field(description="What the test found, for people (the intervals, or z).")
    base_interval: Interval | None = Field(None, description="Percentiles: the baseline's confidence interval.")
    new_interval: Interval | None = Field(None, description="Percentiles: the new run's confidence interval.")
    base_inflation: float | None = Field(
        None, description="Percentiles: the baseline's variance inflation D (≥ 1; see method)."
    )
    new_inflation: float | None = Field(None, description="Percentiles: the new run's variance inflation D.")
    z: float | None = Field(None, description="errors and rps: the test's z statistic (positive: the value rose).")
    verdict: Verdict = Field(
        description="regression (significant and beyond the rule: fails), improvement (the same, the good way), "
        "within_limit (significant, smaller than the rule), noise (not significant), no_data, off (no rule)."
    )


class Unmatched(_Open):
    """A request name only one of the runs has: reported, not judged."""

    request: str = Field(description="Its label.")
    only_in: Literal["base", "new"] = Field(description="The run that has it.")
    requests: int = Field(description="Its requests in that run.")


class Comparison(_Open):
    """``lrun compare BASE NEW``: each gated metric per request and in total, with the statistical rule used."""

    format: Literal["lrun-comparison"] = Field("lrun-comparison", description='Always "lrun-comparison".')
    format_version: Literal[1] = Field(1, description="The version of this format.")
    base: RunRef = Field(description="The baseline run.")
    new: RunRef = Field(description="The run judged against it.")
    method: str = Field(description="The statistical rule, with its parameters, in words.")
    interval_confidence: float = Field(description="Each run's percentile interval's confidence (0.95).")
    test_z: float = Field(description="The |z| beyond which the error-rate and throughput tests are significant.")
    rules: list[str] = Field(description="The rules in force: the defaults, then those given (later ones win).")
    metrics: list[Gated] = Field(description="Every metric compared: the total's first, then each request's.")
    unmatched: list[Unmatched] = Field([], description="Requests only one run has.")
    warnings: list[str] = Field([], description="Why the comparison may mislead (the loads differ …).")
    regressions: int = Field(description="Metrics whose verdict is regression.")
    improvements: int = Field(description="Metrics whose verdict is improvement.")
    passed: bool = Field(description="No regression.")
    exit_code: int = Field(description="1 on a regression, else 0.")


def comparison_schema_text() -> str:
    """The JSON Schema of a comparison file (``lrun schema --comparison``)."""
    schema = Comparison.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "lrun comparison"
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"

"""``lrun import --verify``: VuGen's replay scan. One user replays the imported scenario; the first step whose
status differs from the recording is named, with the values that changed between recording and replay."""

from __future__ import annotations

import re
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from runner.importers.correlate import looks_like_token, script_variables
from runner.importers.har import json_document
from runner.importers.steps import Step

BORING = frozenset({"date", "content-length", "server", "etag", "last-modified", "expires", "age", "keep-alive"})


@dataclass
class Verdict:
    replayed: list[tuple[Step, int]] = field(default_factory=list)  # (step, replay status)
    failed_step: int | None = None  # index into the steps
    message: str = ""
    candidates: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.failed_step is None

    def lines(self) -> list[str]:
        out = []
        for k, (step, status) in enumerate(self.replayed):
            mark = "ok  " if _same(step.entry.status, status) else "DIFF"
            out.append(f"  {mark} #{k + 1} {step.label}: {status or 'no response'} (recorded {step.entry.status})")
        if self.passed:
            out.append(f"verify: every status as recorded ({len(self.replayed)} requests)")
        else:
            out.append(f"verify: {self.message}")
            if self.candidates:
                out.append("  values that changed between the recording and the replay (candidates to correlate):")
                out += [f"    {c}" for c in self.candidates]
        return out


def _same(recorded: int, replayed: int) -> bool:
    return replayed == recorded or (recorded == 304 and replayed == 200)  # no cache in a replay


def sources(text: str, headers: list[tuple[str, str]]) -> dict[str, str]:
    """Where responses keep dynamic values, by place: JSON fields, inputs, meta tags, script variables, headers."""
    found: dict[str, str] = {}
    document: Any = json_document(text) if text[:1] in "{[" else None  # None: not JSON, or too deep
    if document is not None:
        from runner.importers.correlate import json_leaves

        found.update({f"json {p}": str(v) for p, v in json_leaves(document)})
    for tag in re.finditer(r"<(input|meta)\b([^>]*)>", text, re.IGNORECASE):
        attrs = dict(re.findall(r"""([\w-]+)\s*=\s*["']([^"']*)["']""", tag.group(2)))
        name = attrs.get("name") or attrs.get("property") or attrs.get("id")
        value = attrs.get("value") if tag.group(1).lower() == "input" else attrs.get("content")
        if name and value is not None:
            found[f"{tag.group(1).lower()} {name}"] = value
    for match in script_variables(text):
        found.setdefault(f"script variable {match.group(1)}", match.group(3))
    for name, value in headers:
        if name.lower() == "set-cookie":
            cookie, _, rest = value.partition("=")
            found[f"cookie {cookie.strip()}"] = rest.split(";", 1)[0]
        elif name.lower() not in BORING:
            found[f"header {name}"] = value
    return found


def compare(steps: list[Step], results: list[Any], rendered: list[str]) -> Verdict:
    """Statuses of the replay (``results``: RequestResults in step order) against the recording."""
    verdict = Verdict()
    for k, step in enumerate(steps):
        if k >= len(results):
            verdict.failed_step = k
            verdict.message = f"#{k + 1} {step.label} was not replayed: the user stopped after #{len(results)}"
            break
        result = results[k]
        verdict.replayed.append((step, result.status))
        if not _same(step.entry.status, result.status):
            verdict.failed_step = k
            verdict.message = (
                f"first difference at #{k + 1} {step.label}: status {result.status or 'none'}, "
                f"recorded {step.entry.status}" + (f" ({result.failure})" if not result.status else "")
            )
            break
    if verdict.failed_step is None:
        return verdict
    failing = rendered[verdict.failed_step] if verdict.failed_step < len(rendered) else ""
    for k in range(min(verdict.failed_step + 1, len(results))):
        response = results[k].response
        if response is None:
            continue
        recorded = sources(steps[k].entry.response_text or "", steps[k].entry.response_headers)
        replayed = sources(response.text, response.headers)
        for place, value in recorded.items():
            new = replayed.get(place)
            if new is None or new == value or not looks_like_token(value, 6):
                continue
            note = "  <- sent as recorded by the failing step" if value in failing else ""
            verdict.candidates.append(f"#{k + 1} {steps[k].label} {place}: recorded {value!r}, replay {new!r}{note}")
    return verdict


def replay(scenario: str, host: str | None) -> list[Any]:
    """One user of the imported scenario through one iteration; its RequestResults in order."""
    from runner.compiler import CompileOptions, compile_scenario, needs_demo
    from runner.debug import TraceRuntime, debug_users
    from runner.scenario import load_scenario

    results: list[Any] = []

    class Recorder(TraceRuntime):
        def on_request(self, user: Any, result: Any) -> None:
            results.append(result)
            super().on_request(user, result)

    loaded = load_scenario(scenario)
    with ExitStack() as stack:
        demo_url = None
        if needs_demo(loaded.model, host):
            from runner.demo import start_demo

            demo_url = stack.enter_context(start_demo()).url
        compiled = compile_scenario(loaded, CompileOptions(host=host, demo_url=demo_url))
        debug_users(compiled.user_classes, Recorder(echo=lambda _line: None, color=False), compiled.setup)
    return results

"""``lrun import --verify``: VuGen's replay scan. One user replays the imported scenario (with another data row
when there is a pool); the first step whose status or checkpoints differ from the recording, or that sends an id
this replay's server did not give, is named, with the values that changed between recording and replay."""

from __future__ import annotations

import re
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from runner.importers.checks import is_login
from runner.importers.correlate import looks_like_token, script_variables
from runner.importers.har import json_document
from runner.importers.links import is_id
from runner.importers.steps import Step
from runner.importers.write import POOL, Pool, step_dict

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


def _ids_sent(step: Step, url: str) -> list[str]:
    """The ids the replay sent in its URL that the scenario holds literally (not from a variable)."""
    parts = urlsplit(url)
    sent = [s for s in parts.path.split("/") if is_id(s)] + [v for _, v in parse_qsl(parts.query) if is_id(v)]
    literal = set(step.url.split("/")) | {v for _, v in step.query}
    return [v for v in sent if v in literal]


def _gave(texts: list[str], value: str) -> bool:
    pattern = re.compile(rf"(?<![\w-]){re.escape(value)}(?![\w-])")
    return any(pattern.search(text) for text in texts)


def stale_id(steps: list[Step], results: list[Any], created: set[str]) -> tuple[int, str] | None:
    """The first request of the replay that sends, as recorded, an id a recorded response gave (or the recording
    created) but no response of this replay gave: (its index, why)."""
    recorded: list[str] = []
    replayed: list[str] = []
    for k, (step, result) in enumerate(zip(steps, results, strict=False)):
        for value in _ids_sent(step, result.url or ""):
            if (value in created or _gave(recorded, value)) and not _gave(replayed, value):
                return k, (
                    f"#{k + 1} {step.label} sends {value!r} as recorded, but no response of this replay gave it"
                    + (" (the recording created it)" if value in created else "")
                    + ": the request reads the recording's object, not this replay's; correlate it"
                )
        recorded.append(step.entry.response_text or "")
        response = result.response
        replayed.append(response.text if response is not None else "")
    return None


def compare(steps: list[Step], results: list[Any], rendered: list[str], created: set[str] | None = None) -> Verdict:
    """Statuses and checkpoints of the replay (``results``: RequestResults in step order) against the recording;
    ``created``: ids the import found the recording created (a replay that sends one is reading stale data)."""
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
        if result.failure:
            verdict.failed_step = k
            verdict.message = f"first difference at #{k + 1} {step.label}: {result.failure}"
            break
    stale = stale_id(steps, results, created or set())
    if stale is not None and (verdict.failed_step is None or stale[0] < verdict.failed_step):
        verdict.failed_step, verdict.message = stale
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


def verify_row(steps: list[Step], pool: Pool) -> tuple[Pool, str]:
    """Another data row for the replay, and what changed: what the user typed (a title, a search), except what a
    login sends (the credentials must stay valid), numbers and e-mail addresses (a form may check their shape)."""
    login = " ".join(repr(step_dict(step)) for step in steps if is_login(step))
    row = [
        value if f"{POOL}.{column} " in login or not value or value.isdigit() or "@" in value else f"{value} (verify)"
        for column, value in zip(pool.columns, pool.row, strict=True)
    ]
    changed = [f"{c}={v!r}" for c, v, old in zip(pool.columns, row, pool.row, strict=True) if v != old]
    return Pool(pool.columns, row), ", ".join(changed) or "the recorded one: every column is a credential"


def replay(scenario: str, host: str | None, data_dir: str | None = None) -> list[Any]:
    """One user of the imported scenario through one iteration; its RequestResults in order."""
    from runner.compile.compiler import CompileOptions, compile_scenario, needs_demo
    from runner.debug import TraceRuntime, debug_users
    from runner.scenario import load_scenario

    results: list[Any] = []

    class Recorder(TraceRuntime):
        def on_request(self, user: Any, result: Any) -> None:
            results.append(result)
            super().on_request(user, result)

    loaded = load_scenario(scenario, data_dir)
    with ExitStack() as stack:
        demo_url = None
        if needs_demo(loaded.model, host):
            from runner.demo import start_demo

            demo_url = stack.enter_context(start_demo()).url
        compiled = compile_scenario(loaded, CompileOptions(host=host, demo_url=demo_url))
        debug_users(compiled.user_classes, Recorder(echo=lambda _line: None, color=False), compiled.setup)
    return results

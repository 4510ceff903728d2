"""The scenario out: YAML that reads as if written by hand, with comments listing the correlations.

Pages become transactions named by their title, recorded gaps become think times, each request gets a status
checkpoint from the recording (and the page title as a text checkpoint where it is stable), and ``pool``
turns the fields the user typed into a CSV data pool next to the scenario.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from runner.importers.correlate import Correlations
from runner.importers.har import Recording, printable
from runner.importers.steps import Step
from runner.importers.wssteps import requests_kept, ws_step_dict
from runner.scenario.types import parse_duration

_BASE_DUMPER: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: 50 MB in seconds
FLOW_WIDTH = 90  # a mapping or list of scalars this long at most is written on one line, {a: 1, b: 2}
NO_WRAP = 2**31 - 1  # libyaml's largest width
MAX_THINK = 600.0  # seconds: a longer recorded gap is a pause of the recording, not of the user


class Dumper(_BASE_DUMPER):  # type: ignore[valid-type,misc]
    """Short collections of scalars on one line, longer ones one item a line; a scalar is never folded (with
    no width limit a line never breaks inside ``{{ … }}``, and each value stays the line it was)."""

    def represent_str(self, data: str) -> yaml.ScalarNode:
        # YAML reads any line break in a plain or quoted scalar as \n (a recorded \r\n would become \n):
        # a string with a line break or another unprintable character is double-quoted, where they are escapes
        return self.represent_scalar("tag:yaml.org,2002:str", data, style=None if data.isprintable() else '"')

    def represent_mapping(self, tag: str, mapping: Any, flow_style: bool | None = None) -> yaml.MappingNode:
        node = super().represent_mapping(tag, mapping, flow_style)
        node.flow_style = node.flow_style and _short_flow(node.value)
        return node

    def represent_sequence(self, tag: str, sequence: Any, flow_style: bool | None = None) -> yaml.SequenceNode:
        node = super().represent_sequence(tag, sequence, flow_style)
        node.flow_style = node.flow_style and _short_flow(node.value)
        return node


Dumper.add_representer(str, Dumper.represent_str)


def _short_flow(items: list[Any]) -> bool:
    nodes = [n for item in items for n in (item if isinstance(item, tuple) else (item,))]
    return sum(len(str(n.value)) + 4 for n in nodes) <= FLOW_WIDTH and all("\n" not in str(n.value) for n in nodes)


POOL = "inputs"
TYPED_INPUTS = frozenset({"", "text", "password", "email", "search", "tel", "url"})
TITLE = re.compile(r"<title[^>]*>([^<]{1,120})</title>", re.IGNORECASE)


@dataclass
class WriteOptions:
    name: str
    think: str = "recorded"  # recorded | none | max:DURATION
    pool: bool = False
    pool_file: str = ""  # the CSV's name, relative to the scenario


@dataclass
class Pool:
    columns: list[str] = field(default_factory=list)
    row: list[str] = field(default_factory=list)

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerows([self.columns, self.row])
        return out.getvalue()


def think_limit(mode: str) -> float | None:
    """Seconds at most for ``max:2s``; None for ``recorded``; 0 for ``none``. ValueError when malformed."""
    if mode == "recorded":
        return None
    if mode == "none":
        return 0.0
    if mode.startswith("max:"):
        return parse_duration(mode[4:])
    raise ValueError(f"--think {mode!r}: use recorded, none or max:DURATION (max:2s)")


def set_think(steps: list[Step], mode: str) -> None:
    """The gap between the end of a request and the start of the next, as think time after the first."""
    limit = think_limit(mode)
    for step, following in pairwise(steps):
        gap = following.entry.started - (step.entry.started + step.entry.duration)
        if gap >= 0.2 and following.entry.started and step.entry.started:
            step.think = round(min(gap, MAX_THINK) if limit is None else min(gap, limit, MAX_THINK), 1)


def title_of(step: Step) -> str | None:
    """The page title, when the response is an HTML page and the title holds nothing that changes."""
    entry = step.entry
    if "html" not in entry.response_type.lower() or not 200 <= entry.status < 300 or not entry.response_text:
        return None
    match = TITLE.search(entry.response_text)
    if match is None:
        return None
    title = match.group(1).strip()
    if not title or re.search(r"\d{3,}|[{}]", title):
        return None
    return title


def _typed_fields(steps: list[Step]) -> set[str]:
    names = set()
    for step in steps:
        text = step.entry.response_text or ""
        if "html" not in step.entry.response_type.lower():
            continue
        for tag in re.finditer(r"<(input|textarea)\b([^>]*)>", text, re.IGNORECASE):
            attrs = dict(re.findall(r"""(\w+)\s*=\s*["']([^"']*)["']""", tag.group(2)))
            typed = tag.group(1).lower() == "textarea" or attrs.get("type", "").lower() in TYPED_INPUTS
            if typed and attrs.get("name"):
                names.add(attrs["name"])
    return names


def column_name(field: str) -> str:
    """A form field's name as a pool column templates can name (``{{ inputs.NAME }}``): an identifier."""
    name = re.sub(r"\W+", "_", field).strip("_")
    if not name.isidentifier():  # a digit first, or ² (a word character, no part of an identifier)
        name = "field_" + re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    return name.rstrip("_") or "field"


def parameterise(steps: list[Step]) -> Pool:
    """Fields the user typed (form fields of text inputs on a recorded page) become ``{{ inputs.name }}``."""
    typed, pool = _typed_fields(steps), Pool()
    seen: dict[tuple[str, str], str] = {}

    def column(key: str, value: str) -> str:
        if (key, value) not in seen:
            name, n = column_name(key), 2
            base = name
            while name in pool.columns:
                name, n = f"{base}_{n}", n + 1
            pool.columns.append(name)
            pool.row.append(value)
            seen[key, value] = name
        return f"{{{{ {POOL}.{seen[key, value]} }}}}"

    def swap(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(k, column(k, v) if k in typed and v and "{" not in v else v) for k, v in pairs]

    for step in steps:
        step.query = swap(step.query)
        if step.form is not None:
            step.form = swap(step.form)
        if isinstance(step.json, dict):
            for key, value in step.json.items():
                if key in typed and isinstance(value, str) and value and "{" not in value:
                    step.json[key] = column(key, value)
    return pool


def _groups(steps: list[Step], recording: Recording) -> list[tuple[str | None, list[Step]]]:
    """Steps by page: the HAR's pages when it has several, else a new page at each HTML document."""
    pages = {s.entry.page for s in steps if s.entry.page in recording.pages}
    groups: list[tuple[str | None, list[Step]]] = []
    if len(pages) > 1:
        for step in steps:
            page = recording.pages.get(step.entry.page or "")
            title = (page.title if page else None) or None
            if groups and groups[-1][0] == title:
                groups[-1][1].append(step)
            else:
                groups.append((title, [step]))
    else:
        for step in steps:
            document = step.entry.method == "GET" and "html" in step.entry.response_type.lower()
            title = title_of(step) if document else None
            if title or not groups:
                groups.append((title, [step]))
            else:
                groups[-1][1].append(step)
    names: dict[str, int] = {}
    unique = []
    for title, members in groups:
        if title:
            names[title] = names.get(title, 0) + 1
            title = title if names[title] == 1 else f"{title} ({names[title]})"
        unique.append((title, members))
    return unique


def _stats_name(step: Step) -> str | None:
    if "{{" not in step.url and not any("{{" in v for _, v in step.query):
        return None
    return re.sub(r"/[^/]*\d[^/]*(?=/|$)", "/[id]", step.entry.path)


def expected_status(recorded: int) -> int | list[int]:
    """The status a replay should get: the recorded one; 304 (the browser's cache) is a 200 without it."""
    return [200, 304] if recorded == 304 else recorded


def step_dict(step: Step) -> dict[str, Any]:
    if step.ws:
        return ws_step_dict(step)
    out: dict[str, Any] = {step.entry.method.lower(): step.url}  # the filter kept only methods steps have
    name = _stats_name(step)
    if name:
        out["name"] = name
    if step.query:
        query: dict[str, Any] = {}
        for key, value in step.query:
            query[key] = (
                [*query[key], value]
                if isinstance(query.get(key), list)
                else ([query[key], value] if key in query else value)
            )
        out["query"] = query
    headers = dict(step.headers)
    if step.body is not None and step.content_type:
        headers["Content-Type"] = step.content_type
    recorded_type = step.entry.body_type or step.entry.header("content-type") or ""
    if step.json is not None and not recorded_type.lower().startswith("application/json"):
        headers["Content-Type"] = recorded_type  # application/vnd.api+json and friends: what the API expects
    if headers:
        out["headers"] = headers
    if step.json is not None:
        out["json"] = step.json
    elif step.form is not None:
        out["form"] = dict(step.form)
    elif step.body is not None:
        out["body"] = step.body
    if not step.allow_redirects:
        out["allow_redirects"] = False
    if step.extract:
        out["extract"] = step.extract
    out["check"] = step.checks if step.checks is not None else [{"status": expected_status(step.entry.status)}]
    if step.think:
        out["think"] = f"{step.think:g}s"
    return out


def _dump(value: Any, indent: int, flow: bool | None = None) -> str:
    text = yaml.dump(value, Dumper=Dumper, sort_keys=False, default_flow_style=flow, width=NO_WRAP, allow_unicode=True)
    pad = " " * indent
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def _short(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def header_comment(recording: Recording, kept: int, summary: list[str], found: Correlations) -> list[str]:
    source = Path(recording.path).name + (f" ({recording.creator})" if recording.creator else "")
    lines = [f"Imported by `lrun import` from {source}: {len(recording.entries)} requests recorded, {kept} kept."]
    lines += [f"  {line}" for line in summary]
    if found.found:
        lines += ["", "Correlations (a value a response gave and later requests sent):"]
        for c in found.found:
            spec = ", ".join(f"{k}: {v}" for k, v in c.extractor.items())
            lines.append(f"  {c.name} = {_short(c.value)!r} from {', '.join(c.sources)} ({spec})")
            lines.append(f"      used by {'; '.join(c.uses[:6])}" + (" …" if len(c.uses) > 6 else ""))
    if found.warnings:
        lines += ["", "Not correlated: these look dynamic but no recorded response gave them; check them:"]
        for w in found.warnings:
            lines.append(f"  {_short(w.value)!r} used by {'; '.join(w.uses[:3])}: {w.why}")
    return lines


def render(
    recording: Recording,
    steps: list[Step],
    origin: str,
    found: Correlations,
    summary: list[str],
    options: WriteOptions,
    pool: Pool | None = None,
) -> str:
    """The scenario's YAML text."""
    lines = header_comment(recording, requests_kept(steps), summary, found)
    out = ["# " + printable(line) if line else "#" for line in lines]  # a recorded newline must not end a comment
    out.append(_dump({"name": options.name, "host": origin}, 0, flow=False).rstrip())
    out.append("load: {users: 1, spawn_rate: 1, iterations: 1}  # one replay: -t or -i replace the 1 iteration")
    if pool is not None and pool.columns:
        out.append("pools:")
        out.append(f"  {POOL}:                 # the fields typed while recording; add rows to vary them")
        out.append("    " + _dump({"csv": options.pool_file}, 0, flow=False).rstrip())
    out += ["users:", "  recorded:", "    sequence:"]
    for n, (title, members) in enumerate(_groups(steps, recording)):
        if n:
            out.append("")
        body = [step_dict(s) for s in members]
        if title:
            out.append(_dump([{"transaction": title, "steps": body}], 6).rstrip())
        else:
            out.append(_dump(body, 6).rstrip())
    return "\n".join(out) + "\n"

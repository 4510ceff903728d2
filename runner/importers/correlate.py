"""Automatic correlation, VuGen's record scan: a value that a response gave and a later request sent becomes an
extractor on the last response before each use, and every later occurrence becomes ``{{ name }}``.

The extractor is the most specific one that finds the value: jsonpath in JSON, xpath for HTML inputs and meta
tags, a response header or cookie, a boundary for script variables, else the shortest unique boundary around it.
Values shorter than ``min_length``, words and values the client sent before any response gave them are left
alone; values that look dynamic but no response gave are reported (computed by JavaScript, timestamps).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from runner.importers.har import json_document
from runner.importers.steps import Step, redirect_target, same_url, url_ids

RESERVED = frozenset(
    [
        "user_id",
        "user_type",
        "iteration",
        "host",
        "inputs",
        "loop",
        "true",
        "false",
        "none",
        "and",
        "or",
        "not",
        "in",
        "is",
        "if",
        "else",
    ]
)
BORING_HEADERS = frozenset(
    ["date", "content-length", "content-type", "server", "vary", "etag", "last-modified", "expires", "age"]
)
SCRIPT_VARIABLE = re.compile(r"""\b(?:var|let|const)?\s*([A-Za-z_$][\w$]*)\s*[:=]\s*(["'])([^"'\\\n]{4,})\2""")
SCRIPT_BLOCK = re.compile(r"<script\b[^>]*>(.*?)</script>", re.IGNORECASE | re.DOTALL)
TOKEN = re.compile(r"[A-Za-z0-9_\-.~+/=%]+")


@dataclass
class Correlation:
    name: str
    value: str
    extractor: dict[str, Any]
    sources: list[str] = field(default_factory=list)  # where it is extracted: "#2 GET /login"
    uses: list[str] = field(default_factory=list)  # where it is sent: "#3 POST /login form session"


@dataclass
class Uncorrelated:
    value: str
    uses: list[str]
    why: str


@dataclass
class Correlations:
    found: list[Correlation] = field(default_factory=list)
    warnings: list[Uncorrelated] = field(default_factory=list)


def looks_like_token(value: str, min_length: int) -> bool:
    """Long enough, one piece, and not a word: a candidate for correlation."""
    if len(value) < min_length or any(c.isspace() for c in value) or len(value) > 4096:
        return False
    if "{" in value or "}" in value:
        return False  # a template, or a piece of an escaped literal ({{ '{{' }}): replacing it would break it
    if value.isalpha() and len(value) < 16:
        return False  # a word (a constant, or what the user typed)
    return any(c.isdigit() for c in value) or (len(value) >= 16 and not value.islower() and not value.isupper())


def looks_dynamic(value: str) -> str | None:
    """Why a value never found in a response still looks generated, or None."""
    if re.fullmatch(r"1\d{9}(\d{3})?", value):
        return "looks like a timestamp: computed by the page (try {{ now() }})"
    if re.fullmatch(r"[0-9a-fA-F-]{16,}", value) or (
        len(value) >= 16 and re.search(r"\d", value) and re.search(r"[A-Za-z]", value)
    ):
        return "looks generated (computed by JavaScript, or given by a response the filter dropped)"
    return None


def variable_name(hint: str) -> str:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", hint)
    name = re.sub(r"\W+", "_", name).strip("_").lower() or "value"
    if not name.isidentifier():  # a recorded name: ² or ٣ is \w (and isdigit) but no part of an identifier
        name = re.sub(r"[^a-z0-9_]+", "_", name).strip("_") or "value"
    if name[0].isdigit():
        name = "v_" + name
    return name + "_value" if name in RESERVED else name


# -- where values are sent ---------------------------------------------------------------------------------


def json_leaves(document: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    """(JSONPath, value) of each scalar in a JSON document, ``$.items[0].id`` style."""
    if isinstance(document, dict):
        for key, value in document.items():
            key = str(key)
            if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                part = f".{key}"
            elif "'" in key and '"' in key:
                continue  # a JSONPath cannot name it
            else:
                part = f"['{key}']" if "'" not in key else f'["{key}"]'
            yield from json_leaves(value, path + part)
    elif isinstance(document, list):
        for i, value in enumerate(document):
            yield from json_leaves(value, f"{path}[{i}]")
    elif not isinstance(document, bool) and document is not None:
        yield path, document


def uses_of(step: Step) -> Iterator[tuple[str, str]]:
    """(where, value) for each value the request sends."""
    if "{{" not in step.url:
        for segment in step.url.split("/"):
            yield "path", segment
    for key, value in step.query:
        yield f"query {key}", value
    for name, value in step.headers:
        yield f"header {name}", value
        if " " in value:
            yield f"header {name}", value.rsplit(" ", 1)[1]
    for key, value in step.form or []:
        yield f"form {key}", value
    if step.json is not None:
        for path, value in json_leaves(step.json):
            if isinstance(value, str | int | float):
                yield f"json {path}", str(value)
    if step.body:
        for token in TOKEN.findall(step.body):
            yield "body", token


# -- where responses give them -----------------------------------------------------------------------------


@dataclass
class Response:
    """One response as correlation sees it; parsed lazily."""

    step: Step
    text: str

    @property
    def headers(self) -> list[tuple[str, str]]:
        return self.step.entry.response_headers

    @cached_property
    def document(self) -> Any:
        kind = self.step.entry.response_type.lower()
        if "json" in kind or self.text[:1] in "{[":
            return json_document(self.text)  # None: not JSON, or nested too deeply to walk
        return None

    @cached_property
    def html(self) -> Any:
        kind = self.step.entry.response_type.lower()
        if "html" not in kind and self.text.lstrip()[:1] != "<":
            return None
        import lxml.html

        try:
            return lxml.html.document_fromstring(self.text)
        except Exception:  # lxml raises several kinds on junk
            return None


def script_variables(text: str, mime: str = "") -> Iterator[re.Match[str]]:
    """``name = "value"`` and ``name: "value"`` in scripts: inside ``<script>`` blocks, or a whole script file."""
    if "javascript" in mime.lower():
        yield from SCRIPT_VARIABLE.finditer(text)
        return
    for block in SCRIPT_BLOCK.finditer(text):
        yield from SCRIPT_VARIABLE.finditer(text, block.start(1), block.end(1))


def boundary_positions(text: str, left: str, right: str) -> list[int]:
    """Start offsets of the values a boundary extractor finds (as ``runner.compile.extract`` does: non-overlapping)."""
    found, pos = [], 0
    while (lb := text.find(left, pos)) >= 0:
        start = lb + len(left)
        rb = text.find(right, start)
        if rb < 0:
            break
        found.append(start)
        pos = rb + len(right)
    return found


def shortest_boundary(text: str, value: str, at: int | None = None) -> dict[str, Any] | None:
    """The shortest left and right boundaries that find ``value`` (at offset ``at``, default its first)."""
    p = text.find(value) if at is None else at
    end = p + len(value)
    if p < 0 or end >= len(text):
        return None
    right = next((text[end:k] for k in range(end + 1, min(len(text), end + 8) + 1) if text[end:k] not in value), None)
    if right is None:
        return None
    for k in range(1, min(p, 64) + 1):
        left = text[p - k : p]
        starts = boundary_positions(text, left, right)
        if starts and starts[0] == p and text.find(right, p) == end:
            return {"boundary": {"left": left, "right": right}}
    left = text[max(0, p - 32) : p]
    starts = boundary_positions(text, left, right)
    if left and p in starts and text.find(right, p) == end:
        return {"boundary": {"left": left, "right": right}, "match": starts.index(p) + 1}
    return None


def _xpath_source(response: Response, value: str) -> tuple[dict[str, Any], str] | None:
    doc = response.html
    if doc is None:
        return None
    for tag, attribute, keys in (("input", "value", ("name", "id")), ("meta", "content", ("name", "property"))):
        for element in doc.iter(tag):
            if element.get(attribute) != value:
                continue
            for key in keys:
                name = element.get(key)
                if not name or ("'" in name and '"' in name):
                    continue
                quoted = f'"{name}"' if '"' not in name else f"'{name}'"
                xpath = f"//{tag}[@{key}={quoted}]/@{attribute}"
                values = doc.xpath(xpath)
                spec: dict[str, Any] = {"xpath": xpath}
                if values and values[0] != value:
                    spec["match"] = values.index(value) + 1
                return spec, name
    return None


def extractor_for(response: Response, value: str) -> tuple[dict[str, Any], str] | None:
    """The most specific extractor that finds ``value`` in this response, and a name hint."""
    document = response.document
    if document is not None:
        for path, leaf in json_leaves(document):
            if str(leaf) == value:
                return {"jsonpath": path}, re.split(r"[.\[\]']+", path.strip("]'"))[-1] or "value"
    found = _xpath_source(response, value)
    if found is not None:
        return found
    for name, header in response.headers:
        lower = name.lower()
        if lower == "set-cookie":
            cookie, _, rest = header.partition("=")
            if rest.split(";", 1)[0].strip('"') == value:
                return {"cookie": cookie.strip()}, cookie.strip()
        elif header == value and lower not in BORING_HEADERS:
            return {"header": name}, name
    text = response.text
    for match in script_variables(text, response.step.entry.response_type):
        if match.group(3) == value:
            left = text[match.start(1) : match.start(3)]
            if boundary_positions(text, left, match.group(2))[:1] == [match.start(3)]:
                return {"boundary": {"left": left, "right": match.group(2)}}, match.group(1)
            break
    spec = shortest_boundary(text, value)
    if spec is None:
        return None
    words = re.findall(r"[A-Za-z_][\w-]{2,}", spec["boundary"]["left"])
    return spec, words[-1] if words else ""


# -- the scan ----------------------------------------------------------------------------------------------


class _Index:
    """All responses in one string, so "the last response before step j that holds v" is one ``rfind``."""

    def __init__(self, steps: list[Step]) -> None:
        self.responses: list[Response] = []
        parts, self.starts, self.ends, pos = [], [], [], 0
        for step in steps:
            headers = "\x01".join(f"{k}: {v}" for k, v in step.entry.response_headers)
            body = step.entry.response_text or ""
            self.responses.append(Response(step, body))
            segment = headers + "\x02" + body
            parts.append(segment)
            self.starts.append(pos)
            pos += len(segment)
            self.ends.append(pos)
            pos += 1
        self.text = "\x00".join(parts)

    def last_before(self, value: str, j: int, extractor_ok: bool = True) -> int | None:
        """The index of the last response before step ``j`` that contains ``value``."""
        end = self.ends[j - 1] if j > 0 else 0
        while end > 0:
            pos = self.text.rfind(value, 0, end)
            if pos < 0:
                return None
            i = bisect_right(self.starts, pos) - 1
            if pos + len(value) <= self.ends[i]:
                return i
            end = pos + len(value) - 1
        return None


class _RequestIndex:
    """The text of every request in one string, to find the steps that may send a value without visiting all."""

    def __init__(self, steps: list[Step]) -> None:
        parts = [repr((s.url, s.query, s.headers, s.form, s.json, s.body)) for s in steps]
        self.starts, pos = [], 0
        for part in parts:
            self.starts.append(pos)
            pos += len(part) + 1
        self.text = "\x00".join(parts)

    def holding(self, value: str, first: int) -> Iterator[int]:
        """Indices of steps from ``first`` on whose request text contains ``value``."""
        needle = repr(value)[1:-1]
        pos = self.starts[first] if first < len(self.starts) else len(self.text)
        while (found := self.text.find(needle, pos)) >= 0:
            j = bisect_right(self.starts, found) - 1
            yield j
            pos = self.starts[j + 1] if j + 1 < len(self.starts) else len(self.text)


def _redirects(steps: list[Step], result: Correlations) -> None:
    """A 3xx followed by its target, when the target varies but holds no id: extract Location, go to
    ``{{ name }}``. A target with ids (``/ticket/7``) is ``importers.links``'s: each id by a regex on Location."""
    for i, step in enumerate(steps[:-1]):
        target, following = redirect_target(step.entry), steps[i + 1]
        if target is None or following.entry.method != "GET" or not same_url(target, following.entry.url):
            continue
        parts = urlsplit(target)
        if not re.search(r"\d", parts.path + parts.query) or url_ids(target):
            continue  # a constant place (/login -> /home, whatever the port): keep it readable
        segments = [s for s in urlsplit(target).path.split("/") if s and not re.search(r"\d", s)]
        name = variable_name((segments[-1] if segments else "next") + "_url")
        step.extract[name] = {"header": "Location"}
        following.url, following.query = f"{{{{ {name} }}}}", []
        result.found.append(
            Correlation(
                name,
                step.entry.response_header("location") or target,
                {"header": "Location"},
                [f"#{i + 1} {step.label}"],
                [f"#{i + 2} {following.label} url"],
            )
        )


def _location_id(step: Step, value: str, uses: list[tuple[int, str]]) -> bool:
    """Is ``value`` an id of the response's ``Location``, sent only in URLs?"""
    location = step.entry.response_header("location")
    return (
        location is not None
        and value in url_ids(location)
        and all(where == "path" or where.startswith("query ") for _, where in uses)
    )


def _replace(value: Any, old: str, new: str) -> tuple[Any, bool]:
    if isinstance(value, str):
        if value == old:
            return new, True
        if old in value:
            return value.replace(old, new), True
        return value, False
    if isinstance(value, int | float) and not isinstance(value, bool) and str(value) == old:
        return new, True
    if isinstance(value, dict):
        changed = False
        out = {}
        for k, v in value.items():
            out[k], c = _replace(v, old, new)
            changed |= c
        return out, changed
    if isinstance(value, list):
        pairs = [_replace(v, old, new) for v in value]
        return [p[0] for p in pairs], any(p[1] for p in pairs)
    return value, False


def _substitute(step: Step, old: str, new: str) -> list[str]:
    """Put ``new`` in place of ``old`` everywhere in the request; where it was."""
    where = []
    step.url, c = _replace(step.url, old, new)
    if c:
        where.append("url")
    for attr, kind in (("query", "query"), ("headers", "header"), ("form", "form")):
        pairs = getattr(step, attr)
        if pairs is None:
            continue
        out = []
        for key, value in pairs:
            value, c = _replace(value, old, new)
            if c:
                where.append(f"{kind} {key}")
            out.append((key, value))
        setattr(step, attr, out)
    if step.json is not None:
        step.json, c = _replace(step.json, old, new)
        if c:
            where.append("json body")
    if step.body:
        step.body, c = _replace(step.body, old, new)
        if c:
            where.append("body")
    return where


def _script_cookies(steps: list[Step], result: Correlations) -> None:
    """Cookies the browser sent that no recorded response set (JavaScript did): the replay's jar lacks them."""
    set_so_far: set[str] = set()
    missing: dict[str, list[str]] = {}
    for j, step in enumerate(steps):
        for name, value in step.entry.headers:
            if name.lower() != "cookie":
                continue
            for part in value.split(";"):
                cookie = part.split("=", 1)[0].strip()
                if cookie and cookie not in set_so_far:
                    missing.setdefault(cookie, []).append(f"#{j + 1} {step.label}")
        for name, value in step.entry.response_headers:
            if name.lower() == "set-cookie":
                set_so_far.add(value.split("=", 1)[0].strip())
    for cookie, where in missing.items():
        why = "a cookie no recorded response set (JavaScript did?): the replay does not send it"
        result.warnings.append(Uncorrelated(f"cookie {cookie}", where, why))


def correlate(steps: list[Step], min_length: int = 6) -> Correlations:
    """Find and apply correlations in ``steps`` (changed in place)."""
    result = Correlations()
    _script_cookies(steps, result)
    _redirects(steps, result)
    index = _Index(steps)
    first_use: dict[str, int] = {}
    uses: dict[str, list[tuple[int, str]]] = {}
    for j, step in enumerate(steps):
        for where, value in uses_of(step):
            if looks_like_token(value, min_length):
                first_use.setdefault(value, j)
                if (j, where) not in uses.setdefault(value, []):
                    uses[value].append((j, where))
    names: dict[str, int] = {}  # variable name -> the last step that sends its value
    planned: list[tuple[Correlation, int]] = []
    bodiless = [i for i, step in enumerate(steps) if step.entry.response_text is None]
    planned_text = ""  # the planned values, NUL-separated: is a value part of a longer one?
    for value, j0 in first_use.items():
        if value in planned_text:
            continue  # a part of a longer correlated value
        i0 = index.last_before(value, j0)
        if i0 is not None and _location_id(index.responses[i0].step, value, uses[value]):
            continue  # importers.links takes it out of the Location, named after what it is
        sent = [f"#{j + 1} {steps[j].label} {w}" for j, w in uses[value]]
        if i0 is None:
            why = looks_dynamic(value)
            if why:
                before = bodiless[: bisect_right(bodiless, j0 - 1)][-3:]
                if before:
                    where_not = ", ".join(f"#{i + 1} {steps[i].label}" for i in before)
                    why += f"; {where_not} recorded no response body: the value may be there"
                result.warnings.append(Uncorrelated(value, sent, why))
            continue
        points = sorted({i for j, _ in uses[value] if (i := index.last_before(value, j)) is not None})
        extractors = [(i, e) for i in points if (e := extractor_for(index.responses[i], value)) is not None]
        if not extractors:
            why = looks_dynamic(value)
            if why:
                result.warnings.append(Uncorrelated(value, sent, "found in a response, but not in a place to extract"))
            continue
        hint = extractors[0][1][1] or uses[value][0][1].split(" ")[-1]
        name = base = variable_name(hint)
        n, first = 2, extractors[0][0]
        # A name is free again once the value it held is used no more (a token renewed by each answer).
        while (name in names and names[name] > first) or any(name in steps[i].extract for i, _ in extractors):
            name, n = f"{base}_{n}", n + 1
        names[name] = max(j for j, _ in uses[value])
        correlation = Correlation(name, value, extractors[0][1][0])
        for i, (spec, _) in extractors:
            steps[i].extract[name] = spec
            correlation.sources.append(f"#{i + 1} {steps[i].label}")
        planned.append((correlation, extractors[0][0]))
        planned_text += "\x00" + value
    # Longer values first, so a value inside another is not replaced in pieces.
    requests = _RequestIndex(steps)
    for correlation, first in sorted(planned, key=lambda p: -len(p[0].value)):
        template = f"{{{{ {correlation.name} }}}}"
        for j in requests.holding(correlation.value, first + 1):
            correlation.uses += [
                f"#{j + 1} {steps[j].label} {w}" for w in _substitute(steps[j], correlation.value, template)
            ]
        if correlation.uses:
            result.found.append(correlation)
        else:
            for step in steps:
                step.extract.pop(correlation.name, None)
    return result

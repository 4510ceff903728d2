"""Ids in URLs, whatever their length: VuGen's HTML-mode correlation. A request whose path segment or query value
is an id (a number, a UUID, a long token) that an earlier response gave in a link (``href``, form ``action``,
``src``) or a JSON field takes it from that response: a regex made of the recorded link with the id as its
variable part (the link by its text when the page holds several of the pattern), or the JSON field's path.

Ids no response gave, first sent after the recording changed something (a POST), are warnings naming the
request: the application made them during the recording, and a replay that sends them reads someone else's.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

from runner.importers.correlate import (
    Correlation,
    Correlations,
    Response,
    Uncorrelated,
    _xpath_source,
    json_leaves,
    looks_like_token,
    variable_name,
)
from runner.importers.steps import Step, is_id

LINK = re.compile(r"""\b(href|action|src)\s*=\s*(["'])([^"'<>]*)\2""", re.IGNORECASE)
ANCHOR_TEXT = re.compile(r"\s*([^<>]{1,80}?)\s*</a>", re.IGNORECASE)
ID_KEY = re.compile(r"(?:^|_|(?<=[a-z]))(?:id|Id|ID|pk|uuid|key|ref)$")
CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOK_BACK = 300  # responses searched for an id before its request: a long recording stays linear


@dataclass
class Part:
    """One id in a request's URL: a path segment (``index``) or a query value (``key``)."""

    value: str
    index: int = -1
    key: str = ""
    field: str = "query"  # where a keyed id is sent: query or form

    def hint(self, segments: list[str]) -> str:
        """What the id is: ``notes/5`` -> ``note_id``; ``?note_id=5`` -> ``note_id``; ``?id=5`` -> by the path."""
        if self.key and ID_KEY.search(self.key) and self.key.lower() not in ("id", "pk", "key", "uuid", "ref"):
            return self.key
        stop = self.index if self.index >= 0 else len(segments)
        before = [s for s in segments[:stop] if s and not is_id(s) and not s.startswith("{{")]
        base = self.key if self.key and not ID_KEY.fullmatch(self.key) else (before[-1] if before else "")
        base = re.sub(r"\.\w+$", "", base)
        if base.endswith("ies"):
            base = base[:-3] + "y"
        elif base.endswith("s") and not base.endswith("ss") and len(base) > 3:
            base = base[:-1]
        return f"{base}_id" if base else "id"


def ids_in(step: Step) -> list[Part]:
    """The ids a request sends in its URL (left alone: a URL already templated) and in form fields named as ids
    (``note_id=5``)."""
    parts = []
    if "{{" not in step.url:
        parts += [Part(s, index=k) for k, s in enumerate(urlsplit(step.entry.url).path.split("/")) if is_id(s)]
        parts += [Part(v, key=k) for k, v in step.query if is_id(v) and "{{" not in v]
    fields = [(k, v) for k, v in step.form or [] if ID_KEY.search(k) and is_id(v) and "{{" not in v]
    return parts + [Part(v, key=k, field="form") for k, v in fields]


def _link_gives(link: str, target: str, part: Part) -> bool:
    """Does the (absolute) ``link`` hold the part of ``target`` at the same place?"""
    a, b = urlsplit(link), urlsplit(target)
    if a.netloc != b.netloc:
        return False
    if part.key:
        return a.path == b.path and (part.key, part.value) in parse_qsl(a.query, keep_blank_values=True)
    x, y = a.path.split("/"), b.path.split("/")
    return len(x) > part.index and x[: part.index + 1] == y[: part.index + 1]


def _pattern(raw: str, part: Part, origin: str) -> str | None:
    """The recorded link as a regex, the id its group; the recorded origin optional (-H retargets)."""
    group = r"(\d+)" if part.value.isdigit() else "([^/?&#\"'<>]+)"
    pieces = re.split(r"([/?&=#;])", raw)
    out, done = [], False
    for piece in pieces:
        if not done and html.unescape(piece) == part.value:
            out.append(group)
            done = True
        else:
            out.append(re.escape(piece))
    if not done:
        return None  # the id is inside a longer piece of this link (``#comment:1``)
    pattern = "".join(out)
    if raw.startswith(origin):
        pattern = "(?:https?://[^/\"']+)?" + pattern[len(re.escape(origin)) :]
    return pattern


@dataclass
class Source:
    spec: dict[str, Any]
    note: str = ""  # a warning about the choice, or ""


class _Page:
    """One response's links and JSON fields, read once."""

    def __init__(self, step: Step) -> None:
        text = step.entry.response_text or ""
        self.text = text
        self.links: list[tuple[str, re.Match[str]]] = []
        if "<" in text:
            for link in LINK.finditer(text):
                self.links.append((urljoin(step.entry.url, html.unescape(link.group(3))), link))
        self.fields: dict[str, list[str]] = {}
        document = Response(step, text).document if text[:1] in "{[" else None
        if document is not None:
            for path, leaf in json_leaves(document):
                if not isinstance(leaf, bool):
                    self.fields.setdefault(str(leaf), []).append(path)


def _from_html(page: _Page, response: Step, step: Step, part: Part, typed: set[str]) -> Source | None:
    text, origin = page.text, response.entry.origin
    found = [(a, m) for a, m in page.links if part.value in m.group(3) and _link_gives(a, step.entry.url, part)]
    if not found:
        return None
    target = urlsplit(step.entry.url)[2:4]
    exact = [m for a, m in found if urlsplit(a)[2:4] == target]
    # On the object's own page, a link with more than the id (``/ticket/5?format=csv``, ``action="/ticket/5#c"``)
    # points at this object only; a bare one may be a neighbour's (previous / next ticket).
    own = _link_gives(response.entry.url, step.entry.url, part)
    specific = [m for a, m in found if own and m not in exact and (urlsplit(a).query or "#" in m.group(3))]
    link = (specific or exact or [found[0][1]])[0]
    attribute, quote, raw = link.group(1), link.group(2), link.group(3)
    pattern = _pattern(raw, part, origin)
    if pattern is None:
        return None
    regex = f"{attribute}={quote}{pattern}{quote}"
    values = [m.group(1) for m in re.finditer(regex, text)]
    if part.value not in values:
        return None
    if len(set(values)) == 1:
        return Source({"regex": regex})
    label = ANCHOR_TEXT.match(text, link.end() + 1) if text[link.end() : link.end() + 1] == ">" else None
    link_text = label.group(1).strip() if label else ""
    if link_text and not any(t and t in link_text for t in typed):
        by_text = regex + r"[^>]*>\s*" + re.escape(link_text) + r"\s*</a>"
        if [m.group(1) for m in re.finditer(by_text, text)][:1] == [part.value]:
            return Source({"regex": by_text})
    n = values.index(part.value) + 1
    spec: dict[str, Any] = {"regex": regex} if n == 1 else {"regex": regex, "match": n}
    note = (
        f"{len(set(values))} different ids in links of this pattern on #{{i}}; took the {_nth(n)}, as recorded"
        + (" (its link text is typed data, so not by text)" if link_text else "")
        + ": check that it is the one meant"
    )
    return Source(spec, note)


def _nth(n: int) -> str:
    return {1: "first", 2: "second", 3: "third"}.get(n, f"{n}th")


def _from_json(page: _Page, response: Step, part: Part, hint: str) -> tuple[Source, str] | None:
    """A JSON field holding the id: one whose name says it is an id (``id``, ``note_id``); a short id also needs
    the field or the response's URL to name what it is (``$.note.id``, ``$.id`` answering ``POST /notes``)."""
    what = hint.removesuffix("_id").lower()
    for path in page.fields.get(part.value, []):
        key = re.split(r"[.\[\]']+", path.strip("]'"))[-1]
        if not ID_KEY.search(key):
            continue
        top = path.count(".") + path.count("[") == 1
        if len(part.value) >= 6 or what in path.lower() or (top and what in response.entry.path.lower()):
            return Source({"jsonpath": path}), key
    return None


def _from_location(response: Step, step: Step, part: Part) -> Source | None:
    """The id in the response's ``Location`` (``303 Location: /ticket/7``, ``201 Location: …/notes/5``): a regex
    on the header's value made of the recorded Location with the id as its group, any host, ids and tokens in
    the rest varying; the later URLs keep their literal structure around ``{{ ticket_id }}``."""
    raw = response.entry.response_header("location")
    if not raw or not _link_gives(urljoin(response.entry.url, raw), step.entry.url, part):
        return None
    parts = urlsplit(raw)
    group = r"(\d+)" if part.value.isdigit() else r"([^/?&#]+)"
    if part.key:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if (part.key, part.value) not in pairs:
            return None
        tail = r"\?(?:[^#]*&)?" + re.escape(part.key) + "=" + group + "(?=[&#]|$)"
        segments, k = parts.path.split("/"), None
    else:
        segments = parts.path.split("/")
        k = part.index - (len(urlsplit(step.entry.url).path.split("/")) - len(segments))  # a relative Location
        if k < 0 or k >= len(segments) or segments[k] != part.value:
            return None
        tail = "(?=[?#]|$)"
    path = "/".join(
        group if n == k else r"[^/?#]+" if is_id(s) or looks_like_token(s, 6) else re.escape(s)
        for n, s in enumerate(segments)
    )
    # Any host (-H retargets, and a server may answer absolute or not); a relative one after any path.
    start = r"^(?:https?://[^/]+)?" if parts.netloc or raw.startswith("/") else "(?:^|/)"
    return Source({"header": "Location", "regex": start + path + tail})


def _typed(steps: list[Step], upto: int) -> set[str]:
    """What the user typed before step ``upto``: form values of earlier requests (not ids)."""
    return {v for s in steps[:upto] for _, v in (s.form or []) if v and not is_id(v) and "{{" not in v}


def _replace_later(steps: list[Step], start: int, part: Part, segment: str, template: str) -> list[str]:
    """The same id, sent at the same kind of place (after the same path segment, or by the same key)."""
    where = []
    for j in range(start, len(steps)):
        step = steps[j]
        if "{{" not in step.url:
            segments = step.url.split("/")
            hit = [k for k, s in enumerate(segments) if s == part.value and k and segments[k - 1] == segment]
            if hit:
                for k in hit:
                    segments[k] = template
                step.url = "/".join(segments)
                where.append(f"#{j + 1} {step.label} url")
        keys = {part.key} if part.key else set()  # a form's id goes by the same key in a query too
        for attr in ("query", "form"):
            pairs = getattr(step, attr)
            if not pairs:
                continue
            out = []
            for key, value in pairs:
                if value == part.value and (key in keys or (attr == "form" and ID_KEY.search(key))):
                    out.append((key, template))
                    where.append(f"#{j + 1} {step.label} {attr} {key}")
                else:
                    out.append((key, value))
            setattr(step, attr, out)
    return where


def _sources(steps: list[Step], pages: dict[int, _Page], j: int, part: Part) -> Iterator[tuple[int, Source, str]]:
    """Where an earlier response gave the id: (response index, extractor, name hint). The object's own page first
    (its URL holds the id at the same place: its links to itself are this user's, a list may show others'), then
    the latest response."""
    typed = _typed(steps, j)
    hint = part.hint(urlsplit(steps[j].entry.url).path.split("/"))
    earlier = range(j - 1, max(-1, j - 1 - LOOK_BACK), -1)
    own = [i for i in earlier if _link_gives(steps[i].entry.url, steps[j].entry.url, part)]
    for i in own + [i for i in earlier if i not in own]:
        located = _from_location(steps[i], steps[j], part)
        if located is not None:
            yield i, located, ""
            continue
        if part.value not in (steps[i].entry.response_text or ""):
            continue
        page = pages.get(i) or pages.setdefault(i, _Page(steps[i]))
        source = _from_html(page, steps[i], steps[j], part, typed)
        if source is not None:
            yield i, source, ""
            continue
        hidden = _xpath_source(Response(steps[i], page.text), part.value) if part.field == "form" else None
        if hidden is not None and hidden[1] == part.key:  # <input type="hidden" name="note_id" value="5">
            yield i, Source(hidden[0]), part.key
            continue
        found = _from_json(page, steps[i], part, hint)
        if found is not None:
            yield i, found[0], found[1]


def correlate_links(steps: list[Step], result: Correlations, taken: set[str]) -> None:
    """Correlate the ids in URLs (changed in place); warn about ids the recording created and no response gave."""
    done: dict[tuple[str, str], str] = {}  # (segment or key, value) -> the variable
    pages: dict[int, _Page] = {}
    first_change = next((k for k, s in enumerate(steps) if s.entry.method in CHANGES), None)
    for j, step in enumerate(steps):
        segments = urlsplit(step.entry.url).path.split("/")
        for part in ids_in(step):
            segment = segments[part.index - 1] if part.index > 0 else ""
            place = (part.key or segment, part.value)
            if place in done:
                continue  # replaced already, from its first use
            found = next(_sources(steps, pages, j, part), None)
            if found is None:
                _warn_created(steps, j, part, first_change, result)
                continue
            i, source, key = found
            hint = part.hint(segments) if not key or ID_KEY.fullmatch(key) else key
            name, n = variable_name(hint), 2
            while name in taken:
                name, n = f"{variable_name(hint)}_{n}", n + 1
            taken.add(name)
            done[place] = name
            steps[i].extract[name] = source.spec
            template = f"{{{{ {name} }}}}"
            uses = _replace_later(steps, j, part, segment, template)
            if not uses:
                steps[i].extract.pop(name)
                continue
            result.found.append(Correlation(name, part.value, source.spec, [f"#{i + 1} {steps[i].label}"], uses))
            if source.note:
                why = source.note.replace("{i}", str(i + 1))
                result.warnings.append(Uncorrelated(part.value, uses[:1], why))


def _warn_created(steps: list[Step], j: int, part: Part, first_change: int | None, result: Correlations) -> None:
    """An id first sent after a POST that no response gave as a link or field: made by the recording."""
    if first_change is None or first_change >= j:
        return
    before = urlsplit(steps[first_change].entry.url).path
    sent_before = any(part.value in s.entry.url.split("?")[0].split("/") for s in steps[:first_change])
    word = re.compile(rf"(?<![\w.-]){re.escape(part.value)}(?![\w.-])")
    if sent_before or any(word.search(s.entry.response_text or "") for s in steps[:first_change]):
        return  # known before anything was changed: not made by the recording
    where = f"path segment {part.index}" if not part.key else f"{part.field} {part.key}"
    why = (
        f"an id sent after #{first_change + 1} {steps[first_change].entry.method} {before} that no recorded "
        "response gave as a link or JSON field: the recording created it, every replay would send this one; "
        "extract it by hand (extract: {regex: ...}) from the page that shows it"
    )
    result.warnings.append(Uncorrelated(part.value, [f"#{j + 1} {steps[j].label} {where}"], why))

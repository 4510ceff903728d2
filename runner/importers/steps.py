"""What each recorded request becomes: a ``Step`` with the parts of a scenario request, still literal."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

from runner.importers.filter import kept_headers
from runner.importers.har import Entry, json_document

JINJA_MARKS = re.compile(r"\{[{%#]")
ESCAPES = re.compile(r"\{[{%#]|\r")  # Jinja reads a \r in a template's text as \n: a Jinja string keeps it
ESCAPED = {"{{": "{{ '{{' }}", "{%": "{{ '{%' }}", "{#": "{{ '{#' }}", "\r": "{{ '\\r' }}"}
UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")


def is_id(value: str) -> bool:
    """A number, a UUID, or a token of letters and digits: the parts of a URL an application numbers."""
    if not value or len(value) > 128:
        return False
    if value.isdigit() or UUID.fullmatch(value):
        return True
    return len(value) >= 8 and bool(re.fullmatch(r"[A-Za-z0-9_-]+", value)) and sum(c.isdigit() for c in value) >= 2


def url_ids(url: str) -> list[str]:
    """The ids in a URL's path segments and query values."""
    parts = urlsplit(url)
    pieces = parts.path.split("/") + [v for _, v in parse_qsl(parts.query, keep_blank_values=True)]
    return [piece for piece in pieces if is_id(piece)]


@dataclass
class Step:
    entry: Entry
    url: str  # path relative to the main origin, or an absolute URL for another kept host
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    json: Any = None
    form: list[tuple[str, str]] | None = None
    body: str | None = None
    content_type: str | None = None  # for a raw body
    extract: dict[str, dict[str, Any]] = field(default_factory=dict)
    allow_redirects: bool = True
    think: float = 0.0
    checks: list[dict[str, Any]] | None = None  # None: the recorded status only
    ws: str = ""  # a WebSocket step (``importers.wssteps``): connect, send, receive or close
    connection: str = "ws"  # the WebSocket connection's name (``as``)
    ws_options: dict[str, Any] = field(default_factory=dict)  # subprotocols, timeout

    @property
    def label(self) -> str:
        return f"{self.entry.method} {self.entry.path}"


def literal(value: Any) -> Any:
    """A recorded value made safe as a template: ``{{``, ``{%`` and ``{#`` are written as Jinja strings, in
    names (JSON keys) as in values, so the replay sends them as recorded and never renders them."""
    if isinstance(value, str):
        return ESCAPES.sub(lambda m: ESCAPED[m.group()], value) if JINJA_MARKS.search(value) else value
    if isinstance(value, dict):
        return {literal(str(k)): literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [literal(v) for v in value]
    return value


def _pairs(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(literal(k), literal(v)) for k, v in pairs]


def _body(step: Step, entry: Entry) -> None:
    if entry.body is None or entry.body == "":
        return
    mime = entry.body_type.lower() or (entry.header("content-type") or "").lower()
    if "json" in mime:
        document = json_document(entry.body)  # None when deeper than a scenario may nest, or not JSON
        if document is not None:
            step.json = literal(document)
            return
    if "x-www-form-urlencoded" in mime:
        pairs = parse_qsl(entry.body, keep_blank_values=True)
        if len({k for k, _ in pairs}) == len(pairs):
            step.form = _pairs(pairs)
            return
    step.body = literal(entry.body)
    step.content_type = entry.body_type or entry.header("content-type") or "text/plain"


def build_steps(entries: list[Entry], origin: str) -> list[Step]:
    steps = []
    for entry in entries:
        url = entry.path if entry.origin == origin else f"{entry.origin}{entry.path}"
        step = Step(entry, literal(url), _pairs(entry.query), _pairs(kept_headers(entry)))
        _body(step, entry)
        step.allow_redirects = not 300 <= entry.status < 400
        steps.append(step)
    return steps


def redirect_target(entry: Entry) -> str | None:
    """The absolute URL a 3xx response sent the browser to."""
    if not 300 <= entry.status < 400:
        return None
    location = entry.response_header("location") or entry.redirect_url
    return urljoin(entry.url, location) if location else None


def same_url(a: str, b: str) -> bool:
    x, y = urlsplit(a), urlsplit(b)
    return (x.netloc, x.path or "/", x.query) == (y.netloc, y.path or "/", y.query)

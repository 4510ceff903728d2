"""Reading HAR files: HAR 1.2 as Chrome and Firefox DevTools, Playwright and proxies (mitmproxy, Charles,
Fiddler, ZAP) export it, into plain ``Entry`` objects. Only fields of the specification are relied on;
browsers' private ``_fields`` are hints at most. A bad file is one ``HarError`` line; a bad entry is a warning.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from runner.errors import LrunError
from runner.importers.wsframes import Frame, read_frames

TEXT_TYPES = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded", "html")
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110's token: a method, a header name
BAD_HEADER_VALUE = re.compile(r"[\r\n\x00]")
BAD_NETLOC = re.compile(r"[\x00-\x20\x7f\\]")  # a browser reads http://a\@b/ as host a; Python as host b
CONTROL = re.compile(r"[\x00-\x20\x7f]")
SURROGATE = re.compile(r"[\ud800-\udfff]")  # json.loads pairs valid ones: what is left is a lone half
MAX_DEPTH = 64  # a JSON body nested deeper stays text: a scenario nests at most 100 levels in all
MAX_HAR_DEPTH = 24  # log.entries[].request.postData.params[].value is 7: deeper is not a recording
MAX_DURATION = 86_400.0  # seconds: a recorded time beyond a day is bogus
ABORTED = (None, "", 0, -1)  # the status of a request the browser aborted or never sent


class HarError(LrunError):
    """The file is not a HAR recording lrun can read."""


@dataclass(slots=True)
class Entry:
    """One request and its response, as recorded."""

    index: int  # position in the file (1-based), for messages
    method: str
    url: str
    origin: str  # scheme://host[:port]
    path: str  # path only, no query
    query: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    body: str | None  # request body text (decoded), None when there is none or it is binary
    body_type: str  # request body MIME type ('' when unknown)
    status: int
    response_headers: list[tuple[str, str]]
    response_type: str
    response_text: str | None  # decoded response body, None when not recorded or binary
    started: float  # epoch seconds
    duration: float  # seconds
    page: str | None = None
    resource_type: str = ""  # Chrome/Playwright's _resourceType when present
    redirect_url: str = ""
    frames: list[Frame] | None = None  # a WebSocket upgrade's recorded messages (``importers.wsframes``)

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def response_header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.response_headers if k.lower() == name), None)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(slots=True)
class Page:
    id: str
    title: str
    started: float


@dataclass
class Recording:
    path: str
    creator: str
    entries: list[Entry]
    pages: dict[str, Page]
    warnings: list[str] = field(default_factory=list)


def printable(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped: safe in one line, a comment, a message."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _depth_ok(document: Any, limit: int = MAX_DEPTH) -> bool:
    """Nested at most ``limit`` levels, and every number finite (a JSON ``1e400`` is an infinite float)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return False
            stack += [(v, depth + 1) for v in (value.values() if isinstance(value, dict) else value)]
        elif isinstance(value, float) and not math.isfinite(value):
            return False
    return True


def json_document(text: str) -> Any:
    """A JSON text parsed when it is one lrun can carry (``MAX_DEPTH`` levels, finite numbers), else None.
    Lone surrogates become U+FFFD."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # ValueError: JSON errors, and integers of over 4300 digits
        return None
    if not _depth_ok(document):
        return None
    if "\\ud" in text or "\\uD" in text:  # "\ud800" in JSON text: walk the document only then
        if isinstance(document, str):
            return SURROGATE.sub("\ufffd", document)
        _clean(document)
    return document


def _has_surrogate(text: str) -> bool:
    if text.isascii():  # 80 MB of bodies: 0.01 s; a regular expression takes 1 s
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _depth(data: Any) -> int:
    """How deep ``data`` is nested (containers only: a fifth of the time ``_clean`` takes)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        values = node.values() if isinstance(node, dict) else node
        stack += [(v, depth + 1) for v in values if isinstance(v, dict | list)]
    return deepest


def _clean(data: Any) -> tuple[int, int]:
    """Replace lone surrogates (half a character: nothing can encode them) by U+FFFD in place.

    (How many strings had one, how deep ``data`` is nested.)
    """
    count = deepest = 0

    def fix(value: Any) -> Any:
        nonlocal count
        if isinstance(value, str) and _has_surrogate(value):
            count += 1
            return SURROGATE.sub("\ufffd", value)
        return value

    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, dict):
            if any(_has_surrogate(key) for key in node):
                node.update({fix(key): node.pop(key) for key in list(node)})
            for key, value in node.items():
                node[key] = fix(value)
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            node[:] = [fix(v) for v in node]
            stack += [(v, depth + 1) for v in node]
    return count, deepest


def _is_text(mime: str) -> bool:
    mime = mime.lower()
    return not mime or any(t in mime for t in TEXT_TYPES)


def _time(value: Any) -> float:
    if not isinstance(value, str):
        return 0.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, OSError):
        return 0.0


def _pairs(items: Any) -> list[tuple[str, str]]:
    if not isinstance(items, list):
        return []
    return [(str(i["name"]), str(i.get("value", ""))) for i in items if isinstance(i, dict) and "name" in i]


def _decode(text: str, encoding: Any, mime: str) -> str | None:
    """A body's text: base64 decoded when the HAR says so; None for binary bodies."""
    if encoding == "base64":
        try:
            raw = base64.b64decode(text, validate=False)
        except (binascii.Error, ValueError):
            return None
        if not _is_text(mime):
            return None
        return raw.decode("utf-8", "replace")
    return text if _is_text(mime) else None


def _short(value: Any, limit: int = 80) -> str:
    """A recorded value in a message: quoted, escaped, cut."""
    if not isinstance(value, str):
        return printable(repr(value)[:limit])
    return repr(value[:limit] + ("…" if len(value) > limit else ""))


def _status(value: Any) -> int | None:
    """The recorded status as an int from 100 to 599 (``"200"`` and ``200.0`` too), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() and len(value) < 5:  # not ²
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and 100 <= value <= 599 else None


def _headers(items: Any, index: int, warnings: list[str]) -> list[tuple[str, str]]:
    """The request's headers that a client can send: a name that is a token, a value in one line."""
    kept = []
    for name, value in _pairs(items):
        if not TOKEN.fullmatch(name.removeprefix(":")) or BAD_HEADER_VALUE.search(value):  # :authority is HTTP/2
            warnings.append(f"entry {index}: header {_short(name, 40)} left out: not a valid HTTP header")
        else:
            kept.append((name, value))
    return kept


def _entry(index: int, raw: Any, warnings: list[str]) -> Entry | str:
    """An ``Entry``, or why this entry is skipped; ``HarError`` (without the file's name) for a corrupt one."""
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        return "no request"
    request, response = raw["request"], raw.get("response")
    url = request.get("url")
    frames = read_frames(raw.get("_webSocketMessages"), index, warnings)
    websocket = isinstance(url, str) and url[:6].lower().startswith(("ws://", "wss://"))
    if websocket and frames is None:
        return "a WebSocket connection without its messages"
    if not isinstance(url, str) or not (websocket or url[:8].lower().startswith(("http://", "https://"))):
        scheme = str(url).partition(":")[0][:20] if isinstance(url, str) and ":" in url else ""
        if scheme and TOKEN.fullmatch(scheme):
            return f"{scheme}: URLs (not HTTP)"
        return f"not an HTTP URL: {_short(url)}"
    method = request.get("method") or "GET"
    if not isinstance(method, str) or not TOKEN.fullmatch(method):
        raise HarError(f"entry {index}: the method {_short(method, 40)} is not an HTTP method (a token: GET, POST …)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number from 0 to 65535
    except ValueError as exc:
        raise HarError(f"entry {index}: the URL {_short(url)} is not a valid URL: {exc}") from None
    if not parts.hostname or BAD_NETLOC.search(parts.netloc):
        raise HarError(f"entry {index}: the URL {_short(url)} names no valid host")
    if not isinstance(response, dict) or response.get("status") in ABORTED:
        return f"no response recorded for {method} {_short(url)} (aborted or blocked)"
    status = _status(response["status"])
    if status is None:
        raise HarError(f"entry {index}: the status {_short(response['status'], 40)} is not an HTTP status (100-599)")
    body, body_type = None, ""
    post = request.get("postData")
    if isinstance(post, dict):
        body_type = str(post.get("mimeType") or "")
        if BAD_HEADER_VALUE.search(body_type):  # it becomes the replay's Content-Type header
            warnings.append(f"entry {index}: the body's type {_short(body_type, 40)} left out: not a header value")
            body_type = ""
        if isinstance(post.get("text"), str):
            body = _decode(post["text"], post.get("encoding"), body_type)
        elif post.get("params"):  # Firefox and some proxies give form fields only
            from urllib.parse import urlencode

            body = urlencode(_pairs(post["params"]))
            body_type = body_type or "application/x-www-form-urlencoded"
    content: dict[str, Any] = response["content"] if isinstance(response.get("content"), dict) else {}
    response_type = str(content.get("mimeType") or "")
    text = content.get("text")
    response_text = _decode(text, content.get("encoding"), response_type) if isinstance(text, str) else None
    timings = raw.get("time")
    duration = 0.0
    if isinstance(timings, int | float) and not isinstance(timings, bool):
        milliseconds = min(max(timings, 0), MAX_DURATION * 1000)  # 10**400 compares, but is no float
        duration = float(milliseconds) / 1000 if math.isfinite(milliseconds) else 0.0
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme.lower(), parts.scheme)  # one origin with the page
    return Entry(
        index=index,
        method=method.upper(),
        url=url,
        origin=f"{scheme}://{parts.netloc}",
        path=CONTROL.sub(lambda m: f"%{ord(m.group()):02X}", parts.path) or "/",  # as a browser sends it
        query=parse_qsl(parts.query, keep_blank_values=True),
        headers=_headers(request.get("headers"), index, warnings),
        body=body,
        body_type=body_type,
        status=status,
        response_headers=_pairs(response.get("headers")),
        response_type=response_type,
        response_text=response_text,
        started=_time(raw.get("startedDateTime")),
        duration=duration,
        page=raw.get("pageref") if isinstance(raw.get("pageref"), str) else None,
        resource_type=str(raw.get("_resourceType") or ""),
        redirect_url=str(response.get("redirectURL") or ""),
        frames=frames,
    )


def _load(path: str | Path, name: str) -> tuple[Any, bool]:
    """The document, and whether it may hold lone surrogates."""
    try:
        raw = Path(path).read_bytes()
        text = raw.decode(json.detect_encoding(raw))  # strict: json.loads(raw) would let surrogates in
        data = json.loads(text)
    except OSError as exc:
        raise HarError(f"{name}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise HarError(f"{name}: not a HAR file (not UTF-8 JSON text)") from None
    except json.JSONDecodeError as exc:
        what = "truncated" if exc.pos >= len(exc.doc) - 1 else "not valid JSON"
        raise HarError(f"{name}:{exc.lineno}:{exc.colno}: {what}: {exc.msg} (export the recording again)") from None
    except RecursionError:
        raise HarError(f"{name}: not a HAR file (JSON nested too deeply to read)") from None
    except ValueError as exc:  # an integer of over 4300 digits
        raise HarError(f"{name}: not a HAR file: {printable(str(exc))[:200]}") from None
    except MemoryError:
        raise HarError(f"{name}: too large to read in memory") from None
    return data, "\\ud" in text or "\\uD" in text  # a lone surrogate is an escape: strict decoding refuses others


def read_har(path: str | Path) -> Recording:
    """Read a HAR file; raise ``HarError`` (one line) when it is not one."""
    name = printable(str(path))
    data, escapes = _load(path, name)
    log = data.get("log") if isinstance(data, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        raise HarError(f"{name}: not a HAR file (no log.entries): export it from the browser's network panel")
    warnings = []
    broken, depth = _clean(log) if escapes else (0, _depth(log))
    if depth > MAX_HAR_DEPTH:
        raise HarError(f"{name}: not a HAR file (nested {depth} levels deep; a HAR nests less than {MAX_HAR_DEPTH})")
    if broken:
        warnings.append(f"{broken} texts held half a character (a lone UTF-16 surrogate): replaced by U+FFFD")
    version = str(log.get("version") or "")
    if version and not version.startswith("1.2"):
        warnings.append(f"HAR version {printable(version[:20])}: read as HAR 1.2")
    creator: dict[str, Any] = log["creator"] if isinstance(log.get("creator"), dict) else {}
    creator_text = " ".join(str(creator.get(k, "")) for k in ("name", "version")).strip()
    pages = {}
    if log.get("pages") is not None and not isinstance(log["pages"], list):
        warnings.append(f"log.pages is {_short(log['pages'], 20)}, not a list of pages: ignored")
    for raw in log["pages"] if isinstance(log.get("pages"), list) else []:
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            pages[raw["id"]] = Page(raw["id"], str(raw.get("title") or ""), _time(raw.get("startedDateTime")))
    entries, schemes, skipped = [], Counter[str](), []
    for index, raw in enumerate(log["entries"], start=1):
        try:
            entry = _entry(index, raw, warnings)
        except HarError as exc:
            raise HarError(f"{name}: {exc}") from None
        if isinstance(entry, str) and entry.endswith("URLs (not HTTP)"):
            schemes[entry] += 1  # data:, blob:, chrome-extension: … — many in a browser's recording, one line
        elif isinstance(entry, str):
            skipped.append(f"entry {index}: skipped: {entry}")
        else:
            post = raw["request"].get("postData")
            if isinstance(post, dict) and post.get("text") and entry.body is None:
                warnings.append(f"entry {index}: {entry.label}: binary request body ({entry.body_type}) left out")
            entries.append(entry)
    warnings += skipped + [f"skipped {n} {what}" for what, n in schemes.items()]
    if not entries:
        why = f": {skipped[0]}" if len(skipped) == 1 else ""
        raise HarError(f"{name}: the recording has no usable entries{why} (record again with the network panel open)")
    entries.sort(key=lambda e: (e.started, e.index))  # proxies write in completion order
    return Recording(name, creator_text, entries, pages, warnings)

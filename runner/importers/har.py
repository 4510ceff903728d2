"""Reading HAR files: HAR 1.2 as Chrome and Firefox DevTools, Playwright and proxies (mitmproxy, Charles,
Fiddler, ZAP) export it, into plain ``Entry`` objects. Only fields of the specification are relied on;
browsers' private ``_fields`` are hints at most. A bad file is one ``HarError`` line; a bad entry is a warning.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from runner.errors import LrunError

TEXT_TYPES = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded", "html")


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


def _is_text(mime: str) -> bool:
    mime = mime.lower()
    return not mime or any(t in mime for t in TEXT_TYPES)


def _time(value: Any) -> float:
    if not isinstance(value, str):
        return 0.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
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


def _entry(index: int, raw: Any) -> Entry | str:
    """An ``Entry``, or why this entry is skipped."""
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        return "no request"
    request, response = raw["request"], raw.get("response")
    url = request.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        scheme = str(url).partition(":")[0][:20] if isinstance(url, str) and ":" in url else ""
        return f"{scheme}: URLs (not HTTP)" if scheme else f"not an HTTP URL: {str(url)[:80]}"
    if not isinstance(response, dict) or not response.get("status"):
        return f"no response recorded for {request.get('method', 'GET')} {url[:80]} (aborted or blocked)"
    parts = urlsplit(url)
    body, body_type = None, ""
    post = request.get("postData")
    if isinstance(post, dict):
        body_type = str(post.get("mimeType") or "")
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
    status = response["status"]
    if not isinstance(status, int):
        try:
            status = int(status)
        except (TypeError, ValueError):
            return f"bad status {status!r}"
    return Entry(
        index=index,
        method=str(request.get("method") or "GET").upper(),
        url=url,
        origin=f"{parts.scheme}://{parts.netloc}",
        path=parts.path or "/",
        query=parse_qsl(parts.query, keep_blank_values=True),
        headers=_pairs(request.get("headers")),
        body=body,
        body_type=body_type,
        status=status,
        response_headers=_pairs(response.get("headers")),
        response_type=response_type,
        response_text=response_text,
        started=_time(raw.get("startedDateTime")),
        duration=max(0.0, float(timings)) / 1000 if isinstance(timings, int | float) else 0.0,
        page=raw.get("pageref") if isinstance(raw.get("pageref"), str) else None,
        resource_type=str(raw.get("_resourceType") or ""),
        redirect_url=str(response.get("redirectURL") or ""),
    )


def read_har(path: str | Path) -> Recording:
    """Read a HAR file; raise ``HarError`` (one line) when it is not one."""
    name = str(path)
    try:
        data = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise HarError(f"{name}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise HarError(f"{name}: not a HAR file (not UTF-8 JSON text)") from None
    except json.JSONDecodeError as exc:
        what = "truncated" if exc.pos >= len(exc.doc) - 1 else "not valid JSON"
        raise HarError(f"{name}:{exc.lineno}:{exc.colno}: {what}: {exc.msg} (export the recording again)") from None
    log = data.get("log") if isinstance(data, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        raise HarError(f"{name}: not a HAR file (no log.entries): export it from the browser's network panel")
    warnings = []
    version = str(log.get("version") or "")
    if version and not version.startswith("1.2"):
        warnings.append(f"HAR version {version}: read as HAR 1.2")
    creator: dict[str, Any] = log["creator"] if isinstance(log.get("creator"), dict) else {}
    creator_text = " ".join(str(creator.get(k, "")) for k in ("name", "version")).strip()
    pages = {}
    for raw in log.get("pages") or []:
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            pages[raw["id"]] = Page(raw["id"], str(raw.get("title") or ""), _time(raw.get("startedDateTime")))
    entries, schemes = [], Counter[str]()
    for index, raw in enumerate(log["entries"], start=1):
        entry = _entry(index, raw)
        if isinstance(entry, str) and entry.endswith("URLs (not HTTP)"):
            schemes[entry] += 1  # data:, blob:, chrome-extension: … — many in a browser's recording, one line
        elif isinstance(entry, str):
            warnings.append(f"entry {index}: skipped: {entry}")
        else:
            post = raw["request"].get("postData")
            if isinstance(post, dict) and post.get("text") and entry.body is None:
                warnings.append(f"entry {index}: {entry.label}: binary request body ({entry.body_type}) left out")
            entries.append(entry)
    warnings += [f"skipped {n} {what}" for what, n in schemes.items()]
    if not entries:
        raise HarError(f"{name}: the recording has no usable entries (record again with the network panel open)")
    entries.sort(key=lambda e: (e.started, e.index))  # proxies write in completion order
    return Recording(name, creator_text, entries, pages, warnings)

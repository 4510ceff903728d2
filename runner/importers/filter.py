"""Noise out of a recording: static assets, third-party hosts, browser-only headers; a summary of what went."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from fnmatch import fnmatch
from urllib.parse import urlsplit

from runner.importers.har import Entry

STATIC_EXTENSIONS = frozenset(
    [
        ".js",
        ".mjs",
        ".css",
        ".map",
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".svg",
        ".ico",
        ".webp",
        ".avif",
        ".bmp",
        ".woff",
        ".woff2",
        ".ttf",
        ".otf",
        ".eot",
        ".mp4",
        ".webm",
        ".mp3",
        ".wav",
        ".ogg",
        ".webmanifest",
    ]
)
STATIC_TYPES = ("image/", "font/", "audio/", "video/", "text/css", "javascript", "application/font", "x-font")
STATIC_RESOURCES = frozenset({"stylesheet", "script", "image", "font", "media", "manifest", "texttrack"})
# Headers the client sets itself (cookie jar, connection, body) or that only describe the browser.
BROWSER_HEADERS = frozenset(
    [
        "host",
        "connection",
        "content-length",
        "cookie",
        "accept-encoding",
        "accept-language",
        "user-agent",
        "referer",
        "origin",
        "upgrade-insecure-requests",
        "cache-control",
        "pragma",
        "priority",
        "te",
        "dnt",
        "keep-alive",
        "if-none-match",
        "if-modified-since",
        "purpose",
        "x-client-data",
    ]
)

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


@dataclass
class FilterOptions:
    hosts: list[str] = field(default_factory=list)  # more hosts to keep (glob patterns like *.example.com)
    keep_static: bool = False
    exclude: list[str] = field(default_factory=list)  # URL regexes to drop
    include: list[str] = field(default_factory=list)  # URL regexes to keep whatever else says


@dataclass
class Selection:
    origin: str
    entries: list[Entry]
    dropped: Counter[str] = field(default_factory=Counter)  # reason -> count
    third_party: Counter[str] = field(default_factory=Counter)  # host -> count

    def summary(self) -> list[str]:
        lines = [f"dropped {n} {reason}" for reason, n in self.dropped.most_common()]
        if self.third_party:
            hosts = ", ".join(f"{h} ({n})" for h, n in self.third_party.most_common(8))
            more = len(self.third_party) - 8
            lines.append(f"third-party hosts left out: {hosts}" + (f" and {more} more" if more > 0 else ""))
        return lines


def is_static(entry: Entry) -> bool:
    path = entry.path.lower()
    dot = path.rfind(".")
    if dot > path.rfind("/") and path[dot:] in STATIC_EXTENSIONS:
        return True
    if entry.resource_type.lower() in STATIC_RESOURCES:
        return True
    return any(t in entry.response_type.lower() for t in STATIC_TYPES)


def main_origin(entries: list[Entry]) -> str:
    """The recorded application: the origin of the first HTML document, else the busiest origin."""
    for entry in entries:
        if "html" in entry.response_type.lower() and entry.method == "GET" and entry.status < 400:
            return entry.origin
    return Counter(e.origin for e in entries).most_common(1)[0][0]


def select(entries: list[Entry], options: FilterOptions, origin: str | None = None) -> Selection:
    """The entries worth replaying, in order; ``origin`` (default: guessed) is the main one."""
    origin = origin or main_origin(entries)
    excluded = [re.compile(p) for p in options.exclude]
    included = [re.compile(p) for p in options.include]
    selection = Selection(origin, [])
    for entry in entries:
        host = urlsplit(entry.url).hostname or ""
        if any(p.search(entry.url) for p in included):
            selection.entries.append(entry)
        elif any(p.search(entry.url) for p in excluded):
            selection.dropped["excluded by pattern"] += 1
        elif entry.origin != origin and not any(fnmatch(host, h) or fnmatch(entry.origin, h) for h in options.hosts):
            selection.dropped["requests to third-party hosts"] += 1
            selection.third_party[host] += 1
        elif not options.keep_static and is_static(entry):
            selection.dropped["static assets (scripts, styles, images, fonts)"] += 1
        elif entry.method == "OPTIONS" and entry.header("access-control-request-method"):
            selection.dropped["CORS preflights"] += 1
        elif (entry.status == 101 or entry.resource_type.lower() == "websocket") and entry.frames is None:
            selection.dropped["WebSocket connections (not HTTP requests)"] += 1
        elif entry.method not in METHODS:
            selection.dropped[f"{entry.method} requests (a scenario sends {', '.join(sorted(METHODS))})"] += 1
        else:
            selection.entries.append(entry)
    return selection


def kept_headers(entry: Entry) -> list[tuple[str, str]]:
    """The request headers that matter for a replay: auth, content type of raw bodies, custom ones."""
    kept = []
    for name, value in entry.headers:
        lower = name.lower()
        if lower.startswith((":", "sec-")) or lower in BROWSER_HEADERS:
            continue
        if lower == "accept" and (("json" not in value and "xml" not in value) or "," in value):
            continue  # the browser's default Accept says nothing the server needs
        if lower == "content-type":
            continue  # the writer sets it with the body it writes
        kept.append((name, value))
    return kept

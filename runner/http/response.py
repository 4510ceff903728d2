"""The response a step's extractors and checkpoints read.

Parsing is lazy and cached: several jsonpath extractors on one response parse the JSON once.
Nothing here is timed; ``elapsed_ms`` was measured by the client before the response was handed over.
"""

from __future__ import annotations

import json
import json.scanner
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from runner.http.reader import charset_of, field, fields

_scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # json's own scanner, in C


def _loads(text: str) -> Any:
    """``json.loads(text)``, a third of its cost for the usual body: a JSON value with nothing but JSON
    whitespace after it. Anything else (whitespace before, a BOM, not JSON) goes to ``json.loads``, which also
    says what is wrong."""
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return json.loads(text)
    if end == len(text) or not text[end:].strip(" \t\n\r"):
        return value
    return json.loads(text)  # raises: extra data


def _cut(errors: Any) -> str | None:
    for error in errors:
        if "Excessive depth" in error.message:
            return "HTML nested deeper than 2048 levels: lxml cut the document there"
    return None


class Response:
    __slots__ = (
        "__dict__",
        "_charset",
        "_headers",
        "_json",
        "_lines",
        "_text",
        "body",
        "connect_failed",
        "elapsed_ms",
        "error",
        "http2",
        "method",
        "reason",
        "retries",
        "size",
        "status",
        "timings",
        "unread",
        "url",
    )

    def __init__(
        self,
        method: str,
        url: str,
        status: int = 0,
        reason: str = "",
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        elapsed_ms: float = 0.0,
        error: str | None = None,
        *,
        size: int | None = None,
        retries: int = 0,
        unread: str | None = None,
        connect_failed: bool = False,
        head: Sequence[str] | None = None,
        charset: str | None = None,
        http2: bool = False,
        timings: tuple[float, ...] | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.status = status  # 0 when no response arrived (see ``error``)
        self.reason = reason
        self._headers = headers if headers is not None or head else []
        self._lines = head  # the head's lines as received: split into headers when first read
        self._text: str | None = None
        self._charset = charset  # known from the head already, or read from the headers when first asked
        self._json: tuple[Any, ValueError | None] | None = None
        self.body = body
        self.elapsed_ms = elapsed_ms
        self.error = error  # the request failed: refused, reset, timeout, too many redirects …
        self.size = len(body) if size is None else size  # body bytes (decoded; as received when not kept)
        self.retries = retries  # resent on a new connection after a kept-alive one was found closed
        self.connect_failed = connect_failed  # no connection could be made: ``error`` says why
        self.http2 = http2  # it went over HTTP/2 (else HTTP/1.1)
        self.unread = unread  # why ``body`` is empty though bytes arrived: over max_body, or discarded
        # ms of dns, connect, tls, send, ttfb, receive (``scenario.limits.PHASES``; sums of the redirects' exchanges);
        # None when no response arrived. A kept-alive connection's first three are 0.
        self.timings = timings

    @property
    def headers(self) -> list[tuple[str, str]]:
        """(name, value) in arrival order, names as sent by the server."""
        headers = self._headers
        if headers is None:
            headers = self._headers = fields(self._lines or [""])
        return headers

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        lname = name.lower()
        if self._headers is None:  # not split yet: one lookup need not split them all
            return field(self._lines or [""], lname)
        for key, value in self._headers:
            if key.lower() == lname:
                return value
        return None

    def header_values(self, name: str) -> list[str]:
        lname = name.lower()
        return [value for key, value in self.headers if key.lower() == lname]

    @property
    def text(self) -> str:
        """The body decoded (once) by the ``Content-Type`` charset, else UTF-8; invalid bytes replaced."""
        text = self._text
        if text is None:
            try:
                text = self.body.decode(self.charset, errors="replace")
            except LookupError:  # a charset Python does not know: read it as UTF-8
                text = self.body.decode("utf-8", errors="replace")
            self._text = text
        return text

    @property
    def charset(self) -> str:
        """The ``Content-Type`` charset, else UTF-8."""
        found = self._charset
        if found is None:
            found = self._charset = charset_of(self.header("content-type"))
        return found

    def json(self) -> Any:
        """The body parsed as JSON (once; as in requests, a method); raises ``ValueError`` when it is not JSON."""
        parsed = self._json
        if parsed is None:
            try:
                parsed = _loads(self.text), None  # the text every extractor sees, invalid bytes replaced
            except ValueError as exc:
                parsed = None, exc
            self._json = parsed
        value, error = parsed
        if error is not None:
            raise error
        return value

    @cached_property
    def html(self) -> Any:
        """The body parsed as HTML (an ``lxml`` element tree root), from ``text`` like every extractor.

        ``huge_tree`` lifts libxml2's nesting limit from 256 to 2048 levels (the body is bounded by
        ``max_body`` anyway); a document nested deeper is cut there, and ``html_cut`` says so.
        """
        from lxml import html

        parser = html.HTMLParser(huge_tree=True)
        text = self.text
        root = html.fromstring(text or "<html/>", parser=parser)
        self.html_cut = _cut(parser.error_log)
        return root

    html_cut: str | None = None  # why the HTML tree lacks part of the document (set by ``html``)

    @cached_property
    def xml(self) -> Any:
        """The body parsed as XML (an ``lxml`` element); raises ``ValueError`` when it is not XML.

        Decoded like ``text`` (the ``Content-Type`` charset, else UTF-8, invalid bytes replaced), whatever the
        XML declaration says, so all extractors see the same characters.
        """
        from lxml import etree

        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, huge_tree=True, encoding="utf-8", remove_blank_text=False
        )
        try:
            return etree.fromstring(self.text.encode("utf-8"), parser)
        except etree.XMLSyntaxError as exc:
            raise ValueError(f"body is not XML: {exc}") from None

    @property
    def is_xml(self) -> bool:
        ctype = (self.header("content-type") or "").lower()
        return "xml" in ctype and "html" not in ctype

    @property
    def status_code(self) -> int:
        """``status``, under the name requests and Locust use (for Python steps)."""
        return self.status

    @property
    def content(self) -> bytes:
        return self.body

    @property
    def protocol(self) -> str:
        """``HTTP/2`` or ``HTTP/1.1``: what the request went over."""
        return "HTTP/2" if self.http2 else "HTTP/1.1"

    def __repr__(self) -> str:
        return f"<Response {self.method} {self.url} {self.status or self.error}>"

"""Reading one HTTP/1.1 response: a quick path for the usual head, llhttp for everything else.

Most responses of a load test arrive whole in one read with an ASCII head, a ``Content-Length`` and no
``Transfer-Encoding``. ``quick`` reads those with a handful of C-level string calls, and each distinct head
only once (``shape``: the same server sends the same few heads again and again); llhttp's Python
callbacks (about fifteen per response) cost more than the parsing itself. Anything else — a head split
across reads, chunked or close-delimited bodies, interim 1xx responses, HTTP/1.0, odd bytes, duplicate
lengths — goes to ``Parser`` (llhttp), which decides what is malformed. Both give the session the same
attributes: ``get_code()``, ``reason``, ``headers``, ``body``, ``received``, ``trailing``,
``should_keep_alive()``, and ``plain`` (True: no header the session acts on).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from geventhttpclient._parser import HTTPParseError, HTTPResponseParser

__all__ = ["HTTPParseError", "Parser", "Quick", "fields", "quick"]

# A head the quick path takes: HTTP/1.1, a final status, ASCII field lines with token names. Anything else
# (even if valid) is llhttp's to judge.
# Possessive quantifiers (``*+``): no character of a head can be matched two ways, so the engine keeps no
# backtracking state (a quarter fewer instructions).
_HEAD = re.compile(
    r"HTTP/1\.1 [2-5][0-9][0-9](?: [\t\x20-\x7e]*+)?+(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]++:[\t\x20-\x7e]*+)*+"
)
_CLOSE = re.compile(r"\r\nconnection:[^\r]*\bclose\b")  # on the lower-cased head
_LENGTH = "\r\ncontent-length:"
_ACTED_ON = ("\r\nset-cookie:", "\r\nlocation:", "\r\ncontent-encoding:")


class Parser(HTTPResponseParser):
    """One response from llhttp's callbacks: status, headers in arrival order, body."""

    __slots__ = (
        "body",
        "complete",
        "field",
        "headers",
        "limit",
        "reason",
        "received",
        "skip_body",
        "state",
        "trailing",
        "value",
    )

    plain = False  # the session looks at every header
    lines = None  # the headers are parsed already
    http2 = False
    charset = None  # read from the headers when the body's text is asked for

    def __init__(self, skip_body: bool, limit: int) -> None:
        super().__init__()
        self.skip_body = skip_body
        self.limit = limit  # body bytes kept at most; beyond, they are counted and dropped
        self.received = 0  # body bytes received
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.field = ""
        self.value = ""
        self.state = 0  # 0 between headers, 1 in a name, 2 in a value (llhttp may split both)
        self.body = bytearray()
        self.complete = False
        self.trailing = False  # bytes after the response: the connection must not be reused

    def _on_message_begin(self) -> None:
        if self.complete:
            raise HTTPParseError("data after the response")
        self.reason = ""

    def _on_status(self, reason: str) -> None:
        self.reason += reason

    def _on_header_field(self, text: str) -> None:
        if self.state == 1:
            self.field += text
        else:
            if self.state == 2:
                self.headers.append((self.field, self.value))
            self.field = text
            self.state = 1

    def _on_header_value(self, text: str) -> None:
        if self.state == 2:
            self.value += text
        else:
            self.value = text
            self.state = 2

    def _on_headers_complete(self) -> bool:
        if self.state:
            self.headers.append((self.field, self.value if self.state == 2 else ""))
            self.state = 0
        return self.skip_body

    def _on_body(self, data: bytearray) -> None:
        self.received += len(data)
        if self.received <= self.limit:
            self.body += data
        elif self.body:
            self.body = bytearray()  # over the limit: keep nothing, count the rest

    def _on_message_complete(self) -> None:
        code = self.get_code()
        if 100 <= code < 200 and code != 101:
            self.headers = []  # an interim response; the final one follows on the same connection
        else:
            self.complete = True


def fields(lines: Sequence[str]) -> list[tuple[str, str]]:
    """(name, value) of each field line after the status line, as llhttp gives them."""
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name, value.lstrip(" \t")))  # llhttp keeps trailing blanks
    return headers


def field(lines: Sequence[str], lname: str) -> str | None:
    """The first value of the lower-case name ``lname`` in ``lines``, as ``fields`` gives it, splitting no more."""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == lname:
            return value.lstrip(" \t")
    return None


class Quick:
    """A response whose head ``quick`` read; ``missing`` body bytes are still to come (``add``).

    ``lines`` are the head's lines; they become ``headers`` only where something reads them."""

    http2 = False

    __slots__ = (
        "body",
        "charset",
        "code",
        "keep",
        "limit",
        "lines",
        "missing",
        "plain",
        "reason",
        "received",
        "trailing",
    )

    def __init__(
        self,
        code: int,
        lines: tuple[str, ...],
        keep: bool,
        plain: bool,
        length: int,
        limit: int,
        data: bytes,
        charset: str,
    ) -> None:
        """``data``: what came after the head in the same read."""
        self.code = code
        self.charset = charset
        self.lines = lines
        self.reason = lines[0][13:]
        self.keep = keep
        self.plain = plain
        self.limit = limit
        size = len(data)
        self.trailing = size > length
        if size >= length:  # the usual case: the whole body came with the head
            self.missing = 0
            self.received = length
            self.body: bytes | bytearray = (data[:length] if self.trailing else data) if length <= limit else b""
        else:
            self.missing = length
            self.received = 0
            self.body = bytearray()
            self.add(data)

    @property
    def headers(self) -> list[tuple[str, str]]:
        return fields(self.lines)

    def get_code(self) -> int:
        return self.code

    def should_keep_alive(self) -> bool:
        return self.keep

    def add(self, data: bytes) -> None:
        """Body bytes as they arrive; any beyond the length are trailing (the connection is not reused)."""
        size = len(data)
        if size > self.missing:
            self.trailing = True
            size = self.missing
            data = data[:size]
        self.missing -= size
        self.received += size
        if self.received <= self.limit:
            self.body += data
        elif self.body:
            self.body = bytearray()


Shape = tuple[int, tuple[str, ...], bool, bool, int, str]
"""What a head says: (status, its lines, keep-alive, plain, Content-Length or -1 when it has none, charset)."""

_shapes: dict[bytes, Shape | None] = {}
_SHAPES_KEPT = 512  # distinct heads remembered (a server's answers differ by their Date, once a second)
_SHAPE_BYTES = 2048  # a longer head is read each time: a hostile server's 64 KiB heads would fill 64 MB


def shape(head: bytes) -> Shape | None:
    """The shape of a head (the bytes before its blank line), or None when the quick path does not take it.

    A load test receives the same few heads again and again: each is read once, then looked up.
    """
    try:
        return _shapes[head]
    except KeyError:
        pass
    found = _read_shape(head.decode("latin-1"))
    if len(head) <= _SHAPE_BYTES:
        if len(_shapes) >= _SHAPES_KEPT:
            _shapes.clear()
        _shapes[head] = found
    return found


def _read_shape(head: str) -> Shape | None:
    if _HEAD.fullmatch(head) is None:
        return None
    lower = head.lower()
    if "\r\ntransfer-encoding:" in lower:
        return None
    length = -1
    at = lower.find(_LENGTH)
    if at >= 0:
        start = at + len(_LENGTH)
        if lower.find(_LENGTH, start) >= 0:
            return None  # two lengths: llhttp judges
        stop = lower.find("\r\n", start)
        text = lower[start:] if stop < 0 else lower[start:stop]
        text = text.strip(" \t")
        if not (text.isascii() and text.isdigit()):
            return None
        length = int(text)
    plain = _ACTED_ON[0] not in lower and _ACTED_ON[1] not in lower and _ACTED_ON[2] not in lower
    keep = "close" not in lower or _CLOSE.search(lower) is None
    lines = tuple(head.split("\r\n"))
    return int(head[9:12]), lines, keep, plain, length, charset_of(field(lines, "content-type"))


def charset_of(content_type: str | None) -> str:
    """The charset a ``Content-Type`` names, else UTF-8."""
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return "utf-8"


def quick(data: bytes, head_only: bool, limit: int) -> Quick | None:
    """The response that begins with ``data`` (the first read), if its head is whole and usual; else None."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    found = shape(data[:end])
    if found is None:
        return None
    code, lines, keep, plain, length, charset = found
    if head_only or code == 204 or code == 304:
        length = 0
    elif length < 0:
        return None  # the body ends when the connection closes: llhttp reads it
    return Quick(code, lines, keep, plain, length, limit, data[end + 4 :], charset)

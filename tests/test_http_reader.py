"""The quick reader against llhttp: the same response reads the same, and what is unusual goes to llhttp.

Each head is read by both: llhttp (``Parser``, fed the bytes as they would arrive) and ``quick``. Where
``quick`` takes a response, every attribute the session reads must agree; where it declines, llhttp decides
(and a malformed response must still fail as malformed through the session: see test_hostile_http.py).
"""

from __future__ import annotations

import pytest

from runner.http import reader
from runner.http.reader import HTTPParseError, Parser, quick

NGINX = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Wed, 02 Dec 2026 18:50:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"
)

TAKEN = {
    "nginx": NGINX,
    "no reason": b"HTTP/1.1 200\r\nContent-Length: 3\r\n\r\nabc",
    "close": b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    "close among tokens": b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\nContent-Length: 1\r\n\r\nx",
    "closed is not close": b"HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 1\r\n\r\nx",
    "close in another header": b"HTTP/1.1 200 OK\r\nX-Note: close\r\nContent-Length: 1\r\n\r\nx",
    "spaces around values": b"HTTP/1.1 200 OK\r\nX-A:   spaced \t\r\nX-B:\r\nContent-Length:  4 \r\n\r\nbody",
    "cookies": b"HTTP/1.1 302 Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nLocation: /next\r\n"
    b"Content-Length: 0\r\n\r\n",
    "gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
    "204 without length": b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n",
    "304 with length": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
    "500 reason with symbols": b"HTTP/1.1 500 Oops: it (really) broke!\r\nContent-Length: 1\r\n\r\n!",
    "trailing bytes": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
}

DECLINED = {
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "close-delimited": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it",
    "HTTP/1.0": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "interim 100": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    "a length not a number": b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok",
    "a length in other digits": "HTTP/1.1 200 OK\r\nContent-Length: \u00b2\r\n\r\nok".encode("latin-1"),
    "non-ASCII value": "HTTP/1.1 200 OK\r\nX-Name: caf\u00e9\r\nContent-Length: 2\r\n\r\nok".encode("latin-1"),
    "folded value": b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 2\r\n\r\nok",
    "bare LF": b"HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\nok",
    "space before colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
    "no colon": b"HTTP/1.1 200 OK\r\nnonsense\r\nContent-Length: 2\r\n\r\nok",
    "NUL in a value": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "status of two digits": b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
    "head not whole": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
    "not HTTP": b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
}


def by_llhttp(data: bytes, head_only: bool = False, limit: int = 1 << 20) -> Parser:
    parser = Parser(head_only, limit)
    try:
        parser.feed(data)
    except HTTPParseError:
        if not parser.complete:
            raise
        parser.trailing = True
    return parser


def seen(reply: object) -> tuple:
    return (
        reply.get_code(),  # type: ignore[attr-defined]
        reply.reason,  # type: ignore[attr-defined]
        reply.headers,  # type: ignore[attr-defined]
        bytes(reply.body),  # type: ignore[attr-defined]
        reply.received,  # type: ignore[attr-defined]
        not reply.trailing and reply.should_keep_alive(),  # type: ignore[attr-defined]  # the connection is reused
    )


@pytest.mark.parametrize("case", sorted(TAKEN))
def test_quick_reads_what_llhttp_reads(case: str) -> None:
    data = TAKEN[case]
    reply = quick(data, False, 1 << 20)
    assert reply is not None and reply.missing == 0
    assert seen(reply) == seen(by_llhttp(data))


@pytest.mark.parametrize("case", sorted(DECLINED))
def test_quick_leaves_the_unusual_to_llhttp(case: str) -> None:
    assert quick(DECLINED[case], False, 1 << 20) is None


def test_the_session_acts_on_cookies_redirects_and_encodings_only_when_their_headers_are_there() -> None:
    for case in ("cookies", "gzip"):
        assert quick(TAKEN[case], False, 100).plain is False  # type: ignore[union-attr]
    assert quick(NGINX, False, 100).plain is True  # type: ignore[union-attr]
    assert quick(b"HTTP/1.1 200 OK\r\nX-Location: a\r\nContent-Length: 0\r\n\r\n", False, 100).plain is True  # type: ignore[union-attr]


def test_a_body_arriving_in_pieces_is_whole_and_what_follows_it_is_trailing() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
    reply = quick(head + b"abc", False, 100)
    assert reply is not None and reply.missing == 7
    reply.add(b"defg")
    assert (reply.missing, reply.trailing) == (3, False)
    reply.add(b"hijEXTRA")
    assert (bytes(reply.body), reply.received, reply.missing, reply.trailing) == (b"abcdefghij", 10, 0, True)
    assert seen(reply) == seen(by_llhttp(head + b"abcdefghijEXTRA"))


def test_a_body_over_the_limit_is_counted_not_kept() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n" + b"abcdef"
    reply = quick(data[:-3], False, 4)
    assert reply is not None
    reply.add(data[-3:])
    assert (bytes(reply.body), reply.received) == (b"", 6)
    assert seen(reply) == seen(by_llhttp(data, limit=4))
    whole = quick(data, False, 4)  # the same, arrived in one read
    assert whole is not None and (bytes(whole.body), whole.received, whole.missing) == (b"", 6, 0)
    assert seen(whole) == seen(by_llhttp(data, limit=4))
    assert bytes(quick(data, False, 6).body) == b"abcdef"  # type: ignore[union-attr]  # at the limit: kept


def test_head_has_no_body_whatever_its_length_says() -> None:
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
    reply = quick(data, True, 100)
    assert reply is not None and reply.missing == 0
    assert seen(reply) == seen(by_llhttp(data, head_only=True))
    again = quick(data, False, 100)  # the same head, remembered, for a GET: the body is still to come
    assert again is not None and again.missing == 1234


def test_a_head_is_read_once_then_remembered_and_the_memory_stays_bounded() -> None:
    reader._shapes.clear()
    first, second = quick(NGINX, False, 100), quick(NGINX + b"", False, 100)
    assert first is not None and second is not None and first is not second
    assert first.lines is second.lines and len(reader._shapes) == 1  # one reading, shared (a tuple: read-only)
    assert seen(second) == seen(by_llhttp(NGINX))
    chunked = DECLINED["chunked"]
    assert quick(chunked, False, 100) is None and quick(chunked, False, 100) is None  # declined, remembered so
    for second_of_day in range(reader._SHAPES_KEPT + 10):  # a Date a second: a new head each time
        head = NGINX.replace(
            b"18:50:00", f"{second_of_day // 3600:02}:{second_of_day // 60 % 60:02}:{second_of_day % 60:02}".encode()
        )
        assert quick(head, False, 100) is not None
    assert len(reader._shapes) <= reader._SHAPES_KEPT
    reader._shapes.clear()
    long = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * reader._SHAPE_BYTES + b"\r\nContent-Length: 1\r\n\r\nx"
    reply = quick(long, False, 100)  # a long head (a hostile server's) is read, not remembered
    assert reply is not None and bytes(reply.body) == b"x" and reader._shapes == {}


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (b'text/html; charset="ISO-8859-1"', "ISO-8859-1"),
        (b"application/json;CHARSET=utf-16", "utf-16"),
        (b"text/plain; format=flowed", "utf-8"),
        (None, "utf-8"),
    ],
)
def test_the_head_says_the_charset_once(content_type: bytes | None, expected: str) -> None:
    head = b"HTTP/1.1 200 OK\r\n" + (b"Content-Type: " + content_type + b"\r\n" if content_type else b"")
    reply = quick(head + b"Content-Length: 0\r\n\r\n", False, 100)
    assert reply is not None and reply.charset == expected

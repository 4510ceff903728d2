"""``HttpSession``: the HTTP client of one virtual user.

One keep-alive connection per user and origin, like a browser tab: a gevent socket (TLS-wrapped for https),
opened on first use and kept between requests, with a liveness check before reuse when it was idle for a
second or more. Nothing else is held per origin, so 10,000 idle users stay small. For plain HTTP the bytes go
through the kernel socket directly (``_raw_io``: it relies on gevent's ``socket._sock``, ``_read_event`` and
``hub``; the tests fail loudly if a gevent release renames them), which nearly doubled requests per second.

The request head is written in one go and the response is read with geventhttpclient's C parser (llhttp)
into exactly what ``Response`` needs, headers in arrival order. A kept-alive connection the server closed is
retried once, only when nothing of the response arrived and the method is idempotent (RFC 9110 9.2.2); the
response counts its ``retries``.

A request's ``timeout`` is a deadline for the whole exchange (connecting, sending, the response, the
redirects followed), one libev timer per session and timeout value, re-armed per request. Bodies are kept up
to ``max_body`` bytes (after decompression too); beyond, they are read, counted and dropped (``unread``).

``elapsed_ms`` runs from just before the connection is taken (so it includes connecting, and TLS, when a
new connection is needed) to the last byte of the body; with redirects it is the sum of the exchanges.
Decompression and cookie handling are outside it. ``timings`` splits it into phases
(``scenario.limits.PHASES``: DNS, TCP connect, TLS, sending, waiting for the first byte, receiving) from
timestamps taken where the exchange is anyway; a reused connection's first three are 0.

Network and server faults never raise: they come back as ``Response(status=0, error=...)``. Misuse by the
caller (two bodies, a CR/LF in a header, a relative URL without a base URL) raises ``ValueError``.
"""

from __future__ import annotations

import _socket
import json as jsonlib
import os
import re
import ssl
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from functools import lru_cache
from itertools import islice
from operator import add
from socket import gaierror
from time import perf_counter
from typing import Any
from urllib.parse import quote, quote_plus, urljoin, urlsplit

import gevent
import gevent.socket
from gevent import getcurrent, monkey
from gevent import ssl as gevent_ssl

from runner import __version__
from runner.http.cookies import CookieJar
from runner.http.http2 import Connection as H2Connection
from runner.http.http2 import H2Error
from runner.http.http2 import connect as h2_connect
from runner.http.http2 import exchange as h2_exchange
from runner.http.http2 import phases as h2_phases
from runner.http.reader import HTTPParseError, Parser, Quick, quick
from runner.http.response import Response


class _Nothing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOTHING"


NOTHING: Any = _Nothing()
"""Default of ``json=``: "no JSON body" (``None`` is the JSON body ``null``)."""

USER_AGENT = f"lrun/{__version__}"

_RECV_SIZE = 65536
_SPARE = 5  # idle HTTP/1.1 connections kept per origin besides ``sock``: a browser's 6 in all
_FRESH = 1.0  # seconds: a connection idle for less is reused without a liveness check
_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
_IDEMPOTENT = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"))  # RFC 9110 9.2.2: safe to resend
MAX_BODY = 10 * 2**20  # body bytes kept in memory by default, after decompression too
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"))
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ABSOLUTE = re.compile(r"(https?://[^/?#]*)(.*)", re.IGNORECASE | re.DOTALL)
_OTHER_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")
_UNSAFE = re.compile(r"[^\x21-\x7e]")  # what may not appear raw in a request target
_SAFE = "!#$%&'()*+,/:;=?@[]~"  # kept by the re-quoting of an unsafe target, so %xx escapes survive
_SKIPPED = frozenset(("host", "cookie", "content-length"))  # rendered per request, not from the header block


_targets: dict[tuple[str | None, str], tuple[str | None, str]] = {}  # (base_url, url) -> HttpSession._parse(url)
_TARGETS_KEPT = 4096  # URLs remembered; then forgotten at once (a URL with an id in it is new each time)
_TARGET_CHARS = 2048  # a longer URL (a big value templated into it) is parsed each time, not kept


class _Deadline(BaseException):
    """Thrown into the user's greenlet when a request's deadline passes (a BaseException, like gevent's)."""


class _ConnectError(str):
    """The error of an exchange that could not connect."""

    __slots__ = ()


class _NoResponse(Exception):
    """The server closed the connection before sending a byte."""


class _Incomplete(Exception):
    """The server closed the connection before the response was complete."""


# errors that mean "the server closed the kept-alive connection": worth one retry when nothing arrived
_STALE = (_NoResponse, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class _Origin:
    """(scheme, host, port) and the user's idle keep-alive connection to it."""

    __slots__ = ("h2", "host", "host_header", "https", "idle_since", "label", "port", "sock", "spare", "url")

    def __init__(self, scheme: str, host: str, port: int) -> None:
        self.https = scheme == "https"
        self.host = host  # lower-case, IPv6 without brackets
        self.port = port
        name = f"[{host}]" if ":" in host else host
        self.host_header = name if port == _DEFAULT_PORTS[scheme] else f"{name}:{port}"
        self.url = f"{scheme}://{self.host_header}"
        self.label = f"{name}:{port}"
        self.sock: Any = None  # the idle keep-alive connection, between requests
        self.idle_since = 0.0  # perf_counter() when it went idle
        self.h2: Any = None  # the HTTP/2 connection (runner.http.http2), when ALPN chose h2
        self.spare: list[Any] = []  # more idle HTTP/1.1 connections, opened by a parallel group


class _Headers:
    """Request headers rendered once: the block of lines and what is decided per request."""

    __slots__ = ("block", "cookie", "has_type", "host", "last", "pairs")

    def __init__(self, pairs: dict[str, tuple[str, str]], block: str | None = None) -> None:
        self.pairs = pairs  # lower-case name -> (name as given, value)
        self.block = _lines(pairs.items()) if block is None else block
        self.host = pairs["host"][1] if "host" in pairs else None
        self.cookie = pairs["cookie"][1] if "cookie" in pairs else None  # replaces the jar's cookies
        self.has_type = "content-type" in pairs
        self.last: tuple[Mapping[str, str], _Headers] | None = None  # the last merge: a request's own, the result

    def merged(self, extra: Mapping[str, str]) -> _Headers:
        """These headers with a request's own, which win. The same as last time (a token that stays for the
        session: the usual case) are merged already; when they only add names, their lines extend the block
        instead of all being rendered again."""
        last = self.last
        if last is not None and last[0] == extra:
            return last[1]
        pairs = dict(self.pairs)
        for name, value in extra.items():
            pairs[name.lower()] = _checked(name, value)
        if len(pairs) < len(self.pairs) + len(extra):
            merged = _Headers(pairs)  # a name replaced (or given twice): render it all
        else:
            merged = _Headers(pairs, self.block + _lines(islice(pairs.items(), len(self.pairs), None)))
        self.last = (dict(extra), merged)  # a copy: a caller may change its dict and send it again
        return merged


def _lines(pairs: Iterable[tuple[str, tuple[str, str]]]) -> str:
    return "".join(f"{name}: {value}\r\n" for key, (name, value) in pairs if key not in _SKIPPED)


def _checked(name: str, value: Any) -> tuple[str, str]:
    if not isinstance(value, str):
        value = str(value)
    if not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value:
        raise ValueError(f"invalid header {name!r}: {value!r}")
    return name, value


def _text(value: Any) -> str | bytes:
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _pairs(data: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> Iterator[tuple[str, str | bytes]]:
    """Key/value pairs of a mapping or sequence of pairs; list values become repeated keys."""
    items = data.items() if isinstance(data, Mapping) else data
    for key, value in items:
        if isinstance(value, list | tuple):
            for item in value:
                yield key, _text(item)
        else:
            yield key, _text(value)


def urlencode(data: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> str:
    """``a=1&b=x+y``: lists as repeated keys, booleans as true/false, None as empty."""
    return "&".join(f"{quote_plus(key)}={quote_plus(value)}" for key, value in _pairs(data))


def _quote_param(text: str) -> str:
    return text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _multipart(form: Mapping[str, Any] | None, files: Mapping[str, tuple[str, bytes | str, str]]) -> tuple[bytes, str]:
    boundary = "lrun-" + os.urandom(12).hex()
    out = bytearray()
    for name, value in _pairs(form or {}):
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote_param(name)}"\r\n\r\n'.encode()
        out += value if isinstance(value, bytes) else value.encode()
        out += b"\r\n"
    for name, (filename, content, ctype) in files.items():
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote_param(name)}"; '
            f'filename="{_quote_param(filename)}"\r\n'
            f"Content-Type: {ctype or 'application/octet-stream'}\r\n\r\n"
        ).encode()
        out += content.encode() if isinstance(content, str) else content
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _encode_body(
    json: Any, form: Mapping[str, Any] | None, body: bytes | str | None, files: Mapping[str, Any] | None
) -> tuple[bytes, str | None]:
    given = (json is not NOTHING) + (form is not None and not files) + (body is not None) + bool(files)
    if given > 1:
        raise ValueError("give at most one of json=, form=, body= and files= (form= may go with files=)")
    if json is not NOTHING:
        return jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False).encode(), "application/json"
    if files:
        return _multipart(form, files)
    if form is not None:
        return urlencode(form).encode("ascii"), "application/x-www-form-urlencoded"
    if isinstance(body, str):
        return body.encode(), None
    return bytes(body or b""), None


def _inflate(body: bytes, wbits: int, limit: int) -> bytes | None:
    """``body`` inflated, or None when it would grow past ``limit`` bytes (inflating stops there)."""
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(body, limit + 1)
    if len(out) > limit:
        return None
    out += inflater.flush()
    if not inflater.eof:
        raise zlib.error("incomplete or truncated stream")
    return out if len(out) <= limit else None


def _decode(body: bytes, encoding: str, limit: int) -> tuple[bytes | None, str | None]:
    """(the decoded body or None when it is over ``limit``, None) or (body, the error)."""
    coding = encoding.strip().lower()
    try:
        if coding in ("gzip", "x-gzip"):
            return _inflate(body, 47, limit), None  # 32 + 15: gzip or zlib header
        if coding == "deflate":
            try:
                return _inflate(body, 15, limit), None
            except zlib.error:
                return _inflate(body, -15, limit), None  # raw deflate, as some servers send it
    except zlib.error as exc:
        return body, f"malformed response: cannot decode {coding} body ({exc})"
    return body, None


def _mib(size: int) -> str:
    return f"{size / 2**20:g} MiB" if size >= 2**20 else f"{size} bytes"


def _tls_context(cafile: str | None = None, *, verify: bool = True) -> ssl.SSLContext:
    """A gevent ``SSLContext`` (``ssl.create_default_context`` would give a blocking handshake)."""
    context = gevent_ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        if cafile:
            context.load_verify_locations(cafile)
        else:
            context.load_default_certs()
    else:  # load tests run against staging hosts with self-signed certificates
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@lru_cache(maxsize=4)
def _shared_tls_context(verify: bool, http2: bool = False) -> ssl.SSLContext:
    """One TLS context per process and verify setting: loading the CA store per user would cost memory.
    With ``http2`` it offers h2 by ALPN, then HTTP/1.1."""
    context = _tls_context(verify=verify)
    if http2:
        context.set_alpn_protocols(["h2", "http/1.1"])
    return context


_select = monkey.get_original("select", "select")  # the real, non-blocking select (gevent may patch it)


def _alive(sock: Any) -> bool:
    """An idle keep-alive connection is alive when it has nothing to read (no FIN, no stray bytes)."""
    try:
        if sock.fileno() < 0:
            return False
        readable, _, _ = _select([sock], [], [], 0.0)
        return not readable
    except (OSError, ValueError):
        return False


def _addresses(host: str, port: int) -> list[Any]:
    """getaddrinfo for a connection: an IP literal is parsed here, a name goes to gevent's resolver.

    gevent's default resolver sends every lookup to its pool of 10 threads, a queue entry and an event per
    lookup: 10,000 users connecting at once to 127.0.0.1 queued 10,000 of them, which made starting slow and
    the memory peak twice the steady state, for an answer that needs no lookup.
    """
    try:
        return _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM, 0, _socket.AI_NUMERICHOST)
    except gaierror:
        return gevent.socket.getaddrinfo(host, port, 0, gevent.socket.SOCK_STREAM)  # type: ignore[no-any-return]


def _connect_error(exc: BaseException, origin: _Origin, connect_timeout: float) -> str | None:
    if isinstance(exc, gaierror):
        return f"could not resolve host {origin.host} ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused ({origin.label})"
    if isinstance(exc, TimeoutError):
        return f"connect timed out after {connect_timeout}s ({origin.label})"
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "verify_message", "") or exc.reason or exc
        return f"TLS handshake failed ({origin.label}): {reason}"
    if isinstance(exc, OSError):
        return f"cannot connect to {origin.label}: {exc.strerror or exc}"
    if isinstance(exc, RuntimeError):  # getaddrinfo gave no address
        return f"could not resolve host {origin.host}"
    return None


def _timed_out(seconds: float, doing: str) -> str:
    return f"timed out after {seconds:g}s ({doing})"


def _io_error(exc: BaseException) -> str | None:
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, _NoResponse):
        return "server closed the connection without a response"
    if isinstance(exc, _Incomplete):
        return "connection closed before the response was complete"
    if isinstance(exc, HTTPParseError):
        return f"malformed response: {exc.args[0] if exc.args else exc}"
    if isinstance(exc, BrokenPipeError | ConnectionAbortedError):
        return "connection closed by the server while sending the request"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or exc}"
    return None


def _raw_io(sock: Any, wire: bytes, marks: list[float]) -> Callable[[int], bytes]:
    """Send ``wire`` and return a recv for plain TCP that skips gevent's socket wrapper.

    gevent's socket methods are Python; here the kernel socket is used directly (it is non-blocking under
    gevent) and a wait is a plain wait on the read event: the request's deadline interrupts it.
    """
    raw = sock._sock
    try:
        sent = raw.send(wire)
    except BlockingIOError:
        sent = 0
    if sent < len(wire):
        sock.sendall(memoryview(wire)[sent:])
    marks[3] = perf_counter()  # the request is written: waiting begins
    read_event, hub = sock._read_event, sock.hub
    hub.wait(read_event)  # the answer cannot be there yet: a recv now would fail (a syscall and an exception)

    def recv(size: int) -> bytes:
        while True:
            try:
                return raw.recv(size)
            except BlockingIOError:
                hub.wait(read_event)

    return recv


def _tls_io(sock: Any, wire: bytes, marks: list[float]) -> Callable[[int], bytes]:
    """Send ``wire`` and return a recv for TLS that skips gevent's SSL socket methods (Python, several per call).

    gevent's C-level SSL object reads and writes the non-blocking kernel socket itself; a would-block is a plain
    wait on the socket's event, as in ``_raw_io``, so the request's deadline interrupts it. EOF, clean or
    ragged, is ``b""``, as gevent gives it.
    """
    tls, hub, read_event, write_event = sock._sslobj, sock.hub, sock._read_event, sock._write_event
    view = memoryview(wire)
    while view:
        try:
            view = view[tls.write(view) :]
        except ssl.SSLWantWriteError:
            hub.wait(write_event)
        except ssl.SSLWantReadError:
            hub.wait(read_event)
    marks[3] = perf_counter()
    if not tls.pending():
        hub.wait(read_event)  # as in _raw_io: a read now would fail (and raise)

    def recv(size: int) -> bytes:
        while True:
            try:
                return tls.read(size)
            except ssl.SSLWantReadError:
                hub.wait(read_event)
            except ssl.SSLWantWriteError:
                hub.wait(write_event)
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLError as exc:
                if exc.args[0] == ssl.SSL_ERROR_EOF:
                    return b""
                raise

    return recv


def _read(parser: Parser, data: bytes, recv: Callable[[int], bytes]) -> Parser:
    """The response that begins with ``data``, through llhttp."""
    while True:
        try:
            parser.feed(data)
        except HTTPParseError:
            if not parser.complete:
                raise
            parser.trailing = True
        if parser.complete:
            return parser
        data = recv(_RECV_SIZE)
        if not data:
            with suppress(HTTPParseError):
                parser.feed(b"")  # end of file: ends a body delimited by the connection close
            if not parser.complete:
                raise _Incomplete
            return parser


class HttpSession:
    """The HTTP client of one virtual user: keep-alive connections, cookies, redirects, timing."""

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        timeout: float = 60.0,
        insecure: bool = True,
        max_redirects: int = 10,
        max_body: int = MAX_BODY,
        discard_body: bool = False,
        http2: bool = True,
    ) -> None:
        self.http2 = http2  # offer HTTP/2 by ALPN on https; False keeps to HTTP/1.1
        self.parallel = False  # requests under way in several greenlets (a parallel group): a timer each
        self.connect_timeout = float(connect_timeout)
        self.timeout = float(timeout)
        self.insecure = insecure
        self.max_redirects = max_redirects
        self.max_body = max_body
        self.discard_body = discard_body
        self.cookies = CookieJar()
        self._timers: dict[float, Any] = {}  # deadline seconds -> a reusable libev timer, made on first use
        # the last response's phases, ms (``PHASES``): set by ``_exchange`` and read by ``_send`` with no switch
        # between, so the greenlets of a parallel group never read each other's
        self._phases: tuple[float, ...] = ()
        self._origins: dict[str, _Origin] = {}  # "scheme://netloc" as written -> origin
        self._canonical: dict[tuple[str, str, int], _Origin] = {}
        pairs = {"user-agent": ("User-Agent", USER_AGENT)}
        for name, value in (headers or {}).items():
            pairs[name.lower()] = _checked(name, value)
        self._headers = _Headers(pairs)

        self.base_url = base_url
        self._base: _Origin | None = None
        self._prefix = ""  # path prefix of base_url, without its trailing slash
        self._base_path = "/"
        if base_url:
            match = _ABSOLUTE.match(base_url)
            if match is None:
                raise ValueError(f"base_url must be an absolute http(s) URL, not {base_url!r}")
            self._base = self._origin(match[1])
            self._base_path = match[2].split("?", 1)[0].split("#", 1)[0] or "/"
            self._prefix = self._base_path.rstrip("/")

    # -- public ---------------------------------------------------------------------------------------------

    @property
    def headers(self) -> dict[str, str]:
        """The session's default headers (a copy)."""
        return dict(self._headers.pairs.values())

    def set_header(self, name: str, value: str | None) -> None:
        """Set (or with None remove) a default header for the rest of the session."""
        pairs = dict(self._headers.pairs)
        if value is None:
            pairs.pop(name.lower(), None)
        else:
            pairs[name.lower()] = _checked(name, value)
        self._headers = _Headers(pairs)

    def request(
        self,
        method: str,
        url: str,
        *,
        query: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = NOTHING,
        form: Mapping[str, Any] | None = None,
        body: bytes | str | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = True,
        discard_body: bool | None = None,
    ) -> Response:
        """Send one request (and follow its redirects); faults come back as ``status=0`` with ``error``.

        ``timeout`` (default: the session's) is a deadline for the whole exchange: connecting, sending,
        the response and the redirects followed. ``discard_body`` (default: the session's) reads the body
        and counts its bytes without keeping it.
        """
        if method not in _METHODS:
            method = method.upper()
            if method not in _METHODS and not _TOKEN.fullmatch(method):
                raise ValueError(f"invalid HTTP method {method!r}")
        origin, target = self._resolve(url)
        if query:
            target = f"{target}{'&' if '?' in target else '?'}{urlencode(query)}"
        if json is NOTHING and form is None and body is None and not files:
            payload, ctype = b"", None
        else:
            payload, ctype = _encode_body(json, form, body, files)
        request_headers = self._headers.merged(headers) if headers else self._headers

        discard = self.discard_body if discard_body is None else discard_body
        seconds = self.timeout if timeout is None else float(timeout)
        timer = self._timers.get(seconds)
        if timer is None or self.parallel:
            # a repeating timer re-armed with again(): a one-shot libev timer cannot be started twice
            timer = gevent.get_hub().loop.timer(seconds, seconds)
            if not self.parallel:
                self._timers[seconds] = timer
        timer.again(getcurrent().throw, _Deadline, update=True)
        try:
            return self._send(
                method, origin, target, request_headers, payload, ctype, allow_redirects, discard, seconds
            )
        finally:
            timer.stop()

    def close(self) -> None:
        """Close every connection; the session stays usable and reconnects on the next request."""
        for origin in self._canonical.values():
            if origin.sock is not None:
                origin.sock.close()
            origin.sock = None
            if origin.h2 is not None:
                origin.h2.close()
                origin.h2 = None
            while origin.spare:
                origin.spare.pop().close()

    def __enter__(self) -> HttpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- URLs -----------------------------------------------------------------------------------------------

    def _origin(self, prefix: str) -> _Origin:
        """The origin of ``scheme://netloc`` (as written in some URL), parsed on first sight only."""
        origin = self._origins.get(prefix)
        if origin is None:
            parts = urlsplit(prefix)
            scheme = parts.scheme.lower()
            host = parts.hostname
            if not host:
                raise ValueError(f"no host in URL {prefix!r}")
            key = (scheme, host, parts.port or _DEFAULT_PORTS[scheme])
            origin = self._canonical.get(key)
            if origin is None:
                origin = self._canonical[key] = _Origin(*key)
            self._origins[prefix] = origin
        return origin

    def _resolve(self, url: str) -> tuple[_Origin, str]:
        """(origin, request target) of an absolute URL or of one relative to base_url.

        A scenario sends the same URLs again and again: each is parsed once per base URL, in the process."""
        key = (self.base_url, url)
        known = _targets.get(key)
        if known is None:
            known = self._parse(url)
            if len(url) <= _TARGET_CHARS:
                if len(_targets) >= _TARGETS_KEPT:
                    _targets.clear()
                _targets[key] = known
        prefix, target = known
        return (self._base if prefix is None else self._origin(prefix)), target  # type: ignore[return-value]

    def _parse(self, url: str) -> tuple[str | None, str]:
        """(``scheme://netloc`` of an absolute URL, or None for base_url's origin; the request target)."""
        match = _ABSOLUTE.match(url)
        prefix: str | None = None
        if match is not None:
            prefix = match[1]
            self._origin(prefix)  # a URL without a host is refused now, not when it is cached
            target = match[2] or "/"
            if target[0] != "/":
                target = "/" + target
        elif self._base is None:
            raise ValueError(f"relative URL {url!r} needs a base_url")
        elif url[:1] == "/":
            target = self._prefix + url
        elif not url or url[0] == "?":
            target = self._base_path + url
        elif _OTHER_SCHEME.match(url):
            raise ValueError(f"not an http(s) URL: {url!r}")
        else:
            target = f"{self._prefix}/{url}"
        if "#" in target:
            target = target[: target.index("#")]
        if _UNSAFE.search(target):
            target = quote(target, safe=_SAFE)
        return prefix, target

    # -- the exchange ---------------------------------------------------------------------------------------

    def _wire(
        self, method: str, origin: _Origin, target: str, headers: _Headers, payload: bytes, ctype: str | None
    ) -> bytes:
        """The request as sent: head and body in one buffer, one write."""
        head = f"{method} {target} HTTP/1.1\r\nHost: {headers.host or origin.host_header}\r\n{headers.block}"
        cookie = headers.cookie
        if cookie is None:
            cookie = self.cookies.header(origin.host, target, origin.https)
        if cookie:
            head += f"Cookie: {cookie}\r\n"
        if payload:
            if ctype and not headers.has_type:
                head += f"Content-Type: {ctype}\r\n"
            return f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload
        if method in _BODY_METHODS:
            head += "Content-Length: 0\r\n"
        return f"{head}\r\n".encode()

    def _send(
        self,
        method: str,
        origin: _Origin,
        target: str,
        headers: _Headers,
        payload: bytes,
        ctype: str | None,
        allow_redirects: bool,
        discard: bool,
        deadline: float,
    ) -> Response:
        elapsed = 0.0  # the sum of the exchanges: cookie handling between redirects is not timed
        redirects = retries = 0
        limit = 0 if discard else self.max_body
        timings: tuple[float, ...] | None = None
        while True:
            wire = self._wire(method, origin, target, headers, payload, ctype)
            parser, seconds, error, retried = self._exchange(origin, method, wire, deadline, limit)
            elapsed += seconds
            retries += retried
            if parser is not None:
                timings = self._phases if timings is None else tuple(map(add, timings, self._phases))
            url = origin.url + target
            if parser is None:
                failed = isinstance(error, _ConnectError)
                return Response(
                    method,
                    url,
                    0,
                    "",
                    None,
                    b"",
                    elapsed * 1000.0,
                    str(error),
                    retries=retries,
                    connect_failed=failed,
                    http2=error.__class__ is H2Error,
                )

            status = parser.get_code()
            location = encoding = None
            if not parser.plain:
                set_cookies = []
                for name, value in parser.headers:
                    size = len(name)
                    if size == 10 and name.lower() == "set-cookie":
                        set_cookies.append(value)
                    elif size == 8 and name.lower() == "location":
                        location = value
                    elif size == 16 and name.lower() == "content-encoding":
                        encoding = value
                if set_cookies:
                    self.cookies.store(origin.host, target, set_cookies)

            if allow_redirects and status in _REDIRECTS and location:
                if redirects < self.max_redirects:
                    try:
                        origin, target = self._resolve(urljoin(url, location.strip()))
                    except ValueError:
                        error = f"cannot follow redirect to {location!r}"
                    else:
                        redirects += 1
                        if status < 307 and method != "HEAD":
                            method, payload, ctype = "GET", b"", None
                        continue
                else:
                    error = f"too many redirects (max_redirects={self.max_redirects})"

            body: bytes | None = bytes(parser.body)
            size = parser.received
            if size > limit:
                body = None
            elif encoding is not None and body and error is None:
                body, error = _decode(body, encoding, limit)
                if body is not None:
                    size = len(body)
            unread = None
            if body is None:
                unread = "body not kept (discard_body)" if discard else f"body over {_mib(limit)} (max_body)"
            return Response(
                method,
                url,
                status,
                parser.reason,
                None if parser.lines else parser.headers,
                body or b"",
                elapsed * 1000.0,
                error,
                size=size,
                retries=retries,
                unread=unread,
                head=parser.lines,
                charset=parser.charset,
                http2=parser.http2,
                timings=timings,
            )

    def _exchange(
        self, origin: _Origin, method: str, wire: bytes, deadline: float, limit: int
    ) -> tuple[Any, float, str | None, bool]:
        """Write ``wire`` and read one response: (parser, seconds, None, retried) or (None, seconds, error, retried).

        The request's deadline (a ``_Deadline`` thrown into this greenlet) may interrupt any wait here. A
        response's phases are left in ``_phases`` (ms, as ``Response.timings``).
        """
        retried = False
        # this exchange's own perf_counter() marks (resolved, connected, TLS done, request sent): the greenlets of
        # a parallel group each connect and send on their own, never into a sibling's marks
        marks = [0.0, 0.0, 0.0, 0.0]
        started = perf_counter()
        while True:
            sock, origin.sock = origin.sock, None
            if sock is None and origin.spare:
                sock = origin.spare.pop()
            reused = sock is not None
            if reused and started - origin.idle_since > _FRESH and not _alive(sock):
                sock.close()
                sock, reused = None, False
            if sock is None:
                try:
                    if origin.https and self.http2:  # ALPN decides: an HTTP/2 connection, or a socket
                        sock = h2_connect(origin, lambda: self._connect(origin, marks))
                    else:
                        sock = self._connect(origin, marks)
                except BaseException as exc:
                    error = (
                        _timed_out(deadline, "connecting")
                        if isinstance(exc, _Deadline)
                        else _connect_error(exc, origin, self.connect_timeout)
                    )
                    if error is None:
                        raise
                    return None, perf_counter() - started, _ConnectError(error), retried
                if sock.__class__ is H2Connection:
                    try:
                        again = lambda: h2_connect(origin, lambda: self._connect(origin, marks))  # noqa: E731
                        done = h2_exchange(sock, origin, method, wire, limit, started, again)
                    except _Deadline:
                        return None, perf_counter() - started, H2Error(_timed_out(deadline, "HTTP/2 exchange")), retried
                    if done[0] is not None:
                        self._phases = h2_phases(done[0], started, marks, marks[0] != 0.0)  # it connected
                    return done
            received = False
            try:
                recv = _tls_io(sock, wire, marks) if origin.https else _raw_io(sock, wire, marks)
                data = recv(_RECV_SIZE)
                if not data:
                    raise _NoResponse
                first = perf_counter()
                received = True
                reply = quick(data, method == "HEAD", limit)
                parser: Parser | Quick
                if reply is None:
                    parser = _read(Parser(method == "HEAD", limit), data, recv)
                else:
                    parser = reply
                    while reply.missing:
                        data = recv(_RECV_SIZE)
                        if not data:
                            raise _Incomplete
                        reply.add(data)
                ended = perf_counter()
            except BaseException as exc:
                sock.close()
                if reused and not received and not retried and isinstance(exc, _STALE) and method in _IDEMPOTENT:
                    retried = True  # the server closed the idle connection: once more on a new one
                    continue  # (the lost attempt counts in this one's dns phase: started stays)
                if isinstance(exc, _Deadline):
                    error = _timed_out(deadline, "reading the response" if received else "waiting for the response")
                else:
                    error = _io_error(exc)
                if error is None:
                    raise
                return None, perf_counter() - started, error, retried

            sent = marks[3]
            if reused:
                self._phases = (
                    0.0,
                    0.0,
                    0.0,
                    (sent - started) * 1000.0,
                    (first - sent) * 1000.0,
                    (ended - first) * 1000.0,
                )
            else:
                resolved, connected, secured = marks[0], marks[1], marks[2]
                self._phases = (
                    (resolved - started) * 1000.0,
                    (connected - resolved) * 1000.0,
                    (secured - connected) * 1000.0,
                    (sent - secured) * 1000.0,
                    (first - sent) * 1000.0,
                    (ended - first) * 1000.0,
                )
            if not parser.trailing and parser.should_keep_alive():
                if origin.sock is not None:  # another greenlet of a parallel group put one back already
                    if len(origin.spare) >= _SPARE:
                        origin.spare.pop(0).close()
                    origin.spare.append(origin.sock)
                origin.sock = sock
                origin.idle_since = ended
            else:
                sock.close()
            return parser, ended - started, None, retried

    def _connect(self, origin: _Origin, marks: list[float]) -> Any:
        """A new connection to ``origin`` (TLS for https), trying each address in turn; ``marks[0:3]`` get when
        the name was resolved, the TCP connection made and the TLS handshake done (= connected for http).

        No TCP_NODELAY: a request goes out in one send, so Nagle never delays it, and leaving it on cost 5 %.
        """
        infos = _addresses(origin.host, origin.port)
        if not infos:
            raise RuntimeError("getaddrinfo gave no address")
        marks[0] = perf_counter()
        first_error: BaseException | None = None
        for family, kind, proto, _, address in infos:
            sock = gevent.socket.socket(family, kind, proto)
            try:
                sock.settimeout(self.connect_timeout)
                sock.connect(address)
                marks[1] = marks[2] = perf_counter()
                if origin.https:
                    context = _shared_tls_context(not self.insecure, self.http2)
                    sock = context.wrap_socket(sock, server_hostname=origin.host)
                    marks[2] = perf_counter()
                sock.settimeout(None)  # the request's deadline bounds every wait from here on
                return sock
            except BaseException as exc:
                sock.close()  # also when the deadline or a kill interrupts connecting
                if not isinstance(exc, OSError):
                    raise
                first_error = first_error or exc
        assert first_error is not None
        raise first_error

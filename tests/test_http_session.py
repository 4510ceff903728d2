"""HttpSession and CookieJar against real servers on 127.0.0.1.

Two kinds of server, both gevent-native and running in greenlets of this process (geventhttpclient
cooperates with them without monkey patching):

- a pywsgi WSGI app for ordinary HTTP (echo, cookies, redirects, compression, delays, uploads);
- ``RawServer``, a socket server whose every answer a test decides: bytes, silence, a reset, a close. It
  records the requests as they arrived on the wire and counts connections.
"""

from __future__ import annotations

import gzip
import json
import shutil
import socket
import struct
import subprocess
import time
import types
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import gevent
import pytest
from gevent import ssl as gevent_ssl
from gevent.pywsgi import WSGIServer
from gevent.server import StreamServer

import runner
from runner.http import NOTHING, CookieJar, HttpSession, Response
from runner.http import cookies as cookies_module
from runner.http import session as session_module

# -- a WSGI app for ordinary HTTP ---------------------------------------------------------------------------


def _echo(environ: dict) -> dict:
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return {
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "headers": headers,
        "body": environ["wsgi.input"].read().decode("utf-8", "replace"),
    }


def _multipart_parts(environ: dict) -> list[dict]:
    raw = environ["wsgi.input"].read()
    message = BytesParser(policy=policy.default).parsebytes(
        b"Content-Type: " + environ["CONTENT_TYPE"].encode() + b"\r\n\r\n" + raw
    )
    return [
        {
            "name": part.get_param("name", header="content-disposition"),
            "filename": part.get_filename(),
            "type": part.get_content_type(),
            "data": part.get_payload(decode=True).decode(),
        }
        for part in message.iter_parts()
    ]


def app(environ: dict, start_response: Callable) -> list[bytes]:
    path = environ["PATH_INFO"]
    args = parse_qs(environ["QUERY_STRING"], keep_blank_values=True)
    headers: list[tuple[str, str]] = [("Content-Type", "application/json")]
    status = 200
    body: bytes | None = None
    if path == "/set-cookie":
        headers += [("Set-Cookie", line) for line in args.get("c", [])]
    elif path == "/redirect":
        status = int(args["code"][0])
        headers = [("Location", args["to"][0])] + [("Set-Cookie", line) for line in args.get("c", [])]
        body = b""
    elif path.startswith("/chain/"):
        left = int(path.rsplit("/", 1)[1])
        if left:
            status, headers, body = 302, [("Location", f"/chain/{left - 1}")], b""
    elif path == "/delay":
        gevent.sleep(float(args["s"][0]))
    elif path in ("/gzip", "/deflate", "/raw-deflate", "/bad-gzip"):
        data = json.dumps({"compressed": True}).encode()
        if path == "/gzip":
            body, coding = gzip.compress(data), "gzip"
        elif path == "/deflate":
            body, coding = zlib.compress(data), "deflate"
        elif path == "/raw-deflate":
            squeeze = zlib.compressobj(wbits=-15)
            body, coding = squeeze.compress(data) + squeeze.flush(), "deflate"
        else:
            body, coding = b"not gzip at all", "gzip"
        headers.append(("Content-Encoding", coding))
    elif path == "/chunked":
        start_response("200 OK", [("Content-Type", "text/plain")])  # no length: pywsgi sends it chunked
        return [b"one,", b"two,", b"three"]
    elif path == "/multipart":
        body = json.dumps(_multipart_parts(environ)).encode()
    if body is None:
        body = json.dumps(_echo(environ)).encode()
    start_response(f"{status} {HTTPStatus(status).phrase}", headers)
    return [body]


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None)
    server.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.stop(timeout=1)


@pytest.fixture
def make_session() -> Iterator[Callable[..., HttpSession]]:
    made: list[HttpSession] = []

    def make(base_url: str, **kwargs: Any) -> HttpSession:
        session = HttpSession(base_url, **kwargs)
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()


@pytest.fixture
def session(app_url: str, make_session: Callable[..., HttpSession]) -> HttpSession:
    return make_session(app_url, timeout=5.0, connect_timeout=2.0)


# -- a raw socket server whose answers a test decides ------------------------------------------------------


@dataclass
class RawRequest:
    conn: int  # which connection, in accept order
    index: int  # which request on that connection
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]


def http_response(status: int = 200, body: bytes = b"ok", headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


Action = bytes | Callable[[socket.socket], None] | None  # send, act then close, or close without answer


class RawServer:
    def __init__(self, respond: Callable[[RawRequest], Action]) -> None:
        self.respond = respond
        self.requests: list[RawRequest] = []
        self.connections = 0
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def _handle(self, sock: socket.socket, _address: object) -> None:
        conn, index, pending = self.connections, 0, b""
        self.connections += 1
        try:
            while True:
                while b"\r\n\r\n" not in pending:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pending += data
                head, _, pending = pending.partition(b"\r\n\r\n")
                first, *lines = head.decode("latin-1").split("\r\n")
                method, target, _ = first.split(" ", 2)
                headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
                length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
                while len(pending) < length:
                    pending += sock.recv(65536)
                request = RawRequest(conn, index, method, target, headers, pending[:length])
                pending = pending[length:]
                index += 1
                self.requests.append(request)
                action = self.respond(request)
                if action is None:
                    return
                if callable(action):
                    action(sock)
                    return
                sock.sendall(action)
        finally:
            sock.close()

    def stop(self) -> None:
        self.server.stop(timeout=0.1)


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[RawRequest], Action]], RawServer]]:
    servers: list[RawServer] = []

    def start(respond: Callable[[RawRequest], Action]) -> RawServer:
        server = RawServer(respond)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _ok(_request: RawRequest) -> Action:
    return http_response()


# -- URLs and query strings ---------------------------------------------------------------------------------


def test_relative_urls_join_the_base_path_prefix(app_url: str, make_session: Callable[..., HttpSession]) -> None:
    for base in (f"{app_url}/echo/api", f"{app_url}/echo/api/"):
        session = make_session(base)
        assert session.request("GET", "/users").json()["path"] == "/echo/api/users"
        assert session.request("GET", "users").json()["path"] == "/echo/api/users"
        response = session.request("GET", "?page=2")
        assert response.json()["query"] == "page=2"
        assert response.url.startswith(base.rstrip("/"))
    # a URL is parsed once per base URL: the same one under another base goes there
    other = make_session(f"{app_url}/echo/other")
    assert other.request("GET", "/users").json()["path"] == "/echo/other/users"
    long = "/" + "a" * 3000  # a long one (a big value templated in) is parsed each time, not kept
    assert other.request("GET", long).json()["path"] == "/echo/other" + long
    kept = session_module._targets
    assert (other.base_url, "/users") in kept and (other.base_url, long) not in kept


def test_absolute_url_to_another_origin(session: HttpSession, raw_server: Callable) -> None:
    other = raw_server(_ok)
    response = session.request("GET", other.url + "/elsewhere?x=1#fragment")
    assert (response.status, response.body, response.url) == (200, b"ok", other.url + "/elsewhere?x=1")
    assert other.requests[0].target == "/elsewhere?x=1"
    assert other.requests[0].values("host") == [other.url.removeprefix("http://")]
    assert session.request("GET", other.url).url == other.url + "/"


def test_query_is_encoded_and_merged_with_the_url_query(session: HttpSession) -> None:
    response = session.request("GET", "/echo?a=1", query={"b": "x y&z", "l": [1, 2], "t": True, "n": None})
    assert response.json()["query"] == "a=1&b=x+y%26z&l=1&l=2&t=true&n="
    assert response.url.endswith("/echo?a=1&b=x+y%26z&l=1&l=2&t=true&n=")
    response = session.request("GET", "/echo", query=[("k", "v1"), ("k", "v2")])
    assert response.json()["query"] == "k=v1&k=v2"


def test_unsafe_characters_in_the_target_are_quoted(session: HttpSession, raw_server: Callable) -> None:
    server = raw_server(_ok)
    session.request("GET", server.url + "/a b/é?q=x y")
    assert server.requests[0].target == "/a%20b/%C3%A9?q=x%20y"


def test_relative_url_without_base_url_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="needs a base_url"):
        HttpSession("").request("GET", "/x")
    with pytest.raises(ValueError, match="absolute"):
        HttpSession("example.com")
    for _ in range(2):  # a URL refused is refused again, not remembered
        with pytest.raises(ValueError, match="not an http"):
            HttpSession("http://h").request("GET", "ftp://h/x")
        with pytest.raises(ValueError, match="no host"):
            HttpSession("http://h").request("GET", "http:///x")


# -- bodies --------------------------------------------------------------------------------------------------


def test_json_body_is_compact_with_its_content_type(session: HttpSession) -> None:
    echo = session.request("POST", "/echo", json={"a": [1, 2], "é": None}).json()
    assert echo["body"] == '{"a":[1,2],"é":null}'
    assert echo["headers"]["content-type"] == "application/json"
    assert session.request("POST", "/echo", json=None).json()["body"] == "null"
    echo = session.request("PUT", "/echo", json=[], headers={"content-type": "application/vnd.x+json"}).json()
    assert (echo["body"], echo["headers"]["content-type"]) == ("[]", "application/vnd.x+json")


def test_form_and_raw_bodies(session: HttpSession) -> None:
    echo = session.request("POST", "/echo", form={"user": "a b", "tags": ["x", "y"]}).json()
    assert echo["body"] == "user=a+b&tags=x&tags=y"
    assert echo["headers"]["content-type"] == "application/x-www-form-urlencoded"
    echo = session.request("POST", "/echo", body="héllo").json()
    assert (echo["body"], echo["headers"]["content-length"]) == ("héllo", "6")
    assert "content-type" not in echo["headers"]
    echo = session.request("PATCH", "/echo", body=b"\x00\x01", headers={"Content-Type": "application/x-bin"}).json()
    assert echo["headers"]["content-type"] == "application/x-bin"


def test_files_are_sent_as_multipart_with_form_fields(session: HttpSession) -> None:
    response = session.request(
        "POST",
        "/multipart",
        form={"title": "report", "n": 3},
        files={"upload": ("a.csv", b"x,y\n1,2\n", "text/csv"), "other": ("b.txt", b"hi", "")},
    )
    assert response.json() == [
        {"name": "title", "filename": None, "type": "text/plain", "data": "report"},
        {"name": "n", "filename": None, "type": "text/plain", "data": "3"},
        {"name": "upload", "filename": "a.csv", "type": "text/csv", "data": "x,y\n1,2\n"},
        {"name": "other", "filename": "b.txt", "type": "application/octet-stream", "data": "hi"},
    ]


def test_more_than_one_body_is_a_programming_error(session: HttpSession) -> None:
    for kwargs in (
        {"json": 1, "form": {}},
        {"json": 1, "body": b""},
        {"body": "x", "files": {"f": ("f", b"", "")}},
    ):
        with pytest.raises(ValueError, match="at most one"):
            session.request("POST", "/echo", **kwargs)


def test_content_length_zero_only_for_body_methods(session: HttpSession, raw_server: Callable) -> None:
    server = raw_server(_ok)
    session.request("POST", server.url + "/p")
    session.request("GET", server.url + "/g")
    post, get = server.requests
    assert post.values("content-length") == ["0"]
    assert get.values("content-length") == []


# -- request headers -----------------------------------------------------------------------------------------


def test_header_precedence_user_agent_and_host(make_session: Callable[..., HttpSession], raw_server: Callable) -> None:
    server = raw_server(_ok)
    session = make_session(server.url, headers={"X-Session": "s", "X-Both": "session"})
    session.request("GET", "/", headers={"x-both": "request", "X-Request": "r"})
    session.request("GET", "/", headers={"User-Agent": "custom/1", "Host": "example.test"})
    first, second = server.requests
    assert first.values("x-session") == ["s"]
    assert first.values("x-both") == ["request"]  # one line only, the request's
    assert first.values("x-request") == ["r"]
    assert first.values("user-agent") == [f"lrun/{runner.__version__}"]
    assert first.values("host") == [server.url.removeprefix("http://")]
    assert "accept-encoding" not in {name.lower() for name, _ in first.headers}
    assert second.values("user-agent") == ["custom/1"]
    assert second.values("host") == ["example.test"]

    session.set_header("Authorization", "Bearer t")
    session.set_header("X-Session", None)
    session.request("GET", "/")
    assert server.requests[2].values("authorization") == ["Bearer t"]
    assert server.requests[2].values("x-session") == []
    assert session.headers == {
        "User-Agent": f"lrun/{runner.__version__}",
        "X-Both": "session",
        "Authorization": "Bearer t",
    }


def test_request_headers_that_only_add_names(make_session: Callable[..., HttpSession], raw_server: Callable) -> None:
    """The usual case (a templated Authorization) takes a shorter way: the wire must be the same."""
    server = raw_server(_ok)
    session = make_session(server.url, headers={"X-Session": "s"})
    session.request("GET", "/", headers={"Authorization": "Bearer 1", "X-Twice": "a", "x-twice": "b"})
    session.request("POST", "/", body="{}", headers={"X-New": "n", "Content-Type": "application/json"})
    session.request("GET", "/", headers={"X-New": "n", "Cookie": "a=1"})
    first, second, third = server.requests
    assert first.values("authorization") == ["Bearer 1"] and first.values("x-session") == ["s"]
    assert first.values("x-twice") == ["b"]  # one line, the last one given
    assert second.values("content-type") == ["application/json"] and second.values("x-new") == ["n"]
    assert third.values("cookie") == ["a=1"] and third.values("x-new") == ["n"]
    session.request("GET", "/")
    assert server.requests[3].values("authorization") == [] and server.requests[3].values("x-new") == []
    assert session.headers == {"User-Agent": f"lrun/{runner.__version__}", "X-Session": "s"}


def test_the_same_request_headers_again_are_sent_as_they_are_now(
    make_session: Callable[..., HttpSession], raw_server: Callable
) -> None:
    """A request's headers equal to the last ones reuse their merge; a changed value, or a caller's dict changed
    in place, is merged again."""
    server = raw_server(_ok)
    session = make_session(server.url)
    mine = {"Authorization": "Bearer 1"}
    session.request("GET", "/", headers=mine)
    session.request("GET", "/", headers={"Authorization": "Bearer 1"})
    session.request("GET", "/", headers={"Authorization": "Bearer 2"})
    mine["Authorization"] = "Bearer 3"
    session.request("GET", "/", headers=mine)
    mine["X-More"] = "m"
    session.request("GET", "/", headers=mine)
    sent = [(r.values("authorization"), r.values("x-more")) for r in server.requests]
    assert sent == [
        (["Bearer 1"], []),
        (["Bearer 1"], []),
        (["Bearer 2"], []),
        (["Bearer 3"], []),
        (["Bearer 3"], ["m"]),
    ]
    with pytest.raises(ValueError, match="invalid header"):
        session.request("GET", "/", headers={"Authorization": "Bearer 3\r\nX-Evil: 1"})


def test_session_user_agent_replaces_the_default(make_session: Callable, raw_server: Callable) -> None:
    server = raw_server(_ok)
    make_session(server.url, headers={"user-agent": "mine"}).request("GET", "/")
    assert server.requests[0].values("user-agent") == ["mine"]


def test_header_injection_is_refused(session: HttpSession) -> None:
    with pytest.raises(ValueError, match="invalid header"):
        session.request("GET", "/echo", headers={"X-A": "1\r\nX-B: 2"})
    with pytest.raises(ValueError, match="invalid header"):
        session.request("GET", "/echo", headers={"Bad Name": "1"})
    with pytest.raises(ValueError, match="invalid HTTP method"):
        session.request("GE T", "/echo")


# -- response headers and bodies -----------------------------------------------------------------------------


def test_response_headers_in_arrival_order(session: HttpSession, raw_server: Callable) -> None:
    headers = (("Set-Cookie", "a=1"), ("X-One", "1"), ("Set-Cookie", "b=2"), ("X-Empty", ""))
    server = raw_server(lambda request: http_response(201, b"{}", headers))
    response = session.request("GET", server.url)
    assert response.status == 201 and response.reason == "Created"
    assert response.headers == [("Content-Length", "2"), *headers]
    assert response.header_values("set-cookie") == ["a=1", "b=2"]


def test_gzip_and_deflate_bodies_are_decompressed(session: HttpSession) -> None:
    for path in ("/gzip", "/deflate", "/raw-deflate"):
        response = session.request("GET", path)
        assert (response.error, response.json()) == (None, {"compressed": True}), path
    response = session.request("GET", "/bad-gzip")
    assert response.status == 200 and response.error.startswith("malformed response: cannot decode gzip body")


def test_accept_encoding_only_when_the_caller_sends_it(session: HttpSession) -> None:
    assert "accept-encoding" not in session.request("GET", "/echo").json()["headers"]
    echo = session.request("GET", "/echo", headers={"Accept-Encoding": "gzip"}).json()
    assert echo["headers"]["accept-encoding"] == "gzip"


def test_chunked_body(session: HttpSession) -> None:
    response = session.request("GET", "/chunked")
    assert (response.status, response.body) == (200, b"one,two,three")


def test_interim_100_continue_is_skipped(session: HttpSession, raw_server: Callable) -> None:
    server = raw_server(lambda request: b"HTTP/1.1 100 Continue\r\n\r\n" + http_response(body=b"final"))
    response = session.request("POST", server.url, body=b"x")
    assert (response.status, response.body) == (200, b"final")


def test_head_reads_no_body_and_keeps_the_connection(session: HttpSession, raw_server: Callable) -> None:
    def respond(request: RawRequest) -> Action:
        if request.method == "HEAD":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
        return http_response(body=b"after")

    server = raw_server(respond)
    head = session.request("HEAD", server.url)
    assert (head.status, head.body, head.header("content-length"), head.error) == (200, b"", "5", None)
    assert session.request("GET", server.url).body == b"after"
    assert server.connections == 1
    assert session.request("head", "/echo").body == b""


def test_connection_close_and_trailing_bytes_end_the_connection(session: HttpSession, raw_server: Callable) -> None:
    def respond(request: RawRequest) -> Action:
        if request.index == 0 and request.conn == 0:
            return http_response(headers=(("Connection", "close"),))
        if request.index == 0 and request.conn == 1:
            return http_response() + b"garbage"
        return http_response(body=b"new")

    server = raw_server(respond)
    assert session.request("GET", server.url).status == 200
    assert session.request("GET", server.url).status == 200
    assert session.request("GET", server.url).body == b"new"
    assert server.connections == 3


# -- cookies through the session -----------------------------------------------------------------------------


def test_cookie_round_trip_and_deletion(session: HttpSession) -> None:
    session.request("GET", "/set-cookie", query={"c": ["sid=abc; Path=/; HttpOnly", "theme=dark; Path=/"]})
    assert session.request("GET", "/echo").json()["headers"]["cookie"] == "sid=abc; theme=dark"
    assert session.cookies.get("sid") == "abc"
    session.request("GET", "/set-cookie", query={"c": "sid=; Path=/; Max-Age=0"})
    assert session.request("GET", "/echo").json()["headers"]["cookie"] == "theme=dark"
    session.request("GET", "/set-cookie", query={"c": "theme=x; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT"})
    assert "cookie" not in session.request("GET", "/echo").json()["headers"]
    assert session.cookies.as_dict() == {}


def test_cookie_path_and_secure(session: HttpSession) -> None:
    session.request("GET", "/set-cookie", query={"c": ["p=1; Path=/echo/a", "s=1; Path=/; Secure"]})
    assert session.request("GET", "/echo/a/x").json()["headers"]["cookie"] == "p=1"
    assert session.request("GET", "/echo/a").json()["headers"]["cookie"] == "p=1"
    assert "cookie" not in session.request("GET", "/echo/b").json()["headers"]  # nor s: plain http


def test_cookies_set_by_hand_and_a_cookie_header_of_the_caller(session: HttpSession) -> None:
    session.cookies.set("token", "t1")
    assert session.request("GET", "/echo").json()["headers"]["cookie"] == "token=t1"
    echo = session.request("GET", "/echo", headers={"Cookie": "mine=1"}).json()
    assert echo["headers"]["cookie"] == "mine=1"
    session.cookies.clear()
    assert "cookie" not in session.request("GET", "/echo").json()["headers"]


# -- redirects -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303])
def test_redirect_as_get_without_body(session: HttpSession, code: int) -> None:
    response = session.request("POST", "/redirect", query={"code": code, "to": "/echo/next"}, json={"a": 1})
    assert response.status == 200 and response.url.endswith("/echo/next") and response.method == "GET"
    echo = response.json()
    assert (echo["method"], echo["path"], echo["body"]) == ("GET", "/echo/next", "")
    assert "content-type" not in echo["headers"]


@pytest.mark.parametrize("code", [307, 308])
def test_redirect_keeps_method_and_body(session: HttpSession, code: int) -> None:
    response = session.request("PUT", "/redirect", query={"code": code, "to": "/echo/next"}, json={"a": 1})
    echo = response.json()
    assert (response.status, echo["method"], echo["path"], echo["body"]) == (
        200,
        "PUT",
        "/echo/next",
        '{"a":1}',
    )
    assert echo["headers"]["content-type"] == "application/json"


def test_redirect_to_an_absolute_url_with_cookies_from_the_hop(session: HttpSession, raw_server: Callable) -> None:
    server = raw_server(_ok)
    response = session.request("GET", "/redirect", query={"code": 302, "to": server.url + "/x", "c": "hop=1"})
    assert (response.status, response.url) == (200, server.url + "/x")
    assert server.requests[0].values("cookie") == ["hop=1"]
    assert session.cookies.get("hop") == "1"


def test_redirect_limit_and_no_redirects(app_url: str, make_session: Callable[..., HttpSession]) -> None:
    session = make_session(app_url, max_redirects=3)
    response = session.request("GET", "/chain/3")
    assert (response.status, response.url, response.error) == (200, app_url + "/chain/0", None)
    response = session.request("GET", "/chain/4")
    assert response.status == 302 and response.error == "too many redirects (max_redirects=3)"
    response = session.request("GET", "/chain/1", allow_redirects=False)
    assert (response.status, response.header("location"), response.error) == (302, "/chain/0", None)


def test_relative_location_without_leading_slash(session: HttpSession) -> None:
    response = session.request("GET", "/redirect", query={"code": 302, "to": "echo/sibling"})
    assert response.json()["path"] == "/echo/sibling"


@pytest.mark.parametrize("location", ["ftp://example.test/file", "http://[bad/", "http://h:99999/"])
def test_redirect_that_cannot_be_followed(session: HttpSession, location: str) -> None:
    response = session.request("GET", "/redirect", query={"code": 302, "to": location})
    assert (response.status, response.error) == (302, f"cannot follow redirect to {location!r}")


# -- timing --------------------------------------------------------------------------------------------------


def test_elapsed_includes_the_server_delay_and_redirects(session: HttpSession) -> None:
    response = session.request("GET", "/echo")
    assert response.elapsed_ms > 0
    assert session.request("GET", "/delay", query={"s": 0.2}).elapsed_ms >= 200
    response = session.request("GET", "/redirect", query={"code": 302, "to": "/delay?s=0.15"})
    assert response.status == 200 and response.elapsed_ms >= 150


# -- faults --------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused(session: HttpSession) -> None:
    port = _free_port()
    response = session.request("GET", f"http://127.0.0.1:{port}/x")
    assert isinstance(response, Response)
    assert (response.status, response.error) == (0, f"connection refused (127.0.0.1:{port})")
    assert response.url == f"http://127.0.0.1:{port}/x" and response.elapsed_ms > 0


def test_an_ip_literal_connects_without_the_resolver_and_a_name_uses_it(
    make_session: Callable[..., HttpSession], raw_server: Callable
) -> None:
    """10,000 users connecting to 127.0.0.1 at once must not queue 10,000 lookups on gevent's thread pool."""
    server = raw_server(_ok)
    hub = gevent.get_hub()
    real = hub.resolver
    asked: list[str] = []

    class Counting:
        def getaddrinfo(self, host: str, *args: Any, **kwargs: Any) -> Any:
            asked.append(host)
            return real.getaddrinfo(host, *args, **kwargs)

    hub.resolver = Counting()
    try:
        port = server.server.server_port
        assert make_session(f"http://127.0.0.1:{port}").request("GET", "/").status == 200
        assert asked == []
        assert make_session(f"http://localhost:{port}").request("GET", "/").status == 200
        assert asked == ["localhost"]
    finally:
        hub.resolver = real


def test_dns_failure(session: HttpSession) -> None:
    response = session.request("GET", "http://nonexistent.invalid/", timeout=3.0)
    if response.error.startswith("timed out"):
        pytest.skip("name resolution is slow here")
    assert response.status == 0
    assert response.error.startswith("could not resolve host nonexistent.invalid")


def test_connect_timeout(make_session: Callable[..., HttpSession]) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []  # a full accept queue: further SYNs are dropped and connect() hangs
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.05)
        response = make_session(f"http://127.0.0.1:{port}", connect_timeout=0.2).request("GET", "/")
    finally:
        for sock in [*fillers, listener]:
            sock.close()
    if not response.error.startswith("connect timed out"):
        pytest.skip(f"could not make connect() hang on loopback: {response.error}")
    assert (response.status, response.error) == (0, f"connect timed out after 0.2s (127.0.0.1:{port})")
    assert response.elapsed_ms >= 200


def _silent(sock: socket.socket) -> None:
    gevent.sleep(10)  # the server stops (and kills this) at the end of the test


def test_read_timeout_and_the_broken_connection_is_not_reused(
    make_session: Callable[..., HttpSession], raw_server: Callable
) -> None:
    server = raw_server(lambda request: _silent if request.conn == 0 else http_response())
    session = make_session(server.url, timeout=0.2)
    response = session.request("GET", "/")
    assert (response.status, response.error) == (0, "timed out after 0.2s (waiting for the response)")
    assert response.elapsed_ms >= 200
    response = session.request("GET", "/")
    assert (response.status, response.error) == (200, None)
    assert server.connections == 2


def test_per_request_timeout_shorter_and_longer_than_the_session_one(
    app_url: str, make_session: Callable[..., HttpSession]
) -> None:
    session = make_session(app_url, timeout=0.3)
    response = session.request("GET", "/delay", query={"s": 0.6}, timeout=1.5)
    assert (response.status, response.error) == (200, None)
    response = session.request("GET", "/delay", query={"s": 0.6})  # the session timeout applies again
    assert (response.status, response.error) == (0, "timed out after 0.3s (waiting for the response)")
    response = session.request("GET", "/delay", query={"s": 2}, timeout=0.1)
    assert (response.status, response.error) == (0, "timed out after 0.1s (waiting for the response)")
    assert 100 <= response.elapsed_ms < 1500
    assert session.request("GET", "/echo", timeout=0.5).status == 200


def _reset(partial: bytes) -> Callable[[socket.socket], None]:
    def act(sock: socket.socket) -> None:
        sock.sendall(partial)
        gevent.sleep(0.05)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() sends RST

    return act


def _close_after(partial: bytes) -> Callable[[socket.socket], None]:
    return lambda sock: sock.sendall(partial)


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (_reset(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"), "connection reset by peer"),
        (
            _close_after(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"),
            "connection closed before the response was complete",
        ),
        (_close_after(b"HTTP/1.1 200 OK\r\nContent-"), "connection closed before the response was complete"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "malformed response: Invalid status code"),
        (b"hello there\r\n\r\n", "malformed response: Expected HTTP/, RTSP/ or ICE/"),
        (None, "server closed the connection without a response"),
    ],
)
def test_server_faults_become_responses(session: HttpSession, raw_server: Callable, action: Action, error: str) -> None:
    server = raw_server(lambda request: action)
    response = session.request("GET", server.url + "/f")
    assert (response.status, response.error, response.body, response.headers) == (0, error, b"", [])
    assert response.url == server.url + "/f" and response.elapsed_ms > 0
    assert server.connections == 1  # a fresh connection: no retry


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_stale_keep_alive_connection_is_retried_once(session: HttpSession, raw_server: Callable, method: str) -> None:
    # the server closes the kept-alive connection just as the second request arrives
    server = raw_server(lambda request: None if (request.conn, request.index) == (0, 1) else http_response(body=b"y"))
    assert session.request(method, server.url, body=b"1").retries == 0
    response = session.request(method, server.url, body=b"2")
    assert (response.status, response.body, response.error, response.retries) == (200, b"y", None, 1)
    assert server.connections == 2
    assert [(r.conn, r.body) for r in server.requests] == [(0, b"1"), (0, b"2"), (1, b"2")]


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_a_request_that_is_not_idempotent_is_never_resent(
    session: HttpSession, raw_server: Callable, method: str
) -> None:
    server = raw_server(lambda request: None if (request.conn, request.index) == (0, 1) else http_response(body=b"y"))
    assert session.request(method, server.url, body=b"1").status == 200
    response = session.request(method, server.url, body=b"2")
    assert (response.status, response.error, response.retries) == (
        0,
        "server closed the connection without a response",
        0,
    )
    assert [(r.conn, r.body) for r in server.requests] == [(0, b"1"), (0, b"2")]
    assert session.request(method, server.url, body=b"3").status == 200  # a new connection


def test_stale_retry_happens_once_and_not_after_a_partial_response(session: HttpSession, raw_server: Callable) -> None:
    server = raw_server(lambda request: http_response() if (request.conn, request.index) == (0, 0) else None)
    session.request("GET", server.url)
    response = session.request("GET", server.url)
    assert (response.status, response.error) == (0, "server closed the connection without a response")
    assert server.connections == 2

    partial = _close_after(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01")
    server = raw_server(lambda request: http_response() if request.index == 0 else partial)
    session.request("GET", server.url)
    response = session.request("GET", server.url)
    assert (response.status, response.error) == (0, "connection closed before the response was complete")
    assert server.connections == 1


def test_idle_connection_closed_by_the_server_is_replaced(session: HttpSession, raw_server: Callable) -> None:
    def answer_then_close(sock: socket.socket) -> None:
        sock.sendall(http_response())  # a keep-alive response, then the server's idle timeout hits

    server = raw_server(lambda request: answer_then_close)
    assert session.request("GET", server.url).status == 200
    gevent.sleep(0.05)
    response = session.request("GET", server.url)
    assert (response.status, response.error) == (200, None)
    assert (server.connections, len(server.requests)) == (2, 2)


def test_a_killed_user_leaves_the_session_usable(session: HttpSession, raw_server: Callable) -> None:
    server = raw_server(lambda request: _silent if request.conn == 0 else http_response())
    user = gevent.spawn(session.request, "GET", server.url)
    with gevent.Timeout(10):  # mid-request: the server holds the request (a fixed sleep races a loaded machine)
        while not server.requests:
            gevent.sleep(0.01)
    user.kill()  # the engine stops a virtual user mid-request
    with gevent.Timeout(2):
        response = session.request("GET", server.url)
    assert (response.status, response.error, server.connections) == (200, None, 2)


def test_close_then_reuse(session: HttpSession, raw_server: Callable) -> None:
    server = raw_server(_ok)
    assert session.request("GET", server.url).status == 200
    session.close()
    assert session.request("GET", server.url).status == 200
    assert server.connections == 2


# -- TLS -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> gevent_ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    key, cert = folder / "key.pem", folder / "cert.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    command += ["-subj", "/CN=localhost"]
    subprocess.run([*command, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    context = gevent_ssl.SSLContext(gevent_ssl.PROTOCOL_TLS_SERVER)  # gevent's: a cooperative handshake
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture(scope="module")
def tls_url(tls_context: gevent_ssl.SSLContext) -> Iterator[str]:
    server = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None, ssl_context=tls_context)
    server.start()
    yield f"https://127.0.0.1:{server.server_port}"
    server.stop(timeout=1)


def test_https_self_signed(tls_url: str, make_session: Callable[..., HttpSession]) -> None:
    session = make_session(tls_url, timeout=5.0)
    response = session.request("GET", "/echo", query={"a": 1})
    assert (response.status, response.json()["query"]) == (200, "a=1")
    session.request("GET", "/set-cookie", query={"c": "s=1; Secure; Path=/"})
    assert session.request("GET", "/echo").json()["headers"]["cookie"] == "s=1"  # Secure goes over https
    response = make_session(tls_url, insecure=False, timeout=5.0).request("GET", "/echo")
    assert response.status == 0 and response.error.startswith("TLS handshake failed (127.0.0.1:")


def test_https_keep_alive_stale_retry_big_body_and_deadline(
    tls_context: gevent_ssl.SSLContext, make_session: Callable[..., HttpSession]
) -> None:
    """TLS goes through its own read loop: keep-alive, a server that drops an idle connection (a ragged EOF,
    retried once for GET), a body of many TLS records, and a stalled answer cut by the deadline."""
    big = bytes(range(256)) * 1024  # 256 KiB: 16 KiB TLS records, many reads
    connections: list[int] = []

    def handle(sock: Any, _address: Any) -> None:
        connections.append(len(connections))
        served = 0
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            path = head.split(b" ")[1]
            if path == b"/drop" and served:  # an idle keep-alive connection the server has closed
                sock._sock.close()
                return
            if path == b"/stall":
                gevent.sleep(30)
            body = big if path == b"/big" else b"ok"
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            served += 1

    server = StreamServer(("127.0.0.1", 0), handle, ssl_context=tls_context)
    server.start()
    try:
        session = make_session(f"https://127.0.0.1:{server.server_port}", timeout=1.0)
        for _ in range(20):
            response = session.request("GET", "/")
            assert (response.status, response.body, response.error) == (200, b"ok", None)
        response = session.request("GET", "/big")
        assert (response.status, response.body) == (200, big)
        assert len(connections) == 1  # all of it on one kept-alive connection
        response = session.request("GET", "/drop")
        assert (response.status, response.body, response.error, response.retries) == (200, b"ok", None, 1)
        assert len(connections) == 2
        response = session.request("POST", "/drop", body=b"x")  # POST is not retried
        assert (response.status, response.retries) == (0, 0) and response.error
        started = time.monotonic()
        response = session.request("GET", "/stall")
        assert response.status == 0 and response.error.startswith("timed out after 1s")
        assert time.monotonic() - started < 20  # the deadline, not the server's 30 s stall, ended it
    finally:
        server.stop(timeout=1)


# -- CookieJar on its own ------------------------------------------------------------------------------------


def test_jar_host_only_domain_and_path_matching() -> None:
    jar = CookieJar()
    jar.store(
        "www.example.com",
        "/a/b?q=1",
        ["sid=1", "dom=2; Domain=.Example.com; Path=/", "evil=3; Domain=other.org", "ip=4; Domain=example"],
    )
    assert jar.as_dict() == {"sid": "1", "dom": "2"}
    assert jar.header("www.example.com", "/a/x?y=/b", False) == "sid=1; dom=2"  # sid has Path=/a: longest first
    assert jar.header("www.example.com", "/a", False) == "sid=1; dom=2"
    assert jar.header("www.example.com", "/ab", False) == "dom=2"
    assert jar.header("api.example.com", "/a/x", False) == "dom=2"  # sid is host-only
    assert jar.header("example.com", "/", False) == "dom=2"
    assert jar.header("badexample.com", "/", False) is None


def test_jar_secure_expiry_and_deletion(monkeypatch: pytest.MonkeyPatch) -> None:
    jar = CookieJar()
    jar.store("h", "/", ["s=1; Secure", "t=2; Max-Age=10", "u=3; Expires=Wed, 21-Oct-2099 07:28:00 GMT"])
    assert jar.header("h", "/", False) == "t=2; u=3"
    assert jar.header("h", "/", True) == "s=1; t=2; u=3"
    jar.store("h", "/", ["u=; Max-Age=-1", "nothing", "=novalue"])
    assert jar.as_dict() == {"s": "1", "t": "2"}
    later = time.time() + 11
    monkeypatch.setattr(cookies_module, "time", types.SimpleNamespace(time=lambda: later))
    assert jar.header("h", "/", True) == "s=1"
    assert (jar.get("t"), len(jar)) == (None, 1)


def test_jar_values_are_kept_verbatim_and_replaced() -> None:
    jar = CookieJar()
    jar.store("h", "/", ['q="a b"; Path=/', "tok=a=b==; Path=/"])
    assert jar.header("h", "/x", False) == 'q="a b"; tok=a=b=='
    jar.store("h", "/", ["tok=new; Path=/"])
    assert jar.get("tok") == "new" and len(jar) == 2


def test_jar_get_set_and_most_specific() -> None:
    jar = CookieJar()
    jar.store("h", "/", ["n=root; Path=/", "n=deep; Path=/a/b"])
    assert jar.get("n") == "deep" and jar.as_dict() == {"n": "deep"}
    jar.set("n", "manual", domain="h", path="/a/b")
    assert jar.get("n") == "manual"
    jar.set("any", "1")
    assert jar.header("whatever.test", "/", False) == "any=1"
    assert jar.get("missing") is None
    jar.clear()
    assert (len(jar), jar.header("h", "/", False), jar.as_dict()) == (0, None, {})
    with pytest.raises(ValueError):
        jar.set("bad", "a\r\nb")


def test_nothing_sentinel_is_exported() -> None:
    assert repr(NOTHING) == "NOTHING"

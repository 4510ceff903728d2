#!/usr/bin/env python3
"""The ceiling of a gevent generator: N greenlets of keep-alive GETs on raw sockets, no HTTP parsing.

    python bench/ceiling.py URL --users 50 --duration 20 --out result.json

Each greenlet sends ``GET /`` and reads until it has the fixed-size answer nginx gives (headers and body are
counted, not parsed), then sends the next. For https the socket is gevent's SSL socket, TLS 1.3, no
verification (the harness's certificate is self-signed). What lrun does above this is its own cost.
"""

from __future__ import annotations

import argparse
import json
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit

import gevent
import gevent.socket
from gevent import ssl as gevent_ssl


def one_answer_size(sock, request: bytes) -> int:
    """The byte length of one whole answer: headers up to the blank line plus Content-Length."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return len(head) + 4 + length


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or (443 if url.scheme == "https" else 80)
    request = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    context = None
    if url.scheme == "https":
        context = gevent_ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    counts = [0] * args.users
    stop_at = time.monotonic() + args.duration

    def user(i: int) -> None:
        sock = gevent.socket.create_connection((host, port), timeout=10)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=host)
        size = one_answer_size(sock, request)
        counts[i] += 1
        while time.monotonic() < stop_at:
            sock.sendall(request)
            got = 0
            while got < size:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed")
                got += len(chunk)
            counts[i] += 1
        sock.close()

    started = time.monotonic()
    gevent.joinall([gevent.spawn(user, i) for i in range(args.users)], raise_error=True)
    wall = time.monotonic() - started
    Path(args.out).write_text(json.dumps({"requests": sum(counts), "rps": sum(counts) / wall, "wall_s": wall}))


if __name__ == "__main__":
    main()

"""A hostile HTTP/2 server for the tests (its own process; ``python h2_peer.py FOLDER`` with cert.pem and key.pem
in FOLDER; prints its port). What it does depends on the path:

/            200 "ok"
/goaway      200 "ok", then GOAWAY (NO_ERROR, this stream handled) and closes: a graceful restart mid-run
/refuse      GOAWAY (INTERNAL_ERROR, last stream 0) and closes: the request was never handled
/reset       RST_STREAM (INTERNAL_ERROR)
/push        a PUSH_PROMISE though the client disabled push
/headers     a 200 with 256 KiB of headers
/endless     a 200 whose DATA never ends (for 30 s at most)
/badstatus   a response whose :status is "abc"
/count       200 with the number of connections this server accepted
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from h2.errors import ErrorCodes
from hyperframe.frame import PushPromiseFrame

connections = 0


def serve(sock: ssl.SSLSocket) -> None:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, validate_outbound_headers=False))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    path = dict(event.headers)[b":path"].decode()
                    if not answer(sock, conn, event.stream_id, path):
                        linger(sock)
                        return
            sock.sendall(conn.data_to_send())
    except (OSError, h2.exceptions.H2Error):
        return
    finally:
        sock.close()


def linger(sock: ssl.SSLSocket) -> None:
    """Close after a GOAWAY as servers do (nginx's lingering close): stop writing, then read what the client still
    sends until it closes (2 s at most). Closing with its frames unread would answer them with a TCP reset, which
    can destroy the GOAWAY before the client reads it."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(0.5)
        end = time.monotonic() + 2
        while time.monotonic() < end and sock.recv(65536):
            pass
    except OSError:
        pass


def reply(conn: h2.connection.H2Connection, stream: int, body: bytes, extra: list | None = None) -> None:
    headers = [(":status", "200"), ("content-length", str(len(body))), *(extra or [])]
    conn.send_headers(stream, headers)
    conn.send_data(stream, body, end_stream=True)


def answer(sock: ssl.SSLSocket, conn: h2.connection.H2Connection, stream: int, path: str) -> bool:
    """Answer one request; False: the connection ends."""
    if path == "/goaway":
        reply(conn, stream, b"ok")
        conn.close_connection(ErrorCodes.NO_ERROR, last_stream_id=stream)
        sock.sendall(conn.data_to_send())
        return False
    if path == "/refuse":
        conn.close_connection(ErrorCodes.INTERNAL_ERROR, last_stream_id=0)
        sock.sendall(conn.data_to_send())
        return False
    if path == "/reset":
        conn.reset_stream(stream, ErrorCodes.INTERNAL_ERROR)
    elif path == "/push":
        block = conn.encoder.encode([(":method", "GET"), (":scheme", "https"), (":authority", "x"), (":path", "/p")])
        frame = PushPromiseFrame(stream, promised_stream_id=2, data=block, flags=["END_HEADERS"])
        sock.sendall(conn.data_to_send() + frame.serialize())
    elif path == "/headers":
        reply(conn, stream, b"big", [(f"x-big-{i}", "v" * 1024) for i in range(256)])
    elif path == "/endless":
        conn.send_headers(stream, [(":status", "200")])
        end = time.monotonic() + 30
        chunk = b"x" * 16384
        while time.monotonic() < end:
            if conn.local_flow_control_window(stream) >= len(chunk):
                conn.send_data(stream, chunk)
                sock.sendall(conn.data_to_send())
                continue
            data = sock.recv(65536)
            if not data:
                return False
            conn.receive_data(data)  # the client's WINDOW_UPDATEs (or its RST_STREAM: then this raises)
            if stream not in conn.streams or conn.streams[stream].closed:
                return True
        return False
    elif path == "/badstatus":
        conn.send_headers(stream, [(":status", "abc")])
        conn.send_data(stream, b"?", end_stream=True)
    elif path == "/count":
        reply(conn, stream, str(connections).encode())
    else:
        reply(conn, stream, b"ok")
    return True


def main() -> None:
    folder = Path(sys.argv[1])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    context.set_alpn_protocols(["h2"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)
    global connections
    while True:
        raw, _ = listener.accept()
        try:
            sock = context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            continue
        connections += 1
        threading.Thread(target=serve, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main()

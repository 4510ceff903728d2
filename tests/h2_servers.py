"""HTTP/2 servers on loopback for the tests: nginx with an ``http2`` TLS listener (its access log records each
request's protocol and connection number), and ``h2_peer.py``, a Python h2 server that misbehaves on request."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers import free_port, wait_until

HERE = Path(__file__).resolve().parent

NGINX_CONF = """
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format h2 '$server_protocol $connection $request_method $request_uri $status';
    access_log {prefix}/access.log h2;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        listen 127.0.0.1:{h1_port} ssl;
        ssl_certificate {prefix}/cert.pem;
        ssl_certificate_key {prefix}/key.pem;
        location = / {{ default_type text/plain; return 200 "hello\\n"; }}
        location = /json {{ default_type application/json; return 200 '{{"token": "abc123"}}'; }}
        location = /login {{ add_header Set-Cookie "sid=s3cr3t; Path=/"; return 200 "in\\n"; }}
        location = /cookie {{ default_type text/plain; return 200 "sid=$cookie_sid\\n"; }}
        location = /moved {{ return 302 /json; }}
        location = /echo {{ default_type text/plain; return 200 "$request_method $content_length\\n"; }}
        location /static/ {{ default_type text/plain; return 200 "asset $uri\\n"; }}
    }}
}}
"""


def make_cert(folder: Path) -> tuple[Path, Path]:
    key, cert = folder / "key.pem", folder / "cert.pem"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"]
    subprocess.run([*command, "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return key, cert


class Nginx:
    """nginx on two free loopback ports: ``url`` offers h2 and HTTP/1.1 by ALPN, ``h1_url`` HTTP/1.1 only."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        make_cert(folder)
        self.port, self.h1_port = free_port(), free_port()
        conf = NGINX_CONF.format(prefix=folder, port=self.port, h1_port=self.h1_port)
        (folder / "nginx.conf").write_text(conf)
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        argv = [exe, "-c", str(folder / "nginx.conf"), "-p", str(folder), "-e", str(folder / "error.log")]
        self.proc = subprocess.Popen([*argv, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"https://127.0.0.1:{self.port}"
        self.h1_url = f"https://127.0.0.1:{self.h1_port}"
        wait_until(self._answers, 20, "nginx to listen")

    def _answers(self) -> bool:
        import socket

        if self.proc.poll() is not None:
            raise AssertionError(f"nginx exited: {(self.folder / 'error.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            socket.create_connection(("127.0.0.1", self.h1_port), timeout=1).close()
        except OSError:
            return False
        return True

    def log(self) -> list[tuple[str, str, str, str, str]]:
        """(protocol, connection number, method, URI, status) of each request nginx logged."""
        path = self.folder / "access.log"
        if not path.exists():
            return []
        return [tuple(line.split()) for line in path.read_text().splitlines() if line]  # type: ignore[misc]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@contextmanager
def nginx(folder: Path) -> Iterator[Nginx]:
    server = Nginx(folder)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def h2_peer(folder: Path) -> Iterator[str]:
    """``tests/h2_peer.py`` in its own process: its https URL."""
    make_cert(folder)
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "h2_peer.py"), str(folder)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.isdigit():
            raise AssertionError(f"h2_peer did not start: {line!r}")
        yield f"https://127.0.0.1:{line}"
    finally:
        proc.kill()
        proc.wait(10)
        time.sleep(0)

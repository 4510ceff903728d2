"""Peak memory of lrun against big bodies: a 200 MB body and a ~1 MB gzip body that inflates to 1 GiB.

    python bench/big_bodies.py [--users 1 5] [--iterations 2]

Serves both bodies from a thread on loopback, runs ``lrun`` (this checkout, or the one on PYTHONPATH) once
per case, and prints each run's peak RSS (``/usr/bin/time -f %M``) and the bytes lrun counted.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import zlib
from pathlib import Path

BIG = 200 * 10**6
BOMB_SIZE = 2**30


def gzip_bomb(size: int) -> bytes:
    """Gzip of ``size`` zero bytes, compressed in chunks (never ``size`` bytes in memory)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(2**20)
    out = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    out.append(compressor.flush())
    return b"".join(out)


def serve(bomb: bytes) -> int:
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    chunk = b"x" * 2**20

    def handle(sock: socket.socket) -> None:
        with sock:
            pending = b""
            while True:
                while b"\r\n\r\n" not in pending:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pending += data
                head, _, pending = pending.partition(b"\r\n\r\n")
                target = head.split(b" ", 2)[1]
                if target == b"/bomb":
                    sock.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb
                    )
                else:
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % BIG)
                    for _ in range(BIG // len(chunk)):
                        sock.sendall(chunk)
                    sock.sendall(chunk[: BIG % len(chunk)])

    def accept() -> None:
        while True:
            sock, _ = listener.accept()
            threading.Thread(target=handle, args=(sock,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--iterations", type=int, default=2)
    args = parser.parse_args()
    bomb = gzip_bomb(BOMB_SIZE)
    port = serve(bomb)
    print(f"bomb: {len(bomb)} bytes gzip -> {BOMB_SIZE} bytes")
    with tempfile.TemporaryDirectory() as tmp:
        for path in ("/big", "/bomb"):
            scenario = Path(tmp) / "s.yaml"
            scenario.write_text(f"host: http://127.0.0.1:{port}\nusers: {{u: {{sequence: [{{get: {path}}}]}}}}\n")
            for users in args.users:
                out = Path(tmp) / "r.json"
                command = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "runner", "run", str(scenario)]
                command += ["-u", str(users), "-r", str(users), "-i", str(args.iterations)]
                command += ["--json", str(out), "--only-summary"]
                done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=os.environ)
                peak_kib = int(done.stderr.strip().splitlines()[-1])
                total = json.loads(out.read_text())["total"]
                print(
                    f"{path:6} users={users} peak RSS {peak_kib / 1024:7.0f} MiB  requests={total['requests']} "
                    f"failures={total['failures']} bytes={total['total_bytes']}"
                )


if __name__ == "__main__":
    main()

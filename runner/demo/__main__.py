"""``python -m runner.demo [--host H] [--port P] [--exit-with-parent]``: run the demo shop in this process."""

from __future__ import annotations

import argparse
import os
import sys

import gevent
from gevent.event import Event
from gevent.socket import wait_read

from runner.demo.process import READY_PREFIX
from runner.demo.server import serve
from runner.errors import RunError


def watch_stdin(stop: Event) -> None:
    """Set ``stop`` when stdin reaches EOF, i.e. when the parent holding the other end of the pipe is gone.

    Waits with gevent's io watcher and reads only once readable, so no thread is needed and the file
    descriptor is never switched to non-blocking mode (it may be shared, e.g. a terminal).
    """
    try:
        fd = sys.stdin.fileno()
        while True:
            wait_read(fd)
            try:
                if not os.read(fd, 65536):
                    break
            except BlockingIOError:
                continue
    except (OSError, ValueError, AttributeError):
        pass  # no usable stdin counts as "the parent is gone"
    finally:
        stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.demo", description="Run the lrun demo shop.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8089, help="port to bind, 0 = any (default: %(default)s)")
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="exit when stdin reaches EOF (the parent is gone)"
    )
    args = parser.parse_args(argv)

    stop = Event()
    if args.exit_with_parent:
        gevent.spawn(watch_stdin, stop)

    def ready(url: str) -> None:
        print(READY_PREFIX + url, flush=True)

    try:
        serve(args.host, args.port, ready=ready, stop=stop)
    except RunError as e:
        print(f"lrun demo: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

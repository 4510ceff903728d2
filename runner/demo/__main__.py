"""``python -m runner.demo [--host H] [--port P] [--exit-with-parent]``: run the demo shop in this process."""

from __future__ import annotations

import argparse
import sys

import gevent
from gevent.event import Event

from runner.demo.process import READY_PREFIX
from runner.demo.server import DEMO_PORT, serve
from runner.errors import RunError
from runner.parent import wait_for_parent_exit


def watch_stdin(stop: Event) -> None:
    """Set ``stop`` when the parent holding the other end of the stdin pipe is gone."""
    try:
        wait_for_parent_exit()
    finally:
        stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.demo", description="Run the lrun demo shop.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEMO_PORT, help="port to bind, 0 = any (default: %(default)s)")
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

"""Child processes that must not outlive their parent (the demo target, ``--processes`` workers)."""

from __future__ import annotations

import os
import sys

from gevent.socket import wait_read


def wait_for_parent_exit() -> None:
    """Block (this greenlet) until stdin, a pipe from the parent, reaches EOF: the parent is gone.

    Waits with gevent's io watcher and reads only once readable, so no thread is needed and the file
    descriptor is never switched to non-blocking mode (it may be shared, e.g. a terminal). No usable stdin
    counts as the parent being gone.
    """
    try:
        fd = sys.stdin.fileno()
        while True:
            wait_read(fd)
            try:
                if not os.read(fd, 65536):
                    return
            except BlockingIOError:
                continue
    except (OSError, ValueError, AttributeError):
        return

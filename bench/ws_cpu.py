#!/usr/bin/env python3
"""Round trips per CPU second of a WebSocket load generator, against bench/ws_echo.js (bench/README.md,
"WebSocket echo").

    python bench/ws_cpu.py --pid ECHO_PID --log ECHO_LOG --short 40 --long 240 -- CMD... {n}

Runs the command twice, with ``{n}`` replaced by ``--short`` then ``--long`` (round trips per user: lrun's
``-i``, k6's ``COUNT``), each on core 0. Round trips are counted by the echo server (SIGUSR2 makes it print its
count to its log); CPU seconds of the generator (user + system) come from the kernel (``wait4`` rusage). The
figure is the difference of the two runs (round trips over CPU seconds), so that start-up and shut-down cancel
out; a fixed count, not a duration, so that a loaded machine changes the wall time, not the work. Loopback
only: the server and the command are given by the caller.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import time


def echoed(pid: int, log: str) -> int:
    size = os.path.getsize(log)
    os.kill(pid, signal.SIGUSR2)
    for _ in range(100):  # at most 5 s
        time.sleep(0.05)
        with open(log) as f:
            f.seek(size)
            found = re.findall(r"echoed (\d+)", f.read())
        if found:
            return int(found[-1])
    raise SystemExit("the echo server did not answer SIGUSR2")


def run(cmd: list[str], n: int, pid: int, log: str) -> tuple[int, float]:
    before = echoed(pid, log)
    argv = ["taskset", "-c", "0", *(a.replace("{n}", str(n)) for a in cmd)]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _, status, usage = os.wait4(child.pid, 0)
    except BaseException:
        child.kill()
        child.wait()
        raise
    if status != 0:
        print(f"  (exit status {status >> 8})")
    time.sleep(0.3)
    return echoed(pid, log) - before, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--short", type=int, default=40)
    parser.add_argument("--long", type=int, default=240)
    parser.add_argument("--label", default="")
    parser.add_argument("cmd", nargs="+")
    args = parser.parse_args()
    n1, c1 = run(args.cmd, args.short, args.pid, args.log)
    n2, c2 = run(args.cmd, args.long, args.pid, args.log)
    rate = (n2 - n1) / (c2 - c1)
    print(
        f"{args.label}: {n1} round trips in {c1:.2f} CPU s; {n2} in {c2:.2f} CPU s;"
        f" difference {n2 - n1} in {c2 - c1:.2f} CPU s = {rate:,.0f} round trips / CPU s",
        flush=True,
    )


if __name__ == "__main__":
    main()

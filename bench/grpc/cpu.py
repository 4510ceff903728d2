"""``python cpu.py CMD ARGS…``: run a command, then print the CPU seconds it and its children used."""

import resource
import subprocess
import sys
import time

started = time.monotonic()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"cpu {usage.ru_utime + usage.ru_stime:.2f}s wall {time.monotonic() - started:.1f}s")

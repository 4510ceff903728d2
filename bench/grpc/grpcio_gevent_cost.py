"""``python grpcio_gevent_cost.py plain|gevent PORT CALLERS``: unary GetItem calls for 8 s with plain grpcio on
threads, or under gevent after ``init_gevent()``; prints calls per second and per client CPU-second.
Run from the repository's root (it reads runner/demo/shop.proto)."""

import sys

MODE, PORT, CALLERS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if MODE == "gevent":
    from gevent import monkey

    monkey.patch_all()
    from grpc.experimental import gevent as grpc_gevent

    grpc_gevent.init_gevent()

import resource  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import grpc  # noqa: E402

from runner.scenario.grpc_proto import compile_protos  # noqa: E402

METHOD = compile_protos([Path("runner/demo/shop.proto")], []).method("shop.Catalog/GetItem")
SECONDS = 8
count = [0]


def loop(end: float) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{PORT}")
    call = channel.unary_unary(
        METHOD.path, request_serializer=METHOD.input.SerializeToString, response_deserializer=METHOD.output.FromString
    )
    request = METHOD.input(id=2)
    while time.monotonic() < end:
        call(request, timeout=5)
        count[0] += 1


end = time.monotonic() + SECONDS
if MODE == "gevent":
    import gevent

    gevent.joinall([gevent.spawn(loop, end) for _ in range(CALLERS)])
else:
    threads = [threading.Thread(target=loop, args=(end,)) for _ in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime
print(f"{MODE} {CALLERS}: {count[0] / SECONDS:.0f} calls/s, {cpu:.2f} CPU-s, {count[0] / cpu:.0f} calls per CPU-second")

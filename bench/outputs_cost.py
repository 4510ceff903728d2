#!/usr/bin/env python3
"""What the live outputs cost: CPU seconds per request of ``lrun run`` against bench nginx, plain, with
``--metrics-port`` scraped once a second, and with ``--otel`` exporting once a second to a local receiver
(OTLP/HTTP, and OTLP/gRPC when the ``lrun[grpc]`` extra is installed).

lrun is pinned to core 0, nginx to core 1; the variants alternate for ``--rounds`` rounds, so a busy machine
hurts each about the same. CPU is lrun's own (``wait4``'s rusage), requests are the results' total.

``--names N`` spreads the requests over N request names (the scrape grows with them).

    python bench/outputs_cost.py [--duration 15] [--users 20] [--rounds 2] [--names 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # the gRPC sink: no line per lrun started ("skipping fork() …")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BENCH, Children, Nginx, free_port


def lrun_argv() -> list[str]:
    script = Path(sys.executable).parent / "lrun"
    return [str(script)] if script.exists() else [sys.executable, "-m", "runner.cli"]


class Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def grpc_sink() -> tuple[object, int] | None:
    """An OTLP/gRPC receiver that answers every export, or None without the grpc extra."""
    try:
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as pb
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as rpc
    except ImportError:
        return None

    class Service(rpc.MetricsServiceServicer):  # type: ignore[misc]
        def Export(self, request: object, context: object) -> object:
            return pb.ExportMetricsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    rpc.add_MetricsServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def scenario(tmp: Path, names: int) -> Path:
    """bench/plain.yaml, or the same loop over ``names`` request names."""
    if names <= 1:
        return BENCH / "plain.yaml"
    path = tmp / f"names-{names}.yaml"
    tasks = "".join(f'      - {{get: "/?n={i}", name: "/page/{i}"}}\n' for i in range(names))
    path.write_text(f"name: bench names\nhost: http://127.0.0.1:8080\nusers:\n  looper:\n    tasks:\n{tasks}")
    return path


def scraper(url: str, stop: threading.Event, sizes: list[int]) -> None:
    while not stop.wait(1.0):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                sizes.append(len(response.read()))
        except OSError:
            pass


def one(
    children: Children, tmp: Path, nginx: Nginx, variant: str, users: int, duration: int, names: int
) -> dict[str, float]:
    out = tmp / f"{variant}-{time.monotonic_ns()}.json"
    argv = [*lrun_argv(), str(scenario(tmp, names)), "-H", nginx.url, "-u", str(users), "-r", str(users)]
    argv += ["-t", f"{duration}s", "--json", str(out), "--only-summary"]
    env = None
    stop, sizes = threading.Event(), []
    sink = None
    if variant == "metrics":
        port = free_port()
        argv += ["--metrics-port", str(port)]
        threading.Thread(target=scraper, args=(f"http://127.0.0.1:{port}/metrics", stop, sizes), daemon=True).start()
    if variant == "otel":
        sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        argv += ["--otel"]
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink.server_address[1]}",
               "OTEL_METRIC_EXPORT_INTERVAL": "1000"}  # fmt: skip
    grpc_server = None
    if variant == "otel-grpc":
        grpc_server, port = grpc_sink()  # type: ignore[misc]
        argv += ["--otel"]
        env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
               "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_METRIC_EXPORT_INTERVAL": "1000"}  # fmt: skip
    child = children.start(f"lrun-{variant}", argv, 0, tmp / f"{variant}.log", env=env)
    child.wait(duration + 120)
    stop.set()
    if sink is not None:
        sink.shutdown()
    if grpc_server is not None:
        grpc_server.stop(grace=None)  # type: ignore[attr-defined]
    usage = child.rusage
    requests = json.loads(out.read_text())["total"]["requests"]
    cpu = usage.ru_utime + usage.ru_stime if usage else float("nan")
    return {"requests": requests, "cpu_s": cpu, "scrapes": len(sizes), "scrape_bytes": max(sizes, default=0)}


def grpc_sink_available() -> bool:
    try:
        import grpc  # noqa: F401
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--names", type=int, default=1)
    args = parser.parse_args()
    children = Children()
    try:
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            nginx = Nginx(children, tmp, 1)
            rows: dict[str, list[dict[str, float]]] = {"plain": [], "metrics": [], "otel": []}
            if grpc_sink_available():
                rows["otel-grpc"] = []
            for _ in range(args.rounds):
                for variant in rows:
                    rows[variant].append(one(children, tmp, nginx, variant, args.users, args.duration, args.names))
            base = None
            for variant, runs in rows.items():
                requests = sum(r["requests"] for r in runs)
                cpu = sum(r["cpu_s"] for r in runs)
                per = cpu / requests * 1e6
                base = base or per
                extra = f", {sum(r['scrapes'] for r in runs)} scrapes of {max(r['scrape_bytes'] for r in runs)} B"
                print(
                    f"{variant:9} {requests / (args.duration * len(runs)):8.0f} req/s  {per:6.1f} µs CPU/request  "
                    f"x{per / base:.3f}{extra if variant == 'metrics' else ''}"
                )
    finally:
        children.stop_all()


if __name__ == "__main__":
    main()

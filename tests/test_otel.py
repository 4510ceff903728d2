"""``--otel``: a real OTLP/HTTP receiver on loopback decodes the protobuf and checks it against the results."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from outputs_helpers import start_lrun


class Collector:
    """Takes POST /v1/metrics (application/x-protobuf), keeps each decoded export and its headers."""

    def __init__(self) -> None:
        self.exports: list[ExportMetricsServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.path == "/v1/metrics"
                assert self.headers["Content-Type"] == "application/x-protobuf"
                export = ExportMetricsServiceRequest()
                export.ParseFromString(body)
                collector.exports.append(export)
                collector.headers.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def last(self, metric: str) -> dict[tuple[tuple[str, str], ...], float]:
        """The points of ``metric`` in the last export that has it: {sorted attributes: value}."""
        for export in reversed(self.exports):
            for resource in export.resource_metrics:
                for scope in resource.scope_metrics:
                    for m in scope.metrics:
                        if m.name != metric:
                            continue
                        points = m.sum.data_points if m.HasField("sum") else m.gauge.data_points
                        return {
                            tuple(sorted((a.key, a.value.string_value) for a in p.attributes)): (
                                p.as_int if p.HasField("as_int") else p.as_double
                            )
                            for p in points
                        }
        raise AssertionError(f"no {metric} in {len(self.exports)} exports")


@pytest.fixture
def collector() -> Iterator[Collector]:
    receiver = Collector()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


TEAM = {"OTEL_EXPORTER_OTLP_HEADERS": "x-team-token=abc123", "OTEL_SERVICE_NAME": "checkout-load"}


def run_exporting(tmp_path: Path, scenario_text: str, env: dict[str, str]) -> dict:
    """``lrun --otel`` of the scenario for 4 s with 3 users, exporting every 0.5 s; its results file."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text(scenario_text)
    out = tmp_path / "r.json"
    env = {**TEAM, "OTEL_METRIC_EXPORT_INTERVAL": "500", **env}
    lrun = start_lrun(str(scenario), "-u", "3", "-t", "4", "--otel", "--json", str(out), "--only-summary", env=env)
    try:
        _, stderr = lrun.communicate(timeout=120)
    finally:
        lrun.kill()
    assert lrun.returncode == 0, stderr
    return json.loads(out.read_text())


def assert_team_service(collector: Collector | GrpcCollector) -> None:
    """Several exports came, each with the team's header, from the named service."""
    assert len(collector.exports) >= 3  # periodic during the run, and the final one
    assert all(h.get("x-team-token") == "abc123" for h in collector.headers)
    service = {a.key: a.value.string_value for a in collector.exports[-1].resource_metrics[0].resource.attributes}
    assert service["service.name"] == "checkout-load"


@pytest.mark.e2e
def test_otlp_export_matches_the_results(tmp_path: Path, demo_url: str, collector: Collector) -> None:
    scenario = (
        f"name: otel\nhost: {demo_url}\nusers:\n  u:\n    think: 10ms\n    sequence:\n"
        "      - get: /items\n      - get: /missing\n        check: [{status: 404}]\n"
        "      - transaction: t\n        steps:\n          - get: /about\n"
    )
    results = run_exporting(tmp_path, scenario, {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url})
    assert_team_service(collector)
    requests = collector.last("lrun.requests")
    failures = collector.last("lrun.request.failures")
    for entry in results["requests"]:
        key = (("http.request.method", entry["method"]), ("lrun.name", entry["name"]))
        assert requests[key] == entry["requests"]  # the last export has the final figures
        assert failures[key] == entry["failures"]
    assert sum(requests.values()) == results["total"]["requests"]
    assert collector.last("lrun.transactions") == {
        (("lrun.name", "t"),): results["transactions"]["entries"][0]["requests"]
    }
    checks = collector.last("lrun.checkpoints")
    passed = [v for k, v in checks.items() if ("lrun.check", "status is 404") in k and ("result", "passed") in k]
    assert passed and passed[0] > 0
    assert 0 < max(collector.last("lrun.response_time").values()) < 5
    phases = collector.last("lrun.request.phase")
    ttfb = [v for k, v in phases.items() if ("phase", "ttfb") in k and ("percentile", "95") in k]
    assert len(ttfb) == len(results["requests"]) and all(0 < v < 5 for v in ttfb)
    assert {dict(k)["phase"] for k in phases} == {"dns", "connect", "tls", "send", "ttfb", "receive"}


# ----------------------------------------------------------------------------------------------- OTLP over gRPC


class GrpcCollector:
    """A real OTLP gRPC receiver (grpc's server, in this unpatched test process): keeps each decoded export."""

    def __init__(self) -> None:
        from concurrent import futures

        import grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

        self.exports: list[ExportMetricsServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        collector = self

        class Service(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: ExportMetricsServiceRequest, context: object) -> object:
                collector.exports.append(request)
                collector.headers.append(dict(context.invocation_metadata()))  # type: ignore[attr-defined]
                return metrics_service_pb2.ExportMetricsServiceResponse()

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Service(), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.url = f"http://127.0.0.1:{port}"

    last = Collector.last


@pytest.mark.e2e
def test_otlp_over_grpc_matches_the_results(tmp_path: Path, demo_url: str) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc", reason="the lrun[grpc] extra")
    collector = GrpcCollector()
    scenario = f"host: {demo_url}\nusers: {{u: {{think: 10ms, sequence: [{{get: /items}}, {{get: /about}}]}}}}\n"
    try:
        env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
        results = run_exporting(tmp_path, scenario, env)
    finally:
        collector.server.stop(grace=None)
    assert_team_service(collector)
    requests = collector.last("lrun.requests")
    for entry in results["requests"]:
        key = (("http.request.method", entry["method"]), ("lrun.name", entry["name"]))
        assert requests[key] == entry["requests"] > 0  # the last export has the final figures
    assert sum(requests.values()) == results["total"]["requests"]


@pytest.mark.e2e
def test_a_grpc_collector_that_never_answers_does_not_stop_the_load(tmp_path: Path, demo_url: str) -> None:
    """Without grpc's gevent mode one export to a silent collector froze the event loop for its 10 s deadline."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc", reason="the lrun[grpc] extra")
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections (the kernel's backlog), never answers
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"host: {demo_url}\nusers: {{u: {{think: 10ms, sequence: [{{get: /items}}]}}}}\n")
    out = tmp_path / "r.json"
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{silent.getsockname()[1]}",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "5",  # seconds; an export that blocked the loop would block it this long
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
    }
    started = time.monotonic()
    lrun = start_lrun(str(scenario), "-u", "2", "-t", "8", "--otel", "--json", str(out), "--only-summary", env=env)
    try:
        _, stderr = lrun.communicate(timeout=120)
    finally:
        lrun.kill()
        silent.close()
    assert lrun.returncode == 0, stderr
    assert time.monotonic() - started < 60  # the end does not wait for the collector without bound
    results = json.loads(out.read_text())
    assert results["saturation"]["loop_lag_max_ms"] < 3000, results["saturation"]  # never stuck for an export
    assert any("--otel: could not export" in w for w in results["warnings"])


def test_an_otlp_protocol_lrun_cannot_speak_is_one_line(tmp_path: Path, demo_url: str) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"host: {demo_url}\nusers: {{u: {{sequence: [{{get: /items}}]}}}}\n")
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
    lrun = start_lrun(str(scenario), "-u", "1", "-t", "2", "--otel", "--only-summary", env=env)
    _, stderr = lrun.communicate(timeout=60)
    assert lrun.returncode == 2
    assert (
        stderr.strip()
        .splitlines()[-1]
        .endswith(
            "--otel: OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported: use http/protobuf (the default) or grpc"
        )
    ), stderr
    assert "Traceback" not in stderr


def test_grpc_without_the_extra_says_how_to_get_it(tmp_path: Path, demo_url: str) -> None:
    shadow = tmp_path / "site" / "grpc"  # a grpc that cannot be imported, as where the extra is not installed
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named grpc')\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"host: {demo_url}\nusers: {{u: {{sequence: [{{get: /items}}]}}}}\n")
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "PYTHONPATH": str(shadow.parent)}
    lrun = start_lrun(str(scenario), "-u", "1", "-t", "2", "--otel", "--only-summary", env=env)
    _, stderr = lrun.communicate(timeout=60)
    assert lrun.returncode == 2, stderr
    assert (
        stderr.strip()
        .splitlines()[-1]
        .endswith(
            "--otel: OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the gRPC exporter: install lrun's grpc extra "
            "(pip install '.[grpc]' in its checkout), or use http/protobuf (the default)"
        )
    ), stderr
    assert "Traceback" not in stderr

"""``--otel``: the run's metrics over OTLP, with the OpenTelemetry SDK and its exporter.

Configured by the standard variables: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``…_METRICS_ENDPOINT``),
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_METRIC_EXPORT_INTERVAL`` (ms), ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or ``…_METRICS_PROTOCOL``): ``http/protobuf``
(the default) or ``grpc`` (lrun's ``grpc`` extra). Like ``/metrics``, instruments are observed from the run's
statistics at each export (callbacks), so nothing is added per request. The SDK's export thread is a greenlet
under gevent's patching; the last export happens when the run ends, so the collector gets the final figures.

gRPC blocks in its C core: without ``grpc.experimental.gevent.init_gevent`` one export to a collector that
accepts and never answers froze the whole event loop, and so the load, for the export's 10 s deadline. With it,
grpc's completion queue is polled from a greenlet and the load goes on.

Over HTTP, each request has one deadline (the SDK's, from ``OTEL_EXPORTER_OTLP_TIMEOUT``, for the whole exchange,
not per read) and at most ``MAX_ANSWER`` bytes of the collector's answer are read: a collector answering an endless
or trickling body costs neither memory nor more than that timeout at the end of the run. (gRPC has both built in:
its deadline and a 4 MiB message limit.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from runner.errors import RunError
from runner.outputs.phases import otel_callback

if TYPE_CHECKING:
    from runner.live.view import LiveView
    from runner.stats import StatsEntry

log = logging.getLogger("lrun")

PERCENTILES = (50.0, 95.0, 99.0)
PROTOCOLS = ("http/protobuf", "grpc")
MAX_ANSWER = 64 * 1024  # bytes of a collector's answer read (an OTLP answer is a few bytes)
DEFAULT_TIMEOUT = 10.0  # seconds, the SDK's default for OTEL_EXPORTER_OTLP_TIMEOUT


def protocol() -> str:
    """The OTLP protocol the OTEL_* variables ask for; RunError for one lrun cannot speak."""
    name = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"
    if not os.environ.get(name):
        name = "OTEL_EXPORTER_OTLP_PROTOCOL"
    chosen = (os.environ.get(name) or "http/protobuf").strip().lower()
    if chosen not in PROTOCOLS:
        raise RunError(f"--otel: {name}={chosen} is not supported: use http/protobuf (the default) or grpc")
    return chosen


def exporter_class() -> Any:
    """The SDK's OTLP metric exporter for the chosen protocol (gRPC made to cooperate with gevent)."""
    if protocol() == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter
    try:
        from grpc.experimental import gevent as grpc_gevent
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter
    except ImportError:
        raise RunError(
            "--otel: OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs the gRPC exporter: install lrun's grpc extra "
            "(pip install '.[grpc]' in its checkout), or use http/protobuf (the default)"
        ) from None
    grpc_gevent.init_gevent()  # before the first channel; calling it again is harmless
    return GrpcExporter


def bounded_session() -> Any:
    """A ``requests`` session whose every request has one deadline and reads at most ``MAX_ANSWER`` bytes."""
    import gevent
    import requests

    class Bounded(requests.Session):
        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
            deadline = max(0.1, kwargs.get("timeout") or DEFAULT_TIMEOUT)
            kwargs["stream"] = True  # the answer is read below, bounded
            try:
                with gevent.Timeout(deadline):
                    response = super().request(method, url, *args, **kwargs)
                    try:
                        response._content = response.raw.read(MAX_ANSWER, decode_content=True)
                    finally:
                        response.close()  # the rest of a longer answer is never read
            except gevent.Timeout:
                raise requests.exceptions.ReadTimeout(f"no complete answer in {deadline:g}s") from None
            return response

    return Bounded()


class OtelExport:
    def __init__(self, live: LiveView) -> None:
        from opentelemetry.metrics import CallbackOptions, Observation
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource

        self.live = live
        self.warned = False
        export = self
        OTLPMetricExporter = exporter_class()

        class Exporter(OTLPMetricExporter):  # type: ignore[misc,valid-type]
            """The SDK logs every retry; a collector that is down is one warning of ours instead."""

            def export(self, *args: Any, **kwargs: Any) -> Any:
                result = super().export(*args, **kwargs)
                if result != MetricExportResult.SUCCESS and not export.warned:
                    export.warned = True
                    live.warn(f"--otel: could not export to {self._endpoint}; the run goes on (retried each interval)")
                return result

        logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)
        resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", "lrun")})
        http = protocol() == "http/protobuf"
        self.reader = PeriodicExportingMetricReader(Exporter(session=bounded_session()) if http else Exporter())
        self.provider = MeterProvider(resource=resource, metric_readers=[self.reader])
        meter = self.provider.get_meter("lrun")

        def entries() -> list[StatsEntry]:
            return list(live.requests())

        def per_entry(read: Any) -> Any:
            def callback(options: CallbackOptions) -> Iterable[Observation]:
                return [Observation(read(e), {"http.request.method": e.method, "lrun.name": e.name}) for e in entries()]

            return callback

        meter.create_observable_counter(
            "lrun.requests", [per_entry(lambda e: e.num_requests)], unit="{request}", description="Requests made."
        )
        meter.create_observable_counter(
            "lrun.request.failures", [per_entry(lambda e: e.num_failures)], unit="{request}",
            description="Failed requests.",
        )  # fmt: skip
        meter.create_observable_counter(
            "lrun.response.bytes", [per_entry(lambda e: e.total_content_length)], unit="By",
            description="Bytes of response bodies received.",
        )  # fmt: skip

        def response_times(options: CallbackOptions) -> Iterable[Observation]:
            now = live.now()
            out = []
            for e in entries():
                for q in PERCENTILES:
                    ms = e.current_percentile(q, now)
                    if ms is not None:
                        attributes = {"http.request.method": e.method, "lrun.name": e.name, "percentile": f"{q:g}"}
                        out.append(Observation(ms / 1000.0, attributes))
            return out

        meter.create_observable_gauge(
            "lrun.response_time", [response_times], unit="s",
            description="Response time percentiles (50, 95, 99) over the last seconds.",
        )  # fmt: skip
        meter.create_observable_gauge(
            "lrun.request.phase", [otel_callback(live, Observation)], unit="s",
            description="Where the responses' time went (phase: dns, connect, tls, send, ttfb, receive): "
            "percentiles 50, 95, 99 and avg since the start.",
        )  # fmt: skip

        def users(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(live.users)]

        def target(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(live.target_users)]

        def peak(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(live.users_max)]

        def rps(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(live.total.current_rps(live.now()))]

        def transactions(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(e.num_requests, {"lrun.name": e.name}) for e in live.transactions()]

        def checkpoints(options: CallbackOptions) -> Iterable[Observation]:
            out = []
            for row in live.checks():
                base = {"http.request.method": row.method, "lrun.name": row.name, "lrun.check": row.check}
                out.append(Observation(row.passed, {**base, "result": "passed"}))
                out.append(Observation(row.failed, {**base, "result": "failed"}))
            return out

        meter.create_observable_gauge("lrun.users", [users], unit="{user}", description="Virtual users running.")
        meter.create_observable_gauge(
            "lrun.users.target", [target], unit="{user}", description="Virtual users the load asks for now."
        )
        meter.create_observable_gauge(
            "lrun.users.max", [peak], unit="{user}", description="The most virtual users running at once so far."
        )
        meter.create_observable_gauge(
            "lrun.requests_per_second", [rps], unit="{request}/s", description="Requests per second, recently."
        )
        meter.create_observable_counter(
            "lrun.transactions", [transactions], unit="{transaction}", description="Transactions ended."
        )
        meter.create_observable_counter(
            "lrun.checkpoints", [checkpoints], unit="{check}", description="Checkpoint verdicts."
        )

    def stop(self) -> None:
        """Export the final figures, then shut the SDK down (bounded)."""
        if self.warned:  # the collector is not answering: do not hold the end of the run for it
            self.provider.shutdown(timeout_millis=1_000)
            return
        if not self.reader.force_flush(timeout_millis=5_000) and not self.warned:
            log.warning("--otel: the last export did not reach the collector")
        self.provider.shutdown(timeout_millis=2_000)

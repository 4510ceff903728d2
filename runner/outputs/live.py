"""The live outputs: ``--metrics-port`` (Prometheus), ``--otel`` (OTLP), ``--webhook``. Each reads the run's own
statistics when asked (a scrape, an export), so none adds work per request; their libraries load only when asked
for."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runner.errors import RunError
from runner.outputs.auth import check_exposure
from runner.outputs.handler import Output

if TYPE_CHECKING:
    from runner.config import RunSettings
    from runner.live.view import LiveView
    from runner.outputs.otel import OtelExport
    from runner.outputs.prometheus import MetricsServer
    from runner.outputs.webhooks import Webhook
    from runner.report.model import Results


class PrometheusOutput(Output):
    """``--metrics-port``: ``/metrics`` served while the run lasts (``runner.outputs.prometheus``)."""

    def __init__(self, host: str, port: int, auth: str | None) -> None:
        self.host, self.port, self.auth = host, port, auth
        self.server: MetricsServer | None = None

    @classmethod
    def of(cls, settings: RunSettings) -> Output | None:
        if settings.metrics_port is None:
            return None
        return cls(settings.metrics_host, settings.metrics_port, settings.web_auth)

    def start(self, view: LiveView) -> None:
        check_exposure("--metrics-host", self.host, self.auth)
        from runner.outputs.prometheus import MetricsServer, RunCollector

        server = MetricsServer(RunCollector(view, view.metric_families()), self.host, self.port, self.auth)
        try:
            server.start()
        except OSError as exc:
            raise RunError(f"--metrics-port {self.port}: cannot listen there: {exc.strerror}") from None
        self.server = server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class OtelOutput(Output):
    """``--otel``: metrics over OTLP, exported each interval and once more at the end (``runner.outputs.otel``)."""

    def __init__(self) -> None:
        self.export: OtelExport | None = None

    @classmethod
    def of(cls, settings: RunSettings) -> Output | None:
        return cls() if settings.otel else None

    def start(self, view: LiveView) -> None:
        from runner.outputs.otel import OtelExport

        self.export = OtelExport(view)

    def stop(self) -> None:
        if self.export is not None:
            self.export.stop()


class WebhookOutput(Output):
    """``--webhook URL``: a notice when a rule trips and when the run ends (``runner.outputs.webhooks``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.hook: Webhook | None = None

    @classmethod
    def of(cls, settings: RunSettings) -> Output | None:
        return cls(settings.webhook) if settings.webhook else None

    def start(self, view: LiveView) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise RunError(f"--webhook {self.url}: expected an http:// or https:// URL")
        from runner.outputs.webhooks import Webhook

        self.hook = Webhook(self.url)

    def notify(self, text: str) -> None:
        if self.hook is not None:
            self.hook.send(text)

    def finish(self, results: Results, files: Sequence[str]) -> None:
        if self.hook is not None:
            self.hook.finished(results, [str(Path(f).resolve()) for f in files])

    def stop(self) -> None:
        if self.hook is not None:
            self.hook.close()

"""Live outputs of a run, beside the files: a Prometheus endpoint, OpenTelemetry (OTLP), webhooks.

``start(live, compiled, settings)`` starts what the settings ask for and returns ``Outputs``: ``stop`` ends them
(``finished(results)`` first tells the webhook how the run ended). They read the run's own statistics; none of
them adds work per request.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.outputs.auth import check_exposure

if TYPE_CHECKING:
    from runner.report.model import Results

log = logging.getLogger("lrun")


class Outputs:
    def __init__(self) -> None:
        self.stoppers: list[Any] = []
        self.webhook: Any = None  # runner.outputs.webhooks.Webhook

    def notify(self, text: str, **fields: Any) -> None:
        """Tell the webhook (if any) that a rule tripped; never blocks the load."""
        if self.webhook is not None:
            self.webhook.send(text, **fields)

    def finished(self, results: Results, files: list[str]) -> None:
        """The run ended: ``files`` are the reports and results written."""
        if self.webhook is not None:
            self.webhook.finished(results, [str(Path(f).resolve()) for f in files])

    def stop(self) -> None:
        for stop in reversed(self.stoppers):
            try:
                stop()
            except Exception as exc:  # an output failing at the end must not lose the results
                log.warning("stopping an output: %s", exc)
        self.stoppers = []


def start(live: Any, compiled: Any, settings: Any, extra: list[Any] | None = None) -> Outputs:
    """Start the outputs ``settings`` ask for; ``extra`` are more metric families (remote monitoring)."""
    outputs = Outputs()
    if settings.webhook:
        from runner.outputs.webhooks import Webhook

        if not settings.webhook.startswith(("http://", "https://")):
            from runner.errors import RunError

            raise RunError(f"--webhook {settings.webhook}: expected an http:// or https:// URL")
        outputs.webhook = Webhook(settings.webhook)
        outputs.stoppers.append(outputs.webhook.close)
    if settings.otel:
        from runner.outputs.otel import OtelExport

        otel = OtelExport(live, compiled)
        outputs.stoppers.append(otel.stop)
    if settings.metrics_port is not None:
        check_exposure("--metrics-host", settings.metrics_host, settings.web_auth)
        from runner.outputs.prometheus import MetricsServer, RunCollector

        server = MetricsServer(
            RunCollector(live, compiled, extra or []), settings.metrics_host, settings.metrics_port, settings.web_auth
        )
        try:
            server.start()
        except OSError as exc:
            from runner.errors import RunError

            raise RunError(f"--metrics-port {settings.metrics_port}: cannot listen there: {exc.strerror}") from None
        outputs.stoppers.append(server.stop)
    return outputs

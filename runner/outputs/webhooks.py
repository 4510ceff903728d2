"""``--webhook URL``: tell people when a rule trips and how the run ended.

A JSON POST that Slack's and Teams' incoming webhooks take (``text``; details under ``lrun``), from a greenlet:
the load never waits for it. A failure (no answer in ``timeout`` s, a 5xx or 429) is retried with a growing
pause; what is still undelivered at the end of the run gets ``GRACE`` more seconds, then one warning.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import gevent
from gevent.pool import Group

if TYPE_CHECKING:
    from runner.report.model import Results

log = logging.getLogger("lrun")

GRACE = 10.0  # seconds the end of the run waits for notices under way


class Webhook:
    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 3, backoff: float = 1.0) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.group = Group()
        self.failed: list[str] = []  # why notices were not delivered

    def send(self, text: str, **details: Any) -> None:
        """Post ``{"text": text, "lrun": details}`` in the background."""
        body = json.dumps({"text": text, "lrun": {"event": "rule", **details} if details else {"event": "rule"}})
        self.group.spawn(self._post, body.encode())

    def finished(self, results: Results, report: list[str]) -> None:
        """The run's end: verdict, key figures, failed rules, where the report is."""
        total = results.total
        verdict = "PASSED" if results.passed else "FAILED"
        p95 = total.percentiles.get("95")
        figures = f"{total.requests} requests, {total.failures} failed, {total.rps:.1f} req/s" + (
            f", p95 {p95:g} ms" if p95 is not None else ""
        )
        failed = [t.expression for t in results.thresholds if not t.passed]
        failed += [t.expression for t in results.resource_thresholds or [] if not t.passed]
        text = f"lrun {results.scenario}: {verdict} ({results.stop_reason}): {figures}"
        if failed:
            text += "; failed: " + ", ".join(failed)
        if report:
            text += "; report: " + ", ".join(report)
        details = {
            "event": "finished",
            "scenario": results.scenario,
            "passed": results.passed,
            "exit_code": results.exit_code,
            "stop_reason": results.stop_reason,
            "requests": total.requests,
            "failures": total.failures,
            "rps": total.rps,
            "p95_ms": p95,
            "failed": failed,
            "report": report,
        }
        self.group.spawn(self._post, json.dumps({"text": text, "lrun": details}).encode())

    def _post(self, body: bytes) -> None:
        reason = ""
        for attempt in range(self.retries + 1):
            if attempt:
                gevent.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(
                self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                reason = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code != 429:  # the hook refuses it: retrying will not help
                    break
            except (OSError, ValueError) as exc:
                reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
        self.failed.append(reason)

    def close(self) -> None:
        """Give notices under way ``GRACE`` seconds; warn once about what did not get through."""
        self.group.join(timeout=GRACE)
        pending = len(self.group)
        self.group.kill(block=False)
        if self.failed or pending:
            log.warning(
                "webhook: %d notice(s) not delivered (%s)", len(self.failed) + pending,
                ", ".join(sorted(set(self.failed))) or f"still pending after {GRACE:g}s",
            )  # fmt: skip

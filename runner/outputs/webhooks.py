"""``--webhook URL``: tell people when a rule trips and how the run ended.

A JSON POST that Slack's and Teams' incoming webhooks take (``text``; details under ``lrun``), from a greenlet:
the load never waits for it. A failure (no answer in ``timeout`` s, a 5xx or 429) is retried with a growing
pause; what is still undelivered at the end of the run gets ``GRACE`` more seconds, then one warning.

Each attempt has one deadline (``timeout``, the whole exchange, not per read) and reads at most ``MAX_ANSWER``
bytes of the answer: a hook that answers an endless body costs neither memory nor the end of the run. A redirect
(any 3xx, 307 and 308 included) is not followed: it is a failed delivery that names where it pointed. A webhook
URL is a credential; the hook's owner should give its final URL rather than have lrun post the notice (or, for a
302, a body-less GET) wherever a server says.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import IO, TYPE_CHECKING, Any

import gevent
from gevent.pool import Group

if TYPE_CHECKING:
    from runner.report.model import Results

log = logging.getLogger("lrun")

GRACE = 10.0  # seconds the end of the run waits for notices under way
MAX_ANSWER = 64 * 1024  # bytes of a hook's answer read (and thrown away)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx answer stays an ``HTTPError``: nothing is followed."""

    def redirect_request(self, req: Any, fp: IO[bytes], code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _redirect_reason(exc: urllib.error.HTTPError) -> str:
    """``HTTP 302 redirect to https://other.example (not followed: give the webhook's final URL)``."""
    where = urllib.parse.urlsplit(exc.headers.get("Location", "") if exc.headers else "")
    target = f"{where.scheme}://{where.netloc}" if where.netloc else "elsewhere"
    return f"HTTP {exc.code} redirect to {target[:200]} (not followed: give the webhook's final URL)"


class Webhook:
    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 3, backoff: float = 1.0) -> None:
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.group = Group()
        self.failed = 0  # notices given up on
        self.reasons: set[str] = set()  # why attempts failed

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
        for attempt in range(self.retries + 1):
            if attempt:
                gevent.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(
                self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with gevent.Timeout(self.timeout), _opener.open(request, timeout=self.timeout) as response:
                    response.read(MAX_ANSWER)  # enough to tell it was delivered; the rest is not read
                return
            except gevent.Timeout:
                reason = f"no complete answer in {self.timeout:g}s"
            except urllib.error.HTTPError as exc:
                reason = _redirect_reason(exc) if 300 <= exc.code < 400 else f"HTTP {exc.code}"
                exc.close()
                if exc.code < 500 and exc.code != 429:  # the hook refuses it: retrying will not help
                    self.reasons.add(reason)
                    break
            except (OSError, ValueError) as exc:
                reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
            self.reasons.add(reason)
        self.failed += 1

    def close(self) -> None:
        """Give notices under way ``GRACE`` seconds; warn once about what did not get through."""
        self.group.join(timeout=GRACE)
        pending = len(self.group)
        self.group.kill(block=False)
        if self.failed or pending:
            why = sorted(self.reasons) + ([f"{pending} still pending after {GRACE:g}s"] if pending else [])
            log.warning("webhook: %d notice(s) not delivered (%s)", self.failed + pending, "; ".join(why))

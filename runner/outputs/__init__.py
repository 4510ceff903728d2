"""The outputs of a run: live ones (a Prometheus endpoint, OpenTelemetry, webhooks, a JSON-lines stream) and
files written at the end (CSV, HTML, JUnit, JSON). Each is an ``Output`` (``runner.outputs.handler``) registered in
``runner.outputs.registry``; ``Outputs`` calls them for the run. None of them adds work per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from runner.errors import LrunError
from runner.outputs.handler import FileOutput, Output

if TYPE_CHECKING:
    from runner.config import RunSettings
    from runner.live.view import LiveView
    from runner.report.model import Results

log = logging.getLogger("lrun")


class Outputs:
    """The outputs of one run, as its settings ask for them (``for_settings``)."""

    def __init__(self, handlers: Sequence[Output] = ()) -> None:
        self.handlers = list(handlers)
        self.started: list[Output] = []
        self._failed: set[int] = set()  # outputs whose tick failed (said once)
        self.warn: Callable[[str], None] = log.warning

    @classmethod
    def for_settings(cls, settings: RunSettings) -> Outputs:
        from runner.outputs.registry import OUTPUTS

        return cls([o for o in (kind.of(settings) for kind in OUTPUTS) if o is not None])

    def start(self, view: LiveView, warn: Callable[[str], None]) -> None:
        """Start each output; when one cannot (``RunError``), those started stop and the error goes on."""
        self.warn = warn
        try:
            for output in self.handlers:
                output.start(view)
                self.started.append(output)
        except BaseException:
            self.stop()
            raise

    def tick(self, view: LiveView, now: float) -> None:
        """A second of the run: an output failing here is said once and does not stop the run."""
        for output in self.started:
            try:
                output.tick(view, now)
            except Exception as exc:
                if id(output) not in self._failed:
                    self._failed.add(id(output))
                    self.warn(f"output {type(output).__name__}: {type(exc).__name__}: {exc}")

    def notify(self, text: str) -> None:
        """A rule tripped; never blocks the load."""
        for output in self.started:
            output.notify(text)

    def write_files(self, results: Results, warn: Callable[[str], None]) -> tuple[list[str], list[str]]:
        """Write each file; one that fails (disk full, directory gone) does not stop the others. What was written
        and what was lost, as messages name them. After a loss the files still to write (the JSON results, last)
        get results that say the exit code the run ends with (1)."""
        written: list[str] = []
        lost: list[str] = []
        failed = results.model_copy(update={"exit_code": 1, "passed": False})
        for output in self.handlers:
            if not isinstance(output, FileOutput):
                continue
            try:
                output.write(results if not lost or results.exit_code else failed)
            except (OSError, LrunError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                lost.append(f"{output.option} {output.shown}")
                warn(f"{output.what} NOT written to {output.shown}: {reason}")
                continue
            written.append(f"{output.what} {output.shown}")
            log.info("%s written to %s", output.what, output.shown)
        return written, lost

    def finished(self, results: Results) -> None:
        """The run ended and its files are written: tell the outputs (the webhook names the reports)."""
        files = [o.path for o in self.handlers if isinstance(o, FileOutput) and o.linked]
        for output in self.started:
            output.finish(results, files)

    def stop(self) -> None:
        for output in reversed(self.started):
            try:
                output.stop()
            except Exception as exc:  # an output failing at the end must not lose the results
                log.warning("stopping an output: %s", exc)
        self.started = []

"""What an output of a run is: one class with hooks the run calls, registered in ``runner.outputs.registry``.

An output takes the settings it needs (its ``of(settings)`` returns None when the settings do not ask for it),
then the run calls ``start`` as the test starts, ``tick`` every second while it runs (after the second's
statistics were sampled), ``notify`` when a rule trips, ``finish`` once with the ``Results`` at the end, ``stop``
last (also when the run failed). Every hook has a default that does nothing: an output writes only what it uses.
A file written at the end is a ``FileOutput``: its ``write`` may raise ``OSError`` or ``LrunError``, and the run
then says which file was lost and exits 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from runner.config import RunSettings
    from runner.live.view import LiveView
    from runner.report.model import Results


class Output:
    """A live output, or a file at the end; see the module docstring."""

    setting: ClassVar[str | None] = None  # the RunSettings field naming the file it writes (checked before the load)
    option: ClassVar[str | None] = None  # its lrun run option, for messages

    @classmethod
    def of(cls, settings: RunSettings) -> Output | None:
        """This output as ``settings`` ask for it, or None when they do not."""
        raise NotImplementedError

    def start(self, view: LiveView) -> None:
        """The test starts (a server listens, an exporter connects); ``RunError`` when it cannot."""

    def tick(self, view: LiveView, now: float) -> None:
        """Every second while the test runs, after the statistics sampled that second."""

    def notify(self, text: str) -> None:
        """A rule tripped (a threshold, a resource threshold): ``text`` says which and what it does."""

    def finish(self, results: Results, files: Sequence[str]) -> None:
        """The test ended: its results, and the paths of the reports and results files asked for."""

    def stop(self) -> None:
        """The end: flush, close, stop serving."""


class FileOutput(Output):
    """A file (or files) written from the results at the end of the run."""

    setting: ClassVar[str]
    option: ClassVar[str]
    what: ClassVar[str]  # what it is, for messages ("HTML report")
    linked: ClassVar[bool] = True  # named to the webhook as where the report is

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def of(cls, settings: RunSettings) -> Output | None:
        path = getattr(settings, cls.setting)
        return cls(path) if path else None

    @property
    def shown(self) -> str:
        """The file(s) as messages name them."""
        return self.path

    def write(self, results: Results) -> None:
        raise NotImplementedError

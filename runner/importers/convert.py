"""One import, start to end: read, filter, correlate, parameterise, write."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from runner.importers.checks import add_checks
from runner.importers.correlate import Correlations, correlate
from runner.importers.filter import FilterOptions, Selection, select
from runner.importers.har import HarError, Recording, printable, read_har
from runner.importers.links import correlate_links
from runner.importers.steps import Step, build_steps
from runner.importers.write import Pool, WriteOptions, parameterise, render, set_think, step_dict
from runner.importers.wssteps import expand, prune, requests_kept


@dataclass
class ImportOptions:
    filters: FilterOptions = field(default_factory=FilterOptions)
    write: WriteOptions = field(default_factory=lambda: WriteOptions(name="recording"))
    min_length: int = 6


@dataclass
class Imported:
    recording: Recording
    selection: Selection
    steps: list[Step]
    correlations: Correlations
    pool: Pool | None
    yaml: str

    def rendered_steps(self) -> list[str]:
        """Each step as the scenario sends it (for ``verify``: which recorded literals are still sent)."""
        return [repr(step_dict(step)) for step in self.steps]

    def report(self) -> list[str]:
        """What the console shows: what was kept and dropped, each correlation, each warning."""
        lines = [
            f"{len(self.recording.entries)} requests recorded, {requests_kept(self.steps)} kept "
            f"(main origin {self.selection.origin})"
        ]
        lines += [f"  {line}" for line in self.selection.summary()]
        lines += [f"warning: {w}" for w in self.recording.warnings]
        for c in self.correlations.found:
            spec = ", ".join(f"{k}: {v}" for k, v in c.extractor.items())
            lines.append(f"correlated {c.name} = {c.value[:40]!r}: from {', '.join(c.sources)} ({spec})")
            lines.append(f"    used by {'; '.join(c.uses[:6])}" + (" …" if len(c.uses) > 6 else ""))
        for w in self.correlations.warnings:
            lines.append(f"warning: {w.value[:40]!r} used by {'; '.join(w.uses[:3])}: {w.why}")
        if self.pool and self.pool.columns:
            lines.append(f"data pool inputs ({', '.join(self.pool.columns)}): the typed values as its first row")
        return [printable(line) for line in lines]  # a recorded line break must not start a line of its own


def scenario_name(path: str) -> str:
    return re.sub(r"[_\s]+", " ", Path(path).stem).strip() or "recording"


def import_har(path: str, options: ImportOptions) -> Imported:
    recording = read_har(path)
    selection = select(recording.entries, options.filters)
    if not selection.entries:
        raise HarError(f"{path}: every request was left out as noise ({'; '.join(selection.summary())})")
    steps = expand(build_steps(selection.entries, selection.origin))
    set_think(steps, options.write.think)
    correlations = correlate(steps, options.min_length)
    correlate_links(steps, correlations, {name for step in steps for name in step.extract})
    steps = prune(steps)
    pool = parameterise(steps) if options.write.pool else None
    add_checks(steps, correlations, pool)
    text = render(recording, steps, selection.origin, correlations, selection.summary(), options.write, pool)
    return Imported(recording, selection, steps, correlations, pool, text)

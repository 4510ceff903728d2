"""A scenario and the files it needs, shipped from the master to workers that have no copy of it.

``collect`` gathers the scenario file, the files it includes and the files it uploads, named relative to their
deepest common folder; ``unpack`` writes them into a fresh folder on the worker, refusing names that would
land outside it. Paths inside the scenario stay relative, so the copy loads exactly like the original.
Data pools' CSV files and the scenario's Python module travel too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from runner.errors import RunError
from runner.scenario import LoadedScenario
from runner.scenario.grpc_check import grpc_files
from runner.scenario.loader import DataPath

MAX_BUNDLE = 48 * 1024 * 1024  # bytes: a Welcome frame must stay below the protocol's frame limit


def _uploads(data: Any, path: DataPath = ()) -> Iterator[DataPath]:
    """Data paths of every ``files: {field: {path: …}}`` upload in a scenario document."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "files" and isinstance(value, dict):
                for field, upload in value.items():
                    if isinstance(upload, dict) and isinstance(upload.get("path"), str):
                        yield (*path, "files", field, "path")
            else:
                yield from _uploads(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _uploads(value, (*path, index))


def scenario_files(loaded: LoadedScenario, extra: Iterable[Path] = ()) -> list[tuple[Path, Path]]:
    """Every file a run of ``loaded`` reads, as (where the scenario expects it, where to read it): the scenario,
    its includes, uploads, data pools' CSV files, its Python module, and ``extra``.

    A CSV file found in ``--data-dir`` travels to where the declaring file would look for it, so the workers'
    copy needs no data directory.
    """
    document = loaded.document
    files = [loaded.path, *document.includes]
    for where in _uploads(document.data):
        value = document.data
        for part in where:
            value = value[part]
        files.append(Path(document.mark(where).file).parent / value)
    if loaded.model.python:
        files.append(Path(document.mark(("python",)).file).parent / loaded.model.python)
    files.extend(grpc_files(loaded))
    files.extend(extra)
    pairs = [(file, file) for file in files]
    for name, source in loaded.pool_sources.items():
        spec = (loaded.model.pools or {})[name]
        declared_in = Path(document.mark(("pools", name, "csv")).file)
        expected = Path(spec.csv or "") if Path(spec.csv or "").is_absolute() else declared_in.parent / (spec.csv or "")
        pairs.append((expected, Path(source)))
    unique: dict[Path, tuple[Path, Path]] = {}
    for place, source_path in pairs:
        unique.setdefault(place.resolve(), (place, source_path))
    return list(unique.values())


def collect(loaded: LoadedScenario, extra: Iterable[Path] = ()) -> tuple[str, dict[str, bytes]]:
    """(the scenario's name in the bundle, {relative name: content}) — what ``Welcome`` carries."""
    files = scenario_files(loaded, extra)
    root = Path(os.path.commonpath([str(place.resolve().parent) for place, _ in files]))
    bundle: dict[str, bytes] = {}
    size = 0
    for place, source in files:
        try:
            content = source.read_bytes()
        except OSError as exc:
            raise RunError(f"cannot read {source} to send it to workers: {exc.strerror or exc}") from None
        size += len(content)
        if size > MAX_BUNDLE:
            raise RunError(
                f"the scenario's files are larger than {MAX_BUNDLE // 2**20} MiB: too much to send to workers; "
                "give the workers their own copy (lrun SCENARIO --worker …)"
            )
        bundle[place.resolve().relative_to(root).as_posix()] = content
    return loaded.path.resolve().relative_to(root).as_posix(), bundle


def unpack(bundle: dict[str, bytes], into: Path) -> None:
    """Write a bundle under ``into``; a name that is absolute or climbs out (``..``) is refused."""
    for name, content in bundle.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts or not relative.parts or "\\" in name:
            raise RunError(f"the master sent a file with an unsafe name: {name[:80]!r}")
        target = into.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)

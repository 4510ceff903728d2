"""The ``lrun import`` command's body (the click declaration lives in ``runner.cli``)."""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

import click

from runner.errors import LrunError
from runner.importers.convert import ImportOptions, import_har, scenario_name
from runner.importers.filter import FilterOptions
from runner.importers.write import WriteOptions, think_limit


def _usage(message: str) -> int:
    click.echo(f"lrun import: {message}", err=True)
    return 2


def run_import(
    recording: str,
    output: str | None,
    name: str | None,
    hosts: tuple[str, ...],
    keep_static: bool,
    exclude: tuple[str, ...],
    include: tuple[str, ...],
    think: str,
    pool: bool,
    min_length: int,
    verify: bool,
    host: str | None,
) -> int:
    """Import, write, optionally verify; the exit code."""
    try:
        think_limit(think)
    except ValueError as exc:
        return _usage(str(exc))
    for pattern in (*exclude, *include):
        try:
            re.compile(pattern)
        except re.error as exc:
            return _usage(f"--exclude/--include {pattern!r}: not a regular expression: {exc}")
    if host and not verify:
        return _usage("-H is the host --verify replays against; to run elsewhere later: lrun SCENARIO -H URL")
    if pool and not output:
        return _usage("--pool writes a CSV next to the scenario: give the scenario's file with -o")
    pool_file = Path(output).with_suffix(".csv").name if output else ""
    options = ImportOptions(
        FilterOptions(list(hosts), keep_static, list(exclude), list(include)),
        WriteOptions(name or scenario_name(recording), think, pool, pool_file),
        min_length,
    )
    try:
        imported = import_har(recording, options)
    except LrunError as exc:
        click.echo(f"lrun import: {exc}", err=True)
        return 2
    if output:
        csv_path = Path(output).with_suffix(".csv")
        try:
            Path(output).write_text(imported.yaml, encoding="utf-8")
            if imported.pool and imported.pool.columns:
                csv_path.write_text(imported.pool.csv_text(), encoding="utf-8")
        except OSError as exc:
            return _usage(f"cannot write {exc.filename}: {exc.strerror or exc}")
    for line in imported.report():
        click.echo(line, err=True)
    if output:
        if imported.pool and imported.pool.columns:
            click.echo(f"wrote {output} and its data pool {csv_path}", err=True)
        else:
            click.echo(f"wrote {output}", err=True)
    else:
        sys.stdout.write(imported.yaml)
    if not verify:
        return 0
    from runner.importers.verify import compare, replay, verify_row

    with tempfile.TemporaryDirectory() as tmp:
        scenario = output or str(Path(tmp) / "imported.yaml")
        if not output:
            Path(scenario).write_text(imported.yaml, encoding="utf-8")
        data_dir = None
        if imported.pool and imported.pool.columns:
            other, changed = verify_row(imported.steps, imported.pool)
            (Path(tmp) / pool_file).write_text(other.csv_text(), encoding="utf-8")
            data_dir = tmp
            click.echo(f"verify: replaying with another data row ({changed})", err=True)
        try:
            results = replay(scenario, host, data_dir)
        except LrunError as exc:
            click.echo(f"lrun import --verify: {exc}", err=True)
            return 2
    created = {w.value for w in imported.correlations.warnings if "the recording created it" in w.why}
    verdict = compare(imported.steps, results, imported.rendered_steps(), created)
    for line in verdict.lines():
        click.echo(line, err=True)
    return 0 if verdict.passed else 1

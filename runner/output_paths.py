"""Output files checked before a run sends any load, so a typo in a path never costs a whole test."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from runner.errors import LrunError


def output_options() -> dict[str, str]:
    """Setting -> the option that names it: each output's file (``runner.outputs.registry``), the log file."""
    from runner.outputs.registry import OUTPUTS

    return {**{o.setting: o.option for o in OUTPUTS if o.setting and o.option}, "logfile": "--logfile"}


def check_writable(path: str, option: str, *, prefix: bool = False) -> None:
    """Raise ``LrunError`` (one line) when ``path`` cannot be written: its directory is missing or read-only,
    or it names a directory. With ``prefix`` (``--csv``), ``path`` starts file names instead of naming one."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not prefix and target.is_dir():
        raise LrunError(f"{option} {path}: is a directory; name a file in it")
    if not directory.exists():
        raise LrunError(f"{option} {path}: no directory {directory}/ (create it first)")
    if not directory.is_dir():
        raise LrunError(f"{option} {path}: {directory} is not a directory")
    try:  # the writers make a temporary file there, then rename it over the target
        fd, temp = tempfile.mkstemp(prefix=".lrun-check.", dir=directory)
    except OSError as exc:
        raise LrunError(f"{option} {path}: cannot write in {directory}/: {exc.strerror or exc}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(temp)
    if not prefix and target.exists() and not os.access(target, os.W_OK):
        raise LrunError(f"{option} {path}: the file is not writable")


def check_outputs(settings: Any) -> None:
    """Every output path of ``settings`` (a ``RunSettings``), checked; the first bad one raises."""
    for name, option in output_options().items():
        value = getattr(settings, name, None)
        if value:
            check_writable(value, option, prefix=name == "csv")  # --csv PREFIX starts file names

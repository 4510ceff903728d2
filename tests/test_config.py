"""Where settings come from: command line > LRUN_* > config file > scenario > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import find_config, resolve
from runner.errors import LrunError

SCENARIO_LOAD = {"users": 3, "spawn_rate": 1.0, "run_time": 60.0, "iterations": None, "stop_timeout": 0}


def test_precedence(tmp_path: Path) -> None:
    (tmp_path / "lrun.conf").write_text(
        "# like locust.conf\nusers = 7\nrun-time = 2m\nspawn-rate = 2\nstop-timeout=5s\n"
    )
    config = find_config(None, tmp_path)
    settings = resolve(
        {"run_time": "30s"}, environ={"LRUN_SPAWN_RATE": "5"}, config=config, scenario_load=SCENARIO_LOAD
    )
    assert (settings.users, settings.run_time, settings.spawn_rate, settings.stop_timeout) == (7, 30.0, 5.0, 5.0)
    assert settings.sources["run_time"] == "command line"
    assert settings.sources["spawn_rate"] == "LRUN_SPAWN_RATE"
    assert settings.sources["users"].endswith("lrun.conf")
    assert resolve({}, environ={}, scenario_load=SCENARIO_LOAD).users == 3
    assert resolve({}, environ={}).users == 1


def test_pyproject_tool_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.lrun]\nusers = 4\nrun-time = "1m"\n')
    settings = resolve({}, environ={}, config=find_config(None, tmp_path))
    assert (settings.users, settings.run_time) == (4, 60.0)


def test_toml_style_lrun_conf(tmp_path: Path) -> None:
    (tmp_path / "lrun.conf").write_text('[lrun]\nusers = 9\ntags = ["a", "b"]\nonly-summary = true\n')
    settings = resolve({}, environ={}, config=find_config(None, tmp_path))
    assert (settings.users, settings.tags, settings.only_summary) == (9, ["a", "b"], True)


def test_mistakes_name_their_source(tmp_path: Path) -> None:
    with pytest.raises(LrunError, match=r"--users from LRUN_USERS: expected a whole number; got 'many'"):
        resolve({}, environ={"LRUN_USERS": "many"})
    (tmp_path / "bad.conf").write_text("users = 2\nusres = 3\n")
    with pytest.raises(LrunError, match=r"bad.conf:2:1: unknown setting 'usres' \(did you mean 'users'\?\)"):
        find_config(str(tmp_path / "bad.conf"), tmp_path)
    with pytest.raises(LrunError, match="--config: file not found"):
        find_config(str(tmp_path / "nope.conf"), tmp_path)
    with pytest.raises(LrunError, match=r"--run-time from command line: 'soon' is not a duration"):
        resolve({"run_time": "soon"}, environ={})


def test_distributed_settings(tmp_path: Path) -> None:
    (tmp_path / "lrun.conf").write_text("master = true\nexpect-workers = 4\nreport-interval = 2s\n")
    settings = resolve(
        {"heartbeat_interval": "500ms", "processes": "auto"},
        environ={"LRUN_MASTER_TOKEN": "s3cret", "LRUN_EXPECT_WORKERS": "6"},
        config=find_config(None, tmp_path),
    )
    assert settings.master is True and settings.expect_workers == 6 and settings.report_interval == 2.0
    assert (settings.heartbeat_interval, settings.master_token) == (0.5, "s3cret")
    assert settings.processes == (__import__("os").cpu_count() or 1)
    assert (settings.master_port, settings.master_bind_host, settings.heartbeat_liveness) == (5557, "*", 3)
    for cli, message in (
        ({"processes": "0"}, "--processes from command line: '0' is neither a positive number nor 'auto'"),
        ({"master_port": "70000"}, "--master-port from command line: '70000' is not a port number"),
        ({"heartbeat_interval": "0s"}, "--heartbeat-interval from command line: '0s' is not a positive duration"),
        ({"heartbeat_liveness": "0"}, "--heartbeat-liveness from command line: '0' is not a positive number"),
    ):
        with pytest.raises(LrunError, match=message):
            resolve(cli, environ={})
    with pytest.raises(
        LrunError,
        match=r"--master-port from LRUN_MASTER_PORT: .tcp://10.0.0.1:5557. is not a port number: a Kubernetes",
    ):
        resolve({}, environ={"LRUN_MASTER_PORT": "tcp://10.0.0.1:5557"})  # a Kubernetes service link


def test_each_setting_is_declared_once() -> None:
    """The table says how a value is read, RunSettings gives the default: every setting in both, no default
    written twice."""
    import dataclasses

    from runner.config import SETTINGS, RunSettings, resolve

    assert set(SETTINGS) == {f.name for f in dataclasses.fields(RunSettings)} - {"sources"}
    assert all(callable(convert) for convert in SETTINGS.values())
    defaults = resolve({}, environ={})
    assert dataclasses.replace(defaults, sources={}) == RunSettings()
    assert set(defaults.sources.values()) == {"default"}

"""Concepts defined once, and every place that uses them reading that one definition: the
checks that fail when a second copy appears and drifts."""
from __future__ import annotations

import inspect
import subprocess

import pytest

from agents import farm_agent, farm_common
from orchestrator.agent_client import _PICK_PYTHON, PICK_VENV_PYTHON_SH
from orchestrator.agent_session import _SESSION_SH, AgentSession
from orchestrator.cli import main
from orchestrator.cli.bench_cmd import _FIELD_OF_OPTION, bench
from orchestrator.cli.render import CELL_VERDICT_MARKUP
from orchestrator.compare import CELL_VERDICTS
from orchestrator.errors import ExitStatus
from orchestrator.runtimes import RUNTIMES
from orchestrator.settings import GATE_REPEATS, MIN_THRESHOLD_PCT, BenchSettings, Thresholds, field_meta, flag_of


def test_the_agents_timing_and_cleaning_defaults_are_the_settings_defaults():
    settings = BenchSettings()
    parser = farm_agent.build_parser()
    serve = parser.parse_args(["serve"])
    lease = parser.parse_args(["lease", "acquire", "--holder", "{}"])
    clean = parser.parse_args(["clean"])
    session = inspect.signature(AgentSession).parameters

    assert settings.heartbeat_s == farm_common.DEFAULT_HEARTBEAT_S == serve.heartbeat_s
    assert session["heartbeat_s"].default == settings.heartbeat_s
    assert session["dead_after_s"].default == settings.disconnect_after_s == farm_common.DEFAULT_DISCONNECT_AFTER_S
    assert settings.lease_ttl_s == farm_common.DEFAULT_LEASE_TTL_S == lease.ttl == serve.controller_timeout_s
    assert session["controller_timeout_s"].default == settings.lease_ttl_s
    assert (clean.max_bytes, clean.max_age_days) == (settings.workdir_max_bytes, settings.workdir_max_age_days)


@pytest.mark.parametrize("marker, picked", [("python3", "venv"), ("python3.9", "board")])
def test_the_session_and_the_one_shot_client_pick_the_same_python(tmp_path, marker, picked):
    """Both commands run the one picker: the venv's python when its marker names the board's."""
    assert PICK_VENV_PYTHON_SH in _SESSION_SH and PICK_VENV_PYTHON_SH in _PICK_PYTHON
    workdir = tmp_path / "work dir"
    (workdir / "venv" / "bin").mkdir(parents=True)
    (workdir / "venv" / farm_common.PYTHON_MARKER_NAME).write_text(marker + "\n")
    fake = workdir / "venv" / "bin" / "python"
    fake.write_text('#!/bin/sh\necho venv "$@"\n')
    fake.chmod(0o755)
    expected = "venv -c print('board')" if picked == "venv" else "board"
    argv = ["-c", "print('board')"]
    session = subprocess.run(["sh", "-c", _SESSION_SH, "farm-session", str(workdir), "python3", "venv", *argv],
                             capture_output=True, text=True, timeout=30)
    client = subprocess.run(["sh", "-c", _PICK_PYTHON, "farm-python", str(workdir / "venv"), "python3", *argv],
                            capture_output=True, text=True, timeout=30)
    assert session.stdout.strip() == client.stdout.strip() == expected


@pytest.mark.parametrize("command, flag", [
    (["bench", "--model", "absent.onnx"], "--fail-on-regression"),
    (["bench", "--model", "absent.onnx"], "--fail-on-memory-regression"),
    (["compare", "a", "b"], "--fail-on-regression"),
    (["compare", "a", "b"], "--min-effect"),
    (["compare", "a", "b"], "--memory-min-effect"),
    (["runs", "wait", "r"], "--fail-on-regression"),
    (["runs", "wait", "r"], "--fail-on-memory-regression"),
])
def test_every_threshold_option_has_the_suites_lower_bound(command, flag, db_url, capsys):
    from orchestrator.store import open_store

    open_store(db_url).close()
    assert main([*command, flag, f"{MIN_THRESHOLD_PCT / 2:g}", "--db", db_url]) == ExitStatus.USAGE
    assert flag in capsys.readouterr().err
    # at the bound the option is taken: the command fails later, for what else it was given
    assert main([*command, flag, f"{MIN_THRESHOLD_PCT:g}", "--db", db_url]) != ExitStatus.OK
    assert flag not in capsys.readouterr().err
    with pytest.raises(ValueError):
        Thresholds(latency_pct=MIN_THRESHOLD_PCT / 2)
    assert Thresholds(latency_pct=MIN_THRESHOLD_PCT, memory_pct=MIN_THRESHOLD_PCT).latency_pct == MIN_THRESHOLD_PCT


def test_repeats_help_says_how_many_processes_a_gated_run_takes():
    assert f"takes {GATE_REPEATS} unless given" in (BenchSettings.model_fields["repeats"].description or "")


def test_every_setting_with_a_flag_is_a_bench_option_that_resume_checks():
    parameters = inspect.signature(bench).parameters
    for name, info in BenchSettings.model_fields.items():
        if not field_meta(info).get("cli"):
            continue
        option = [p for p, field in _FIELD_OF_OPTION.items() if field == name]
        assert len(option) == 1, name
        flags = [flag for decl in parameters[option[0]].default.param_decls for flag in decl.split("/")]
        assert flag_of(name) in flags, name


def test_every_cell_verdict_has_one_terminal_markup():
    assert set(CELL_VERDICT_MARKUP) == set(CELL_VERDICTS)


def test_the_runtime_help_names_every_registered_runtime():
    help_text = BenchSettings.model_fields["runtime"].description or ""
    assert all(name in help_text for name in RUNTIMES)


def _number_options():
    """(command path, option flags, python type, min, max) of every int/float option of every command."""
    from typer.main import get_command

    from orchestrator.cli import app

    found = []

    def walk(command, path):
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])
        for param in getattr(command, "params", []):
            annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
            if annotation in (int, float):
                found.append((" ".join(path), tuple(param.opts), annotation, param.min, param.max))

    walk(get_command(app), ["farm"])
    return found


def test_every_number_option_of_every_command_is_bounded_above():
    """A value past what SQLite, timedelta or a thread pool take is a usage error naming the flag,
    never an OverflowError (internal error) in the middle of a run: an option either has typer's
    max= or sets a BenchSettings field that refuses huge and non-finite values."""
    from pydantic import ValidationError

    field_of_flag = {flag_of(name): name for name, info in BenchSettings.model_fields.items() if field_meta(info).get("cli")}
    options = _number_options()
    assert any(opts[0] == "--last" for _, opts, *_ in options)  # the walk finds the commands' options
    for command, opts, annotation, _low, high in options:
        if high is not None:
            continue
        field = next((field_of_flag[o] for o in opts if o in field_of_flag), None)
        assert field is not None, f"{command} {opts[0]}: no max= and no BenchSettings field bounds it"
        huge = [10**30] if annotation is int else [1e308, float("inf"), float("nan")]
        for value in huge:
            with pytest.raises(ValidationError):
                BenchSettings(**{field: value})

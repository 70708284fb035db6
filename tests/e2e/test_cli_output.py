"""What `farm` prints, as a person and a CI log see it: the real CLI in a subprocess.

* at COLUMNS=80 no line of the main commands (help, bench, runs ls/show/export, compare,
  history, inventory ls/check, report) is longer than 80 characters, and names are never
  folded mid-word;
* a piped `farm bench` (no terminal: CI, `| tee`) prints a timestamped line as each cell
  starts, while it runs, not at the end;
* renamed options: the old spellings still work, with a note;
* the plain progress lines of lease waits, retries and failures (a fake clock, no sleep).
"""
from __future__ import annotations

import io
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time

import pytest
from rich.console import Console

from orchestrator.board_check import BoardCheck
from orchestrator.cli.inventory_cmd import facts_table
from orchestrator.cli.progress import WAIT_LINE_EVERY_S, PlainProgress
from orchestrator.models import DEMO_DIR
from orchestrator.store import open_store
from tests.browser.synthetic import add_run, matrix
from tests.conftest import REPO_ROOT

BOARDS = ["rpi4-01", "jetson-nano-1", "snapdragon-865-devkit"]
VARIANTS = ["fp32", "fp16", "int8-dynamic", "int8-static", "prune-l1-layerwise:0.5"]
WIDTH = 80


def farm(*args: str, env: dict[str, str], timeout_s: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], capture_output=True, text=True,
                          env=env, timeout=timeout_s, cwd=env["FARM_TEST_CWD"])


@pytest.fixture
def cli_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FARM_DB", "FARM_INVENTORY")}
    env.update(COLUMNS=str(WIDTH), LINES="40", PYTHONPATH=str(REPO_ROOT), FARM_DB=f"sqlite:///{tmp_path / 'farm.db'}",
               XDG_DATA_HOME=str(tmp_path / "data"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               FARM_TEST_CWD=str(tmp_path), TERM="xterm-256color")
    return env


@pytest.fixture
def two_runs(cli_env) -> tuple[str, str]:
    with open_store(cli_env["FARM_DB"]) as store:
        base = add_run(store, matrix(BOARDS, ["yolov8n"], VARIANTS), samples_per_result=60, seed=1)
        new = add_run(store, matrix(BOARDS, ["yolov8n"], VARIANTS, **{
            "jetson-nano-1|yolov8n|int8-static": {"fail_kind": "variant-error", "fail_message": "no calibration"},
            "rpi4-01|yolov8n|fp16": {"throttled": True},
            "snapdragon-865-devkit|yolov8n|int8-dynamic": {"fallback": True},
        }), samples_per_result=60, seed=2)
        store.tag_run(base, "release-1.2")
    return base, new


#: A file path or database URL is printed whole on its own line, however long, so it can be
#: copied (and a CI log's path is often longer than 80 characters by itself).
PATH_LINE = re.compile(r"^(report|database): \S+$")


def too_long(text: str) -> list[str]:
    return [line for line in text.splitlines() if len(line) > WIDTH and not PATH_LINE.match(line)]


def test_main_commands_fit_80_columns_and_never_fold_a_name(cli_env, two_runs):
    base, new = two_runs
    commands = [
        ["--help"], ["bench", "--help"], ["report", "--help"], ["runs", "--help"], ["runs", "export", "--help"],
        ["inventory", "check", "--help"], ["lab", "--help"],
        ["runs", "ls"], ["runs", "show"], ["runs", "show", base],
        ["compare", "tag:release-1.2", "latest"],
        ["history", "--board", "snapdragon-865-devkit", "--model", "yolov8n"],
        ["inventory", "ls", "-i", str(REPO_ROOT / "inventory" / "boards.example.yaml")],
        ["inventory", "check"],
    ]
    outputs = {}
    for args in commands:
        done = farm(*args, env=cli_env)
        assert done.returncode == 0, (args, done.stderr)
        text = done.stdout + done.stderr
        assert too_long(text) == [], (args, too_long(text))
        assert "<bool>" not in text and "<str>" not in text and "<list[" not in text and "%%" not in text, args
        outputs[" ".join(args)] = text
    show = outputs["runs show"]
    for name in (*BOARDS, *VARIANTS):
        assert re.search(rf"(^|\s){re.escape(name)}(\s|$)", show, re.M), name  # whole, on one line
    rows = [line.split()[0] for line in show.splitlines() if line.split() and line.split()[0] in BOARDS]
    assert rows == sorted(rows) and len(rows) == len(BOARDS) * len(VARIANTS)  # board order, not completion order
    assert "fallback" in show and "throttled" in show and "vs fp32" in show
    failed = next(line for line in show.splitlines() if "int8-static" in line and "jetson-nano-1" in line)
    assert "variant-error" in failed and "MiB" not in failed  # a variant never made has no size of its own
    bench_help = outputs["bench --help"]
    for panel in ("What to run", "Where", "How to measure", "Variants and accuracy", "Results and gating"):
        assert f"─ {panel} ─" in bench_help, panel
    assert "--report" not in bench_help and "--output" in bench_help  # the old name is hidden


def test_json_on_listings_and_export_defaults_to_latest(cli_env, two_runs):
    base, new = two_runs
    runs = json.loads(farm("runs", "ls", "--json", env=cli_env).stdout)
    assert [r["run_id"] for r in runs] == [new, base]
    shown = json.loads(farm("runs", "show", "--json", env=cli_env).stdout)
    assert shown["run"]["run_id"] == new and len(shown["results"]) == len(BOARDS) * len(VARIANTS)
    exported = json.loads(farm("runs", "export", env=cli_env).stdout)
    assert {r["run_id"] for r in exported} == {new}
    boards = json.loads(farm("inventory", "ls", "--json", "-i", str(REPO_ROOT / "inventory" / "lab.yaml"),
                             env=cli_env).stdout)
    assert boards and {"board", "address", "groups", "tags"} <= set(boards[0])


def test_export_samples_in_long_format_in_every_format(cli_env, two_runs, tmp_path):
    import pandas as pd

    _, new = two_runs
    ok_results = len(BOARDS) * len(VARIANTS) - 1
    records = json.loads(farm("runs", "export", "--samples", env=cli_env).stdout)
    assert len(records) == ok_results * 60
    assert set(records[0]) == {"run_id", "board", "model", "variant", "sample", "latency_ms", "result_id", "sweep"}
    csv_text = farm("runs", "export", new, "--samples", "--format", "csv", env=cli_env).stdout
    assert csv_text.splitlines()[0] == "run_id,board,model,variant,sample,latency_ms,result_id,sweep"
    assert len(csv_text.splitlines()) == ok_results * 60 + 1
    out = tmp_path / "samples.parquet"
    assert farm("runs", "export", "--samples", "--format", "parquet", "-o", str(out), env=cli_env).returncode == 0
    frame = pd.read_parquet(out)
    assert len(frame) == ok_results * 60 and frame["latency_ms"].dtype == "float64"
    with open_store(cli_env["FARM_DB"]) as store:
        first = next(r for r in store.results(new) if r["status"] == "ok")
        stored = store.series(first["result_id"])[0]
    mine = frame[(frame.board == first["board"]) & (frame.variant == first["variant"])].sort_values("sample")
    assert mine["latency_ms"].tolist() == pytest.approx(stored)


def test_old_option_names_still_work_with_a_note(cli_env, two_runs, tmp_path):
    base, new = two_runs
    done = farm("report", new, "--compare", base, "-o", str(tmp_path / "r.html"), env=cli_env)
    assert done.returncode == 0 and (tmp_path / "r.html").exists()
    assert "--compare/-c is deprecated, use --baseline" in done.stderr
    assert "compared with" in done.stdout
    both = farm("report", new, "--compare", base, "--baseline", base, env=cli_env)
    assert both.returncode == 2 and "give only --baseline" in both.stderr
    done = farm("runs", "tag", "-d", "release-1.2", env=cli_env)
    assert done.returncode == 0 and "removed tag release-1.2" in done.stdout and "deprecated" in done.stderr


def test_a_piped_bench_prints_a_line_as_each_cell_starts(cli_env):
    """No terminal: each cell's start is a flushed line at once, not text held until the end.
    A cell measures at least 3 s, so a start line that arrives with its own `done` line (a
    buffered display) fails; the start line must come within 2 s of the cell's start."""
    args = [sys.executable, "-m", "orchestrator.cli", "bench", "-m", str(DEMO_DIR / "digits_mlp.onnx"),
            "--variants", "fp32,fp16", "--runs", "5", "--min-seconds", "3", "--warmup", "1", "--threads", "1",
            "--no-report"]
    lines: queue.Queue = queue.Queue()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env,
                               cwd=cli_env["FARM_TEST_CWD"])

    def read() -> None:
        for line in process.stderr:
            lines.put((time.monotonic(), line.rstrip("\n")))
        lines.put((time.monotonic(), None))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[tuple[float, str]] = []
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            arrived, line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                break
            seen.append((arrived, line))
    finally:
        process.wait(timeout=60)
        reader.join(timeout=10)
    assert process.returncode == 0, seen
    text = [line for _, line in seen]
    assert all(re.match(r"^\d\d:\d\d:\d\d ", line) for line in text if line.strip()), text
    started = {line.split(": started")[0].split(" ", 1)[1]: t for t, line in seen if line.endswith(": started")}
    done = {}
    for t, line in seen:
        found = re.match(r"^\S+ (.+): done in ([\d.]+) s", line)
        if found:
            done[found.group(1)] = (t, float(found.group(2)))
    assert set(started) == set(done) == {"local digits_mlp/fp32", "local digits_mlp/fp16"}, text
    for cell, start_arrival in started.items():
        done_arrival, took_s = done[cell]
        assert took_s >= 3.0
        assert done_arrival - start_arrival >= 2.5, (cell, text)  # printed while the cell ran
        assert took_s - (done_arrival - start_arrival) <= 2.0, (cell, text)  # within 2 s of its start
    summary = process.stdout.read()
    assert too_long(summary) == [] and "digits_mlp" in summary


def test_plain_progress_says_lease_waits_at_most_every_10_s_and_retries_and_failures():
    now = [100.0]
    stream = io.StringIO()
    progress = PlainProgress(Console(file=stream, width=80), clock=lambda: now[0])
    progress.on_event("run_started", {"run_id": "r1", "cells": 2})
    for waited in (0.0, 2.0, 4.0, WAIT_LINE_EVERY_S + 0.5):
        now[0] = 100.0 + waited
        progress.on_event("board_waiting", {"board": "rpi4", "lease": "held by ci-7 (pid 42)", "waited_s": waited})
    progress.on_event("board_retry", {"board": "rpi4", "what": "connect", "kind": "timeout", "attempt": 1,
                                      "delay_s": 2.0})
    progress.on_event("cell_failed", {"board": "rpi4", "model": "m", "variant": "fp16", "kind": "oom-killed",
                                      "message": "worker killed"})
    lines = [line.split(" ", 1)[1] for line in stream.getvalue().splitlines()]
    assert lines == [
        "run r1: 2 cell(s) to measure",
        "rpi4: waiting for the board (0 s so far): held by ci-7 (pid 42)",
        "rpi4: waiting for the board (10 s so far): held by ci-7 (pid 42)",
        "rpi4: connect: timeout, retry 1 in 2 s",
        "rpi4 m/fp16: FAILED oom-killed: worker killed [1/2]",
    ]


def test_rich_progress_in_a_terminal_draws_cells_and_boards():
    stream = io.StringIO()
    console = Console(file=stream, width=80, force_terminal=True)
    from orchestrator.cli.progress import BenchProgress

    with BenchProgress(console) as progress:
        progress.on_event("run_started", {"run_id": "r1", "cells": 1})
        progress.on_event("cell_started", {"board": "rpi4", "model": "m", "variant": "fp16", "round": 1, "rounds": 1})
        progress.on_event("cell_phase", {"board": "rpi4", "model": "m", "variant": "fp16", "phase": "measure",
                                         "round": 1, "rounds": 1})
        progress.on_event("cell_finished", {"board": "rpi4", "model": "m", "variant": "fp16", "round": 1, "rounds": 1,
                                            "row": {"latency_ms_p50": 1.0}})
    assert progress.run_id == "r1" and "\x1b[" in stream.getvalue()  # drawn with terminal control codes


def test_inventory_check_fits_80_columns_with_long_facts():
    facts = {"arch": "aarch64", "cpu_model": "Qualcomm Technologies, Inc SM8250 Kryo 585 @ 2.84 GHz",
             "cpu_cores": 8, "cpu_cores_available": 8, "mem_total_bytes": 8 << 30,
             "os": "Ubuntu 20.04.6 LTS (Focal Fossa)", "kernel": "4.19.157-perf-g3b2a1c0", "python_version": "3.8.10",
             "onnxruntime_version": "1.17.3", "onnxruntime_providers": ["QNNExecutionProvider", "CPUExecutionProvider"],
             "openvino_version": "2024.6.0-17404", "openvino_devices": ["CPU", "GPU"],
             "cgroup_limits": {"cpu_quota_cores": 1.5, "memory_limit_bytes": 2 << 30},
             "temperatures_c": {"cpu": 51.0}, "disk_free_bytes": 40 << 30}
    checks = [BoardCheck("snapdragon-865-devkit", facts), BoardCheck("jetson-nano-1", None, "unreachable", "no route")]
    stream = io.StringIO()
    console = Console(file=stream, width=80)
    import orchestrator.cli.state as state

    saved, state.out = state.out, console
    try:
        console.print(facts_table(checks))
    finally:
        state.out = saved
    text = stream.getvalue()
    assert too_long(text) == [] and "snapdragon-865-devkit" in text and "unreachable" in text
    assert "1.5 cpu, 2.0 GiB" in text  # the limits column stays: it is what a job gets


def test_a_plan_that_cannot_be_built_fails_before_measuring_with_the_fix(cli_env):
    done = farm("bench", "--variants", "fp32,fp16,int8-dynamic,int8-static", "--runs", "3", "--min-seconds", "0",
                env=cli_env)
    assert done.returncode == 2, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.strip()]
    assert "int8-static needs calibration inputs and yolo_timing has none" in line
    assert "--calibration" in line and "--dataset yolo_timing=PATH" in line
    assert "started" not in done.stderr  # no cell ran
    listed = farm("runs", "ls", "--json", env=cli_env)  # no run was created: not even the database
    assert listed.returncode == 6 and "no results database at" in listed.stderr


def test_a_missing_model_is_said_before_the_heavy_imports(cli_env):
    started = time.monotonic()
    done = farm("bench", "-m", "nosuch.onnx", env=cli_env)
    took_s = time.monotonic() - started
    assert done.returncode == 3 and done.stderr.strip() == "farm: error: model file not found: nosuch.onnx"
    probe = subprocess.run([sys.executable, "-X", "importtime", "-m", "orchestrator.cli", "bench", "-m", "nosuch.onnx"],
                           capture_output=True, text=True, env=cli_env, cwd=cli_env["FARM_TEST_CWD"], timeout=60)
    imported = {line.rsplit("|", 1)[-1].strip() for line in probe.stderr.splitlines() if line.startswith("import time")}
    assert "orchestrator.variants" not in imported and "onnx" not in imported, took_s


def test_a_plain_bench_of_an_onnx_file_never_imports_onnx(cli_env, yolo_model):
    """onnx's own import (ml_dtypes) cost ~0.8 s of every `farm bench`; models are read with a
    protobuf outline instead (orchestrator.models), shapes included."""
    probe = subprocess.run([sys.executable, "-X", "importtime", "-m", "orchestrator.cli", "bench", "-m", str(yolo_model),
                            "--runs", "3", "--min-seconds", "0", "--warmup", "0", "--sample-interval", "0",
                            "--no-report"], capture_output=True, text=True, env=cli_env, cwd=cli_env["FARM_TEST_CWD"],
                           timeout=240)
    assert probe.returncode == 0, probe.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in probe.stderr.splitlines() if line.startswith("import time")}
    assert "onnx" not in imported and "ml_dtypes" not in imported

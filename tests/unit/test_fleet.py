"""Fleet mode's pure logic: which queue a board is in, URLs for procrastinate, plans and gate
options as stored data, and the names a plan may use."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from orchestrator.boards import Board
from orchestrator.errors import BadInputError, StoreError, UsageError
from orchestrator.fleet.artifacts import safe_relative
from orchestrator.fleet.gate import GateOptions
from orchestrator.fleet.manifest import FleetPlan, PlannedBoard, check_submittable
from orchestrator.fleet.queue import board_queue, conninfo_of, migrations_between, require_postgresql
from orchestrator.settings import BenchSettings


def test_a_boards_queue_is_its_queue_tag_else_its_site_tag_else_default():
    assert board_queue(Board("a", tags={"queue": "lab-a", "site": "lab-b"})) == "lab-a"
    assert board_queue(Board("a", tags={"site": "lab-b"})) == "lab-b"
    assert board_queue(Board("a", tags={"profile": "rpi4"})) == "default"
    with pytest.raises(BadInputError, match="board a: tag site"):
        board_queue(Board("a", tags={"site": "two words"}))
    with pytest.raises(BadInputError):
        board_queue(Board("a", tags={"queue": "x" * 41}))  # procrastinate's LISTEN channel must fit 63 bytes


def test_inventory_group_vars_put_a_whole_group_in_one_queue(tmp_path):
    from orchestrator.inventory import load_inventory

    path = tmp_path / "farm.yaml"
    path.write_text("all:\n  children:\n    lab_a:\n      vars: {tags: {site: lab-a}}\n      hosts:\n"
                    "        rpi-1: {host: 127.0.0.11}\n        rpi-2: {host: 127.0.0.12, tags: {queue: bench-x}}\n")
    boards = {b.name: b for b in load_inventory(path).boards}
    assert board_queue(boards["rpi-1"]) == "lab-a" and board_queue(boards["rpi-2"]) == "bench-x"


def test_procrastinate_gets_a_libpq_connection_string_for_farms_url():
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(conninfo_of("postgresql+psycopg://farm:s3cret@db.lab:5433/farm?sslmode=require"))
    assert info == {"host": "db.lab", "port": "5433", "user": "farm", "password": "s3cret", "dbname": "farm",
                    "sslmode": "require", "connect_timeout": "10"}
    socket = conninfo_to_dict(conninfo_of("postgresql://farm@/farm?host=/run/postgresql"))
    assert socket["host"] == "/run/postgresql" and socket["dbname"] == "farm"


def test_fleet_commands_refuse_sqlite_with_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="needs a PostgreSQL"):
        require_postgresql(str(tmp_path / "farm.db"), "farm submit")
    assert require_postgresql("postgres://u@h/d", "farm submit") == "postgresql+psycopg://u@h/d"


def test_schema_migrations_newer_than_the_applied_procrastinate_are_found():
    assert migrations_between("3.10.0", "3.10.0") == []
    newer = migrations_between("3.0.0", "3.10.0")
    assert newer and all(not name.startswith(("00.", "01.", "02.", "03.00.")) for name in newer)
    assert "03.04.00_01_pre_add_retry_failed_job_procedure.sql" in newer


def test_a_plan_round_trips_and_a_newer_format_is_refused():
    point = BenchSettings().replace(threads=2)
    plan = FleetPlan([PlannedBoard("rpi-1", "lab-a")],
                     [{"model": {"name": "m", "sha256": "a" * 64, "size_bytes": 3, "suffix": ".onnx"},
                       "shapes": [], "batch": 1, "dataset": None}],
                     [{"task": 0, "variant": "fp32", "file": "a" * 64, "details": {}, "build_error": None},
                      {"task": 0, "variant": "fp32", "file": "a" * 64, "details": {}, "build_error": None,
                       "settings": point.record(), "sweep": "threads=2"}])  # a sweep's point: its own settings
    again = FleetPlan.from_json(plan.to_json())
    assert again == plan and again.board_names == ["rpi-1"]
    assert again.cell_keys("run-hash") == [("m", "fp32", "run-hash"), ("m", "fp32", point.settings_hash())]
    with pytest.raises(StoreError, match="format version 99"):
        FleetPlan.from_json(plan.to_json().replace('"version": 1', '"version": 99'))


def test_gate_options_round_trip_and_wait_overrides_only_what_it_was_given():
    options = GateOptions(baseline="tag:rel", fail_on_regression=5.0, junit="/tmp/a.xml", suite_memory_pct=10.0)
    assert GateOptions.from_json(options.to_json()) == options
    over = options.overridden(baseline=None, fail_on_regression=20.0, fail_on_inconclusive=False)
    assert over.baseline == "tag:rel" and over.fail_on_regression == 20.0 and over.junit == "/tmp/a.xml"
    assert GateOptions().comparing is False and GateOptions(fail_on_regression=5).gating is True
    assert GateOptions(suite_latency_pct=5).optional is True  # a suite's gate with no baseline yet is fine


def test_a_plan_names_files_only_below_its_own_folder():
    assert str(safe_relative("images/000001.jpg")) == "images/000001.jpg"
    for bad in ("/etc/passwd", "../x", "a/../../x", "", "a\\b"):
        with pytest.raises(StoreError):
            safe_relative(bad)


def test_a_postprocess_hook_cannot_be_submitted(tmp_path):
    from orchestrator.accuracy.task import TaskDataset
    from orchestrator.models import ModelFile
    from orchestrator.plan import ModelTask

    model = ModelFile("det", Path("det.onnx"), "a" * 64, 1)
    dataset = TaskDataset("detection", tmp_path, "b" * 64, tmp_path / "in.npz", 1, None, postprocess="mine:decode")
    with pytest.raises(BadInputError, match="postprocess=mine:decode.*carries no code"):
        check_submittable([ModelTask(model, dataset)])
    check_submittable([ModelTask(model, dataclasses.replace(dataset, postprocess=None))])


def test_a_fleet_gate_with_an_optional_tag_not_set_at_submit_compares_with_nothing(tmp_path):
    """As in farm bench: `--baseline tag:X --baseline-optional` before anyone set the tag skips the
    cells when the run ends, instead of failing after all the measuring."""
    from orchestrator.errors import ExitStatus
    from orchestrator.fleet.gate import evaluate, resolve_at_submit
    from orchestrator.store import open_store
    from tests.store._support import ok_row, samples

    store = open_store(str(tmp_path / "farm.db"))
    options = GateOptions(baseline="tag:release", baseline_optional=True, fail_on_regression=5.0)
    stored = resolve_at_submit(store, options, ["local"], ["digits_mlp"], ["fp32"])
    run_id = store.create_run({}, {}, "test")
    store.add_result(run_id, ok_row(model="digits_mlp"), samples(1.0))
    store.finish_run(run_id, "finished")
    store.tag_run(run_id, "release")  # set after the submission: not the baseline it was judged against
    gate = evaluate(store, run_id, stored)
    assert gate.exit_status == ExitStatus.OK and [c.outcome for c in gate.cells] == ["skipped"]

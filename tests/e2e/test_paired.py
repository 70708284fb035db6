"""Gating at the defaults: a gated run measures each cell in several processes, and a cell whose
model file changed is measured beside the baseline's own file, interleaved (paired rounds)."""
from __future__ import annotations

import json
from pathlib import Path

from orchestrator.analysis import MIN_PAIRS_TO_TEST
from orchestrator.cli import main
from orchestrator.errors import ExitStatus
from orchestrator.pairing import MAX_PAIRED_ROUNDS
from orchestrator.settings import GATE_REPEATS
from orchestrator.store import open_store
from tests import model_factory

FAST = ["--runs", "10", "--min-seconds", "0", "--warmup", "1", "--threads", "1", "--sample-interval", "0",
        "--no-report"]


def net(tmp_path: Path, folder: str, layers: int) -> Path:
    (tmp_path / folder).mkdir()
    return model_factory.slow_matmul_chain(tmp_path / folder / "net.onnx", size=64, layers=layers)


def test_a_changed_model_is_measured_beside_the_baselines_file_and_judged_on_the_rounds(tmp_path, db_url, capsys):
    base_model, slower = net(tmp_path, "v1", layers=4), net(tmp_path, "v2", layers=12)
    assert main(["bench", *FAST, "--db", db_url, "-m", str(base_model)]) == ExitStatus.OK
    store = open_store(db_url)
    [base] = store.results("latest")

    status = main(["bench", *FAST, "--db", db_url, "-m", str(slower), "--baseline", "latest",
                   "--fail-on-regression", "10"])
    assert status == ExitStatus.REGRESSION
    [new] = store.results("latest")
    export = new["details"]["export"]
    rounds = len(export["latency_ms_paired_base_p50"])
    assert export["paired_base_result_id"] == base["result_id"]
    assert MIN_PAIRS_TO_TEST <= rounds <= MAX_PAIRED_ROUNDS and export["processes"] == rounds
    assert new["details"]["paired"]["baseline_model"] == str(base_model.resolve())
    # the baseline's file ran in this run too: its rounds' medians sit near the stored baseline's
    assert min(export["latency_ms_paired_base_p50"]) < 2 * base["latency_ms_p50"]
    capsys.readouterr()
    assert main(["compare", base["run_id"], new["run_id"], "--json", "--db", db_url]) == ExitStatus.OK
    [cell] = json.loads(capsys.readouterr().out)["cells"]  # farm compare judges the same rounds
    assert cell["verdict"] == "regressed" and "paired: median of" in cell["reason"]


def test_the_same_model_file_is_judged_against_the_stored_baseline_in_several_processes(tmp_path, db_url, capsys):
    model = net(tmp_path, "v1", layers=4)
    assert main(["bench", *FAST, "--db", db_url, "-m", str(model), "--fail-on-regression", "50",
                 "--baseline-optional"]) == ExitStatus.OK
    assert main(["bench", *FAST, "--db", db_url, "-m", str(model), "--baseline", "latest",
                 "--fail-on-regression", "50"]) == ExitStatus.OK
    runs = [open_store(db_url).results(run["run_id"])[0] for run in open_store(db_url).list_runs()]
    for result in runs:  # both gated runs took the gating default: several fresh processes per cell
        assert result["details"]["export"]["processes"] == GATE_REPEATS
    assert runs[0]["details"]["export"]["paired_base_result_id"] is None  # nothing changed: not paired
    out = capsys.readouterr().out
    assert "1 passed" in out


def test_no_paired_and_an_explicit_repeats_are_honoured(tmp_path, db_url):
    base_model, other = net(tmp_path, "v1", layers=4), net(tmp_path, "v2", layers=5)
    assert main(["bench", *FAST, "--db", db_url, "-m", str(base_model)]) == ExitStatus.OK
    assert main(["bench", *FAST, "--db", db_url, "-m", str(other), "--baseline", "latest", "--no-paired",
                 "--repeats", "3"]) in (ExitStatus.OK, ExitStatus.REGRESSION)
    [new] = open_store(db_url).results("latest")
    assert new["details"]["export"]["processes"] == 3 and new["details"]["export"]["paired_base_result_id"] is None


def test_a_shape_sweep_point_is_paired_only_with_the_baseline_result_of_its_own_shapes(tmp_path, db_url, capsys):
    import onnx
    from onnx import numpy_helper

    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    base_model = model_factory.dynamic_image_conv(tmp_path / "v1" / "det.onnx")
    changed = onnx.load(str(base_model))
    [weights] = changed.graph.initializer
    weights.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weights) + 1.0, weights.name))
    new_model = tmp_path / "v2" / "det.onnx"
    onnx.save(changed, str(new_model))
    assert main(["bench", *FAST, "--db", db_url, "-m", str(base_model), "--shape", "x=1x3x32x32"]) == ExitStatus.OK
    store = open_store(db_url)
    [base] = store.results("latest")

    status = main(["bench", *FAST, "--db", db_url, "-m", str(new_model), "--shape", "x=1x3x32x32,1x3x96x96",
                   "--baseline", "latest", "--fail-on-regression", "50"])
    points = {r["details"]["export"]["input_shapes"]: r for r in store.results("latest")}
    assert sorted(points) == ["x=1x3x32x32", "x=1x3x96x96"]
    assert points["x=1x3x32x32"]["details"]["export"]["paired_base_result_id"] == base["result_id"]
    assert points["x=1x3x96x96"]["details"]["export"]["paired_base_result_id"] is None  # no baseline of its shape
    capsys.readouterr()
    assert main(["compare", base["run_id"], "latest", "--json", "--db", db_url]) == ExitStatus.OK
    cells = {cell["sweep"]: cell for cell in json.loads(capsys.readouterr().out)["cells"]}
    assert cells["x=1x3x96x96"]["verdict"] == "only-new"  # never judged against the 32x32 result
    assert cells["x=1x3x32x32"]["latency"] is not None and "paired: median of" in cells["x=1x3x32x32"]["reason"]
    assert status != ExitStatus.REGRESSION or cells["x=1x3x32x32"]["verdict"] == "regressed"


def test_paired_without_anything_to_compare_is_a_usage_error(db_url, digits_model, capsys):
    assert main(["bench", *FAST, "--db", db_url, "-m", str(digits_model), "--paired"]) == ExitStatus.USAGE
    assert "--paired" in capsys.readouterr().err and open_store(db_url).count_results() == 0

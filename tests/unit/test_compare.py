"""compare_runs: cells matched by board × model name × variant, latency AND memory verdicts."""
from __future__ import annotations

import pytest

from orchestrator.compare import compare_runs
from orchestrator.store import open_store
from tests.store._support import failed_row, ok_row, samples


@pytest.fixture
def store(tmp_path):
    opened = open_store(str(tmp_path / "farm.db"))
    yield opened
    opened.close()


def run(store, cells):
    """cells: (board, variant, row kwargs, samples or None) → a finished run id."""
    run_id = store.create_run({}, {}, "test")
    for board, variant, extra, latencies in cells:
        if extra.pop("failed", False):
            store.add_result(run_id, failed_row(board=board, model="yolo", variant=variant, **extra))
        else:
            row = ok_row(board=board, model="yolo", variant=variant, **extra)
            store.add_result(run_id, row, latencies if latencies is not None else [])
    store.finish_run(run_id, "finished")
    return run_id


def one(store, base_cell, new_cell, **kwargs):
    base = run(store, [("b", "fp32", *base_cell)])
    new = run(store, [("b", "fp32", *new_cell)])
    [cell] = compare_runs(store, base, new, **kwargs).cells
    return cell


MB = 1_000_000


def test_a_a_comparison_is_unchanged(store):
    cell = one(store, ({"peak_rss_bytes": 50 * MB}, samples(10.0, 200, seed=1)),
               ({"peak_rss_bytes": 50 * MB}, samples(10.0, 200, seed=2)))
    assert cell.verdict == "unchanged" and cell.latency.verdict == "unchanged" and cell.memory_verdict == "unchanged"
    assert abs(cell.latency.change_pct) < 1.0


def test_slower_latency_is_a_regression(store):
    cell = one(store, ({}, samples(10.0, seed=1)), ({}, samples(12.0, seed=2)))
    assert cell.verdict == "regressed" and cell.latency.change_pct == pytest.approx(20.0, abs=1.5)
    assert "slower by at least 5%" in cell.reason
    assert "a weak verdict: 1 vs 1 process(es)" in cell.reason  # one process per side says so


def test_faster_latency_is_an_improvement(store):
    assert one(store, ({}, samples(10.0, seed=1)), ({}, samples(8.0, seed=2))).verdict == "improved"


def test_memory_growth_alone_is_a_regression_with_its_own_threshold(store):
    base = ({"peak_rss_bytes": 100 * MB}, samples(10.0, seed=1))
    new = ({"peak_rss_bytes": 108 * MB}, samples(10.0, seed=2))
    cell = one(store, base, new)
    assert (cell.latency.verdict, cell.memory_verdict, cell.verdict) == ("unchanged", "regressed", "regressed")
    assert cell.memory_change_pct == pytest.approx(8.0)
    base2 = ({"peak_rss_bytes": 100 * MB}, samples(10.0, seed=1))
    new2 = ({"peak_rss_bytes": 108 * MB}, samples(10.0, seed=2))
    assert one(store, base2, new2, memory_min_effect_pct=10.0).verdict == "unchanged"


def test_memory_drop_with_same_latency_is_an_improvement(store):
    cell = one(store, ({"peak_rss_bytes": 100 * MB}, samples(10.0, seed=1)),
               ({"peak_rss_bytes": 60 * MB}, samples(10.0, seed=2)))
    assert cell.verdict == "improved"


def test_regression_wins_over_improvement(store):
    cell = one(store, ({"peak_rss_bytes": 100 * MB}, samples(10.0, seed=1)),
               ({"peak_rss_bytes": 60 * MB}, samples(12.0, seed=2)))
    assert cell.verdict == "regressed"


def test_noise_is_inconclusive(store):
    cell = one(store, ({}, samples(10.0, 20, seed=1, spread=0.3)), ({}, samples(10.6, 20, seed=2, spread=0.3)))
    assert cell.verdict == "inconclusive"


def test_missing_samples_are_inconclusive(store):
    cell = one(store, ({}, None), ({}, samples(10.0, seed=2)))
    assert cell.verdict == "inconclusive" and cell.latency is None and "no raw samples" in cell.reason


def test_memory_missing_on_both_sides_is_left_out(store):
    cell = one(store, ({"peak_rss_bytes": None}, samples(10.0, seed=1)),
               ({"peak_rss_bytes": None}, samples(10.0, seed=2)))
    assert cell.memory_verdict is None and cell.verdict == "unchanged"


def test_memory_missing_on_one_side_is_inconclusive(store):
    cell = one(store, ({"peak_rss_bytes": None}, samples(10.0, seed=1)),
               ({"peak_rss_bytes": 5 * MB}, samples(10.0, seed=2)))
    assert cell.memory_verdict == "inconclusive" and cell.verdict == "inconclusive"


def test_failed_cells_say_which_run(store):
    cell = one(store, ({}, samples(10.0)), ({"failed": True, "kind": "oom-killed", "message": "killed"}, None))
    assert cell.verdict == "failed" and cell.new_error == "oom-killed: killed" and "new run" in cell.reason
    cell = one(store, ({"failed": True}, None), ({}, samples(10.0)))
    assert cell.verdict == "failed" and "base run" in cell.reason and cell.new_status == "ok"


def test_cells_in_one_run_only_and_counts(store):
    base = run(store, [("a", "fp32", {}, samples(10.0, seed=1)), ("b", "fp32", {}, samples(10.0, seed=2))])
    new = run(store, [("a", "fp32", {}, samples(10.0, seed=3)), ("c", "fp32", {}, samples(10.0, seed=4))])
    result = compare_runs(store, base, new)
    assert [(c.board, c.verdict) for c in result.cells] == [("a", "unchanged"), ("b", "only-base"), ("c", "only-new")]
    counts = result.counts()
    assert (counts["unchanged"], counts["only-base"], counts["only-new"], counts["regressed"]) == (1, 1, 1, 0)
    assert result.as_dict()["counts"] == counts


def test_cells_match_by_model_name_and_flag_new_weights(store):
    cell = one(store, ({"model_sha256": "a" * 64}, samples(10.0, seed=1)),
               ({"model_sha256": "b" * 64}, samples(12.0, seed=2)))
    assert cell.verdict == "regressed" and cell.model_changed and "weights changed" in cell.reason
    assert cell.as_dict()["model_changed"] is True


def test_settings_change_is_noted(store):
    cell = one(store, ({"settings_hash": "s1"}, samples(10.0, seed=1)), ({"settings_hash": "s2"}, samples(10.0, seed=2)))
    assert cell.settings_changed and "different settings" in cell.reason


def test_run_ids_accept_latest_and_tags(store):
    base = run(store, [("a", "fp32", {}, samples(10.0, seed=1))])
    new = run(store, [("a", "fp32", {}, samples(10.0, seed=2))])
    store.tag_run(base, "release")
    result = compare_runs(store, "tag:release", "latest")
    assert (result.base_run_id, result.new_run_id) == (base, new)


def test_a_cell_measured_beside_its_baselines_file_is_judged_on_the_paired_rounds(store):
    base = run(store, [("b", "fp32", {"details": {"export": {"latency_ms_process_p50": [10.0] * 10}}},
                        samples(10.0, seed=1))])
    [base_result] = store.query_results(base, with_result_id=True)
    # the new run re-measured the baseline's file beside the new one: +8 % in every round, while
    # the machine drifted +-20 % from round to round (the stored samples alone cannot tell)
    drift = [1.0, 1.2, 0.8, 1.1, 0.9, 1.25, 0.85, 1.05, 0.95, 1.15]
    paired = {"paired_base_result_id": base_result["result_id"],
              "latency_ms_paired_base_p50": [10.0 * d for d in drift],
              "latency_ms_process_p50": [10.8 * d * (1 + 0.005 * (i % 3)) for i, d in enumerate(drift)]}
    new = run(store, [("b", "fp32", {"details": {"export": paired}}, samples(10.4, seed=2, spread=0.2))])
    [cell] = compare_runs(store, base, new).cells
    assert cell.verdict == "regressed" and "paired: median of 10 interleaved rounds" in cell.reason
    assert cell.latency.base_runs == 10 and cell.latency.change_pct == pytest.approx(8.5, abs=0.6)
    other = run(store, [("b", "fp32", {}, samples(10.0, seed=3))])
    [cell] = compare_runs(store, other, new).cells  # paired with another baseline: not these rounds
    assert "paired" not in cell.reason


def test_the_points_of_a_shape_sweep_are_compared_point_with_point(store):
    """A `--shape` sweep's points share every identity field: each new point still meets the base
    point fed the same shapes, also when another setting changed (no settings hash in common)."""
    def point(shape, settings_hash):
        export = {"input_shapes": f"x={shape}", "sweep": f"x={shape}"}
        return {"settings_hash": settings_hash, "details": {"export": export}}

    base = run(store, [("b", "fp32", point("1x3x32x32", "s1"), samples(10.0, seed=1)),
                       ("b", "fp32", point("1x3x64x48", "s2"), samples(40.0, seed=2))])
    new = run(store, [("b", "fp32", point("1x3x32x32", "t1"), samples(10.0, seed=3)),
                      ("b", "fp32", point("1x3x64x48", "t2"), samples(40.0, seed=4))])
    cells = compare_runs(store, base, new).cells
    assert sorted(cell.sweep for cell in cells) == ["x=1x3x32x32", "x=1x3x64x48"]
    assert [cell.verdict for cell in cells] == ["unchanged", "unchanged"]
    assert all(abs(cell.latency.change_pct) < 2.0 for cell in cells)

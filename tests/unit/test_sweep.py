"""Sweeps (pure logic): lists parsed, one cell per point, each point its own settings hash and label."""
from __future__ import annotations

import pytest

from orchestrator.errors import BadInputError
from orchestrator.models import ModelFile
from orchestrator.plan import Cell, ModelTask
from orchestrator.report.matrix import build_matrices
from orchestrator.report.overview import build_rows
from orchestrator.settings import BenchSettings
from orchestrator.shapes import InputSpec, ResolvedShapes, ShapePoint, resolve_shapes, shape_points
from orchestrator.sweep import Sweep, SweepValueError, expand_cells, parse_int_list, split_shape_values


def test_lists_are_parsed_and_malformed_ones_refused():
    assert parse_int_list("1,2,4") == (1, 2, 4)
    assert parse_int_list(" 8 ") == (8,)
    with pytest.raises(ValueError, match="not a whole number"):
        parse_int_list("1,x")
    with pytest.raises(ValueError, match="separated by commas"):
        parse_int_list("1,,2")


def test_swept_values_are_checked_like_one_setting():
    base = BenchSettings()
    assert Sweep(runtimes=("ort", "ov")).checked(base).runtimes == ("onnxruntime", "openvino")
    with pytest.raises(SweepValueError) as info:
        Sweep(threads=(1, -2)).checked(base)
    assert info.value.field == "threads" and "-2" in str(info.value)
    with pytest.raises(SweepValueError, match="twice"):
        Sweep(batch=(4, 4)).checked(base)
    with pytest.raises(SweepValueError, match="not a runtime"):
        Sweep(runtimes=("onnxruntime", "tflite")).checked(base)


def test_several_values_of_one_input_are_points_never_the_last_one_wins():
    values = split_shape_values(["images=1x3x320x320,1x3x640x640", "mask=1x320x320"])
    assert values == ["images=1x3x320x320", "images=1x3x640x640", "mask=1x320x320"]
    assert shape_points(values) == [("images=1x3x320x320", "mask=1x320x320"),
                                    ("images=1x3x640x640", "mask=1x320x320")]
    assert shape_points(["x=1x8", "x=4x8"]) == [("x=1x8",), ("x=4x8",)]  # --shape given twice for one input
    assert shape_points([]) == [()]
    with pytest.raises(BadInputError, match="given twice"):
        shape_points(["x=1x8", "x=1x8"])
    with pytest.raises(ValueError, match="NAME=1x3x224x224"):
        split_shape_values(["1x3x224x224"])


def test_batch_sets_every_symbolic_leading_dim_and_a_fixed_batch_is_refused():
    inputs = [InputSpec("x", ("batch", 3, 32, 32)), InputSpec("mask", ("batch", 32, 32))]
    eight = resolve_shapes("seg", inputs, [], batch=8)
    assert eight.shapes == ("x=8x3x32x32", "mask=8x32x32") and eight.batch == 8
    given = resolve_shapes("seg", [InputSpec("x", ("N", 3, "H", "W"))], ["x=1x3x64x48"], batch=4)
    assert given.shapes == ("x=4x3x64x48",) and given.batch == 4  # --batch over the shape's leading dim
    with pytest.raises(BadInputError) as info:
        resolve_shapes("yolo", [InputSpec("images", (1, 3, 160, 160))], [], batch=8)
    assert "--batch 8" in str(info.value) and "'images'" in str(info.value) and "[1, 3, 160, 160]" in str(info.value)


def _cells(model: ModelFile, variants=("fp32", "int8-dynamic")) -> list[Cell]:
    return [Cell(model, v, model.path) for v in variants]


def test_each_point_is_a_cell_with_its_own_settings_hash_and_label(tmp_path):
    path = tmp_path / "mlp.onnx"
    path.write_bytes(b"x")
    model = ModelFile(path=path, name="mlp", sha256="0" * 64, size_bytes=1)
    points = tuple(ShapePoint((), batch, ResolvedShapes((f"x={batch}x16",), batch)) for batch in (1, 8))
    task = ModelTask(model, shapes=points[0].resolved.shapes, batch=1, points=points)
    base = BenchSettings(threads=1, batch=1)
    sweep = Sweep(threads=(1, 2), batch=(1, 8))
    cells = expand_cells(_cells(model), [task], base, sweep)
    assert len(cells) == 2 * 2 * 2
    assert [c.variant for c in cells[:2]] == ["fp32", "int8-dynamic"]  # a point's variants side by side
    labels = [c.sweep for c in cells[::2]]
    assert labels == ["batch=1, threads=1", "batch=1, threads=2", "batch=8, threads=1", "batch=8, threads=2"]
    hashes = {c.settings.settings_hash() for c in cells}
    assert len(hashes) == 4  # one per point, shared by the point's variants
    by_label = {c.sweep: c for c in cells if c.variant == "fp32"}
    assert by_label["batch=8, threads=2"].settings.threads == 2
    assert by_label["batch=8, threads=2"].batch == 8 and by_label["batch=8, threads=2"].shapes == ("x=8x16",)
    # nothing swept: the run's own settings (hash unchanged), no label
    plain = expand_cells(_cells(model), [ModelTask(model, shapes=("x=1x16",), batch=1)], base, Sweep(threads=(1,)))
    assert [(c.settings, c.sweep) for c in plain] == [(None, ""), (None, "")]


def test_a_shape_sweep_labels_only_the_input_that_changes(tmp_path):
    path = tmp_path / "det.onnx"
    path.write_bytes(b"x")
    model = ModelFile(path=path, name="det", sha256="0" * 64, size_bytes=1)
    points = tuple(ShapePoint((f"images=1x3x{s}x{s}", "scale=1x2"), None,
                              ResolvedShapes((f"images=1x3x{s}x{s}", "scale=1x2"), 1)) for s in (320, 640))
    cells = expand_cells(_cells(model, ("fp32",)), [ModelTask(model, points=points)], BenchSettings(), Sweep())
    assert [c.sweep for c in cells] == ["images=1x3x320x320", "images=1x3x640x640"]
    assert cells[0].settings.settings_hash() != cells[1].settings.settings_hash()


def _row(rid, variant, p50, sweep, settings_hash):
    return {"result_id": rid, "board": "rpi4", "model": "mlp", "variant": variant, "status": "ok",
            "settings_hash": settings_hash, "runs": 100, "latency_ms_p50": p50, "latency_ms_p99": p50,
            "fps": 1000 / p50, "peak_rss_bytes": 1e6, "model_size_bytes": 1e6, "error_kind": None,
            "error_message": None, "details": {"export": {"sweep": sweep}}}


def test_the_matrix_has_a_row_per_variant_and_point_compared_with_fp32_at_the_same_point():
    results = [_row(1, "fp32", 10.0, "threads=1", "a"), _row(2, "fp32", 5.0, "threads=2", "b"),
               _row(3, "int8-dynamic", 9.0, "threads=1", "a"), _row(4, "int8-dynamic", 4.5, "threads=2", "b")]
    rows = build_rows(results)
    [matrix] = build_matrices(rows)
    assert [r.label for r in matrix.rows] == ["fp32 · threads=1", "fp32 · threads=2", "int8-dynamic · threads=1",
                                              "int8-dynamic · threads=2"]
    references = {r.result_id: r.vs_fp32_cell.base_result_id for r in rows if r.vs_fp32_cell is not None}
    assert references == {3: 1, 4: 2}  # each point's int8 against fp32 at the same point
    assert matrix.rows[3].cells[0].p50_ms == 4.5

"""Input shapes: every dim concrete, chosen by the user or the dataset, never guessed (pure logic)."""
from __future__ import annotations

import pytest

from orchestrator.errors import BadInputError
from orchestrator.shapes import InputSpec, resolve_shapes, split_shape_args

IMAGE = [InputSpec("x", (1, 3, "H", "W"))]


def test_a_symbolic_dim_other_than_the_batch_is_refused_with_the_option_to_pass():
    with pytest.raises(BadInputError) as info:
        resolve_shapes("det", IMAGE, [])
    message = str(info.value)
    assert "input 'x' has dims [1, 3, H, W]" in message and "--shape x=1x3x640x640" in message
    with pytest.raises(BadInputError, match="--shape det:x=1x3x640x640"):
        resolve_shapes("det", IMAGE, [], several_models=True)


def test_given_shapes_are_checked_against_the_fixed_dims():
    assert resolve_shapes("det", IMAGE, ["x=1x3x64x48"]).shapes == ("x=1x3x64x48",)
    with pytest.raises(BadInputError, match="fixes it at 3"):
        resolve_shapes("det", IMAGE, ["x=1x4x64x64"])
    with pytest.raises(BadInputError, match="has 3 dims"):
        resolve_shapes("det", IMAGE, ["x=3x64x64"])
    with pytest.raises(BadInputError, match="no input named 'y'"):
        resolve_shapes("det", IMAGE, ["y=1x3x64x64"])


def test_a_leading_symbolic_dim_is_the_batch_one_unless_given():
    inputs = [InputSpec("x", ("batch", 16))]
    one = resolve_shapes("mlp", inputs, [])
    assert one.shapes == ("x=1x16",) and one.batch == 1
    eight = resolve_shapes("mlp", inputs, ["x=8x16"])
    assert eight.shapes == ("x=8x16",) and eight.batch == 8
    fixed = resolve_shapes("cnn", [InputSpec("x", (4, 3, 32, 32))], [])
    assert fixed.shapes == () and fixed.batch == 4  # nothing to tell the agent; the file says it all
    matrix = resolve_shapes("matmul", [InputSpec("x", (2048, 2048))], [])
    assert matrix.batch == 1  # a fixed matrix input is one call, not 2,048 images


def test_the_dataset_gives_the_first_inputs_shape():
    assert resolve_shapes("det", IMAGE, [], dataset_dims=(3, 32, 32)).shapes == ("x=1x3x32x32",)
    with pytest.raises(BadInputError):  # a dataset of another rank cannot say
        resolve_shapes("det", IMAGE, [], dataset_dims=(32, 32))


def test_shape_options_for_one_model_or_all():
    shared, per_model = split_shape_args(["x=1x3x64x64", "det:images=1x3x640x640", "input:0=1x8"], ["det", "cls"])
    assert shared == ["x=1x3x64x64", "input:0=1x8"]  # 'input' is not a model: a TensorFlow-style input name
    assert per_model == {"det": ["images=1x3x640x640"]}
    with pytest.raises(BadInputError, match="write NAME=1x3x224x224"):
        split_shape_args(["x=1x3xHxW"], ["det"])


def test_a_dim_of_zero_is_refused_as_the_option_is_read():
    from orchestrator.settings import BenchSettings

    for text in ("x=0x3x64x64", "x=1x3x0x64", "x=1x03x64x64"):
        with pytest.raises(ValueError, match="1x3x224x224"):
            BenchSettings(shapes=[text])
    assert BenchSettings(shapes=["x=1x3x10x64"]).shapes == ("x=1x3x10x64",)


def test_the_dataset_dims_come_from_the_arrays_header(tmp_path):
    import numpy as np

    from orchestrator.shapes import _dataset_dims

    path = tmp_path / "set.npz"
    np.savez(path, inputs=np.zeros((7, 3, 8, 5), np.float32), labels=np.zeros(7, np.int64))
    assert _dataset_dims(path) == (3, 8, 5)
    np.savez(tmp_path / "other.npz", labels=np.zeros(7, np.int64))
    assert _dataset_dims(tmp_path / "other.npz") is None and _dataset_dims(None) is None

"""Which runtime, providers and files each job asks the agent for (pure logic, no agent runs)."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.boards import Board
from orchestrator.errors import UsageError
from orchestrator.plan import ModelFiles
from orchestrator.settings import BenchSettings, parse_provider_options
from orchestrator.runtimes import mixes_runtimes, runtime_label
from orchestrator.variants import parse_variant_spec


def option_values(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == option]


def test_openvino_ir_variants_name_their_runtime_and_file_suffix():
    for text in ("OpenVINO-IR", "openvino-ir-fp16"):
        spec = parse_variant_spec(text)
        assert spec.text == text.lower() and spec.kind.runtime == "openvino" and spec.kind.file_suffix == ".xml"
    assert parse_variant_spec("fp16").kind.runtime is None and parse_variant_spec("fp16").kind.file_suffix == ".onnx"
    with pytest.raises(UsageError):
        parse_variant_spec("openvino-ir:0.5")


def test_a_variant_that_needs_another_runtime_drops_the_runs_providers():
    board = Board(name="jetson", providers=("TensorRT", "CUDA"))
    settings = BenchSettings(provider_options='{"CUDA": {"device_id": "0"}}', strict=True)
    onnx_args = settings.runtime_args(board)
    assert option_values(onnx_args, "--runtime") == ["onnxruntime"]
    assert option_values(onnx_args, "--provider") == ["TensorRT", "CUDA"] and "--provider-options" in onnx_args
    ir_args = settings.runtime_args(board, "openvino")
    assert option_values(ir_args, "--runtime") == ["openvino"]
    assert "--provider" not in ir_args and "--provider-options" not in ir_args  # CUDA is no OpenVINO device
    assert "--strict" in ir_args


def test_a_run_on_openvino_keeps_its_devices_for_the_ir_variant():
    board = Board(name="nuc", tags={"runtime": "openvino"})
    settings = BenchSettings(providers=("GPU", "CPU"), provider_options='{"GPU": {"INFERENCE_PRECISION_HINT": "f16"}}')
    args = settings.runtime_args(board, "openvino")
    assert option_values(args, "--runtime") == ["openvino"] and option_values(args, "--provider") == ["GPU", "CPU"]
    assert option_values(args, "--provider-options") == [settings.provider_options]


def test_agent_args_carry_the_models_files_as_given():
    settings = BenchSettings()
    args = settings.bench_args(["--model", "/w/a.xml", "--weights", "/w/b.bin"], Board(name="b"), (), "openvino")
    assert args[:4] == ["--model", "/w/a.xml", "--weights", "/w/b.bin"]
    assert option_values(args, "--runtime") == ["openvino"]


def test_model_files_upload_one_onnx_file_or_an_ir_pair():
    assert ModelFiles(Path("m.onnx")).uploads() == [("--model", Path("m.onnx"), ".onnx")]
    assert ModelFiles(Path("m.xml"), Path("m.bin")).uploads() == [
        ("--model", Path("m.xml"), ".xml"), ("--weights", Path("m.bin"), ".bin")]


def test_runtime_labels_say_the_precision_a_runtime_chose():
    assert runtime_label({"runtime": "openvino", "inference_precision": "bf16"}) == "openvino bf16"
    assert runtime_label({"runtime": "onnxruntime", "inference_precision": None}) == "onnxruntime"
    assert runtime_label({}) is None
    rows = [{"runtime": "onnxruntime"}, {"runtime": "onnxruntime"}, {}]
    assert not mixes_runtimes(rows, runtime_label)
    assert mixes_runtimes(rows + [{"runtime": "openvino", "inference_precision": "f32"}], runtime_label)


def test_provider_options_must_be_an_object_of_objects():
    assert parse_provider_options('{"CPU": {"INFERENCE_PRECISION_HINT": "f32"}}') == {
        "CPU": {"INFERENCE_PRECISION_HINT": "f32"}}
    for text, fragment in [("{CUDA: 1}", "is not JSON"), ('["CUDA"]', "object of objects"),
                           ('{"CUDA": "device_id=0"}', "object of objects"), ("[" * 100_000, "nested too deeply")]:
        with pytest.raises(ValueError, match=fragment):
            parse_provider_options(text)


def test_inventory_check_names_every_runtime_with_its_devices_and_precision():
    from orchestrator.cli.inventory_cmd import runtimes_text

    facts = {"onnxruntime_version": "1.32.0", "onnxruntime_providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
             "openvino_version": "2026.4.1-22982-e213a147257", "openvino_devices": ["CPU", "GPU"],
             "openvino_precision": {"CPU": "bf16", "GPU": None}}
    assert runtimes_text(facts) == "onnxruntime 1.32.0 (CUDA, CPU); openvino 2026.4.1 (CPU bf16, GPU)"
    assert runtimes_text({"openvino_version": "2026.4.1", "openvino_devices": ["CPU"]}) == "openvino 2026.4.1 (CPU)"
    assert runtimes_text({}) == "[red]none[/red]"

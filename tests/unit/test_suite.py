"""Suite files: the shipped example loads; every mistake is reported as FILE:LINE: FIELD ..."""
from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from orchestrator.errors import BadInputError
from orchestrator.models import DEMO_DIR
from orchestrator.settings import MIN_THRESHOLD_PCT, BenchSettings
from orchestrator.suite import load_suite

EXAMPLE = Path(__file__).resolve().parents[1] / "store" / "fixtures" / "nightly.yaml"


@pytest.fixture
def suite_dir(tmp_path) -> Path:
    """A folder with the files the example suite names, relative to it."""
    (tmp_path / "models").mkdir()
    (tmp_path / "data").mkdir()
    shutil.copy(DEMO_DIR / "yolo_timing.onnx", tmp_path / "models")
    shutil.copy(DEMO_DIR / "digits_mlp.onnx", tmp_path / "models")
    shutil.copy(DEMO_DIR / "digits_test.npz", tmp_path / "data")
    (tmp_path / "lab.yaml").write_text("all:\n  hosts:\n    rpi4-01:\n")
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "suite.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path) -> str:
    with pytest.raises(BadInputError) as info:
        load_suite(path)
    return str(info.value)


def test_the_example_suite_loads_with_paths_resolved(suite_dir):
    path = suite_dir / "nightly.yaml"
    shutil.copy(EXAMPLE, path)
    suite = load_suite(path)
    assert [m.model_name for m in suite.models] == ["yolo", "digits_mlp"]
    assert suite.models[0].path == suite_dir / "models" / "yolo_timing.onnx"
    assert suite.models[0].shapes == ["images=1x3x320x320"]
    assert suite.models[1].dataset == suite_dir / "data" / "digits_test.npz"
    assert suite.variants == ["fp32", "fp16", "int8-dynamic", "int8-static", "prune-l1:0.5"]
    assert (suite.boards.inventory, suite.boards.limit, suite.boards.forks) == (suite_dir / "lab.yaml", "rpi4-*,jetson", 4)
    assert suite.baseline == "latest"
    assert (suite.thresholds.latency_pct, suite.thresholds.memory_pct) == (5.0, 10.0)
    settings = suite.bench_settings()
    assert isinstance(settings, BenchSettings)
    assert (settings.min_runs, settings.min_seconds, settings.warmup, settings.threads) == (200, 5.0, 20, 4)
    assert (settings.sample_interval_s, settings.cooldown_s) == (0.1, 10.0)
    assert settings.max_seconds == BenchSettings().max_seconds  # unset: farm's default
    assert suite.bench_settings(model=suite.models[0]).shapes == ("images=1x3x320x320",)


def test_minimal_suite_gets_defaults(suite_dir):
    suite = load_suite(write(suite_dir, "models:\n  - path: models/digits_mlp.onnx\n"))
    assert suite.variants == ["fp32"] and suite.baseline is None
    assert (suite.thresholds.latency_pct, suite.thresholds.memory_pct) == (5.0, 5.0)
    assert suite.bench_settings() == BenchSettings()


def test_a_suite_sets_the_runtime_and_its_providers(suite_dir):
    suite = load_suite(write(suite_dir, """\
        models:
          - path: models/yolo_timing.onnx
        variants: [fp32, openvino-ir]
        settings:
          runtime: openvino
          providers: [GPU, CPU]
          provider_options: {CPU: {INFERENCE_PRECISION_HINT: f32}}
          strict: true
          cpu_arena: false
          repeats: 5
        """))
    settings = suite.bench_settings()
    assert settings.runtime == "openvino" and settings.providers == ("GPU", "CPU")
    assert json.loads(settings.provider_options) == {"CPU": {"INFERENCE_PRECISION_HINT": "f32"}}
    assert settings.strict is True and settings.cpu_arena is False and settings.repeats == 5
    assert suite.variants == ["fp32", "openvino-ir"]


def test_every_problem_with_its_line_and_a_hint(suite_dir):
    path = write(suite_dir, """\
        models:
          - path: models/nope.onnx
            nmae: x
        variants: [fp32, "prune-l1:abc", "two words"]
        boards:
          limt: local
        settings:
          runs: "20"
          min_second: 0
          sample_interval_s: 0.001
        thresholds:
          latency_pct: -5
        baselin: latest
        """)
    text = problems(path)
    assert f"{path}:2: models[0].path file not found: {suite_dir / 'models' / 'nope.onnx'}" in text
    assert f"{path}:3: unknown key 'nmae' in models[0] (did you mean 'name'?)" in text
    assert f"{path}:4: variants has 'prune-l1:abc'" in text
    assert f"{path}:6: unknown key 'limt' in boards (did you mean 'limit'?)" in text
    assert f"{path}:8: settings.runs must be a whole number, got the text '20' (remove the quotes)" in text
    assert f"{path}:9: unknown key 'min_second' in settings (did you mean 'min_seconds'?)" in text
    assert f"{path}:10: settings.sample_interval_s must be 0 (sampling off) or at least 0.01 s" in text
    assert f"{path}:12: thresholds.latency_pct must be at least {MIN_THRESHOLD_PCT:g}" in text
    assert f"{path}:13: unknown key 'baselin' (did you mean 'baseline'?)" in text


@pytest.mark.parametrize("text, expected", [
    ("models: []\n", ":1: models must list at least one entry"),
    ("variants: [fp32]\n", ":1: models is required"),
    ("- a\n- b\n", ":1: a suite must be a mapping"),
    ("models:\n  - path: models/digits_mlp.onnx\nvariants: [fp32, FP32]\n", ":3: variants lists 'FP32' twice"),
    ("models:\n  - path: models/digits_mlp.onnx\nvariants: fp32\n", ":3: variants must be a list, got the text 'fp32' (write [fp32])"),
    ("models:\n  - path: models/digits_mlp.onnx\nsettings:\n  min_seconds: 9\n  max_seconds: 1\n",
     ":3: settings min_seconds must not exceed max_seconds"),
    ("models:\n  - path: models/digits_mlp.onnx\n  - path: models/yolo_timing.onnx\n    name: digits_mlp\n",
     ":3: models[1]: two models are named 'digits_mlp'"),
    ("models:\n  - path: models/digits_mlp.onnx\n    shapes: [input]\n", ":3: models[0].shapes has the text 'input'; write NAME=1x3x224x224"),
    ("models:\n  - path: models/digits_mlp.onnx\nbaseline: 'tag:'\n", ":3: baseline must be latest, tag:NAME or a run id"),
    ("models:\n  - path: models/digits_mlp.onnx\nmodels: []\n", ":3: invalid YAML: duplicate key 'models'"),
    ("models:\n  - path: [unclosed\n", ":3: invalid YAML"),
    ("models:\n  - path: models/digits_mlp.onnx\nx: " + "[" * 300 + "]" * 300 + "\n",
     ":3: invalid YAML: nested more than 100 levels deep"),
    ("models:\n  - path: models/digits_mlp.onnx\nsettings:\n  min_seconds: .inf\n",
     ":4: settings.min_seconds must be a finite number, got the number inf"),
    ("models:\n  - path: models/digits_mlp.onnx\nsettings:\n  threads: 99999999999999999999\n",
     ":4: settings.threads must be at most 1024, got the number 99999999999999999999"),
    ("models:\n  - path: models/digits_mlp.onnx\nthresholds:\n  latency_pct: .nan\n",
     ":4: thresholds.latency_pct must be a finite number, got the number nan"),
    ("models:\n  - path: models/digits_mlp.onnx\nboards:\n  forks: 99999999999999999999\n",
     ":4: boards.forks must be at most 1024"),
    ("models:\n  - path: models/digits_mlp.onnx\nsettings:\n  runtime: tflite\n", ":4: settings.runtime 'tflite' is not a runtime farm knows: use onnxruntime or openvino"),
    ("models:\n  - path: models/digits_mlp.onnx\nsettings:\n  provider_options: {CPU: f32}\n",
     ":4: settings.provider_options must map each provider to {option: value} with plain values"),
])
def test_precise_errors(suite_dir, text, expected):
    path = write(suite_dir, text)
    assert f"{path}{expected}" in problems(path)


def test_missing_or_unreadable_suite(tmp_path):
    with pytest.raises(BadInputError, match="suite file not found"):
        load_suite(tmp_path / "none.yaml")
    with pytest.raises(BadInputError, match="is a folder"):
        load_suite(tmp_path)


def test_absolute_and_home_paths(suite_dir, monkeypatch):
    monkeypatch.setenv("HOME", str(suite_dir))
    path = write(suite_dir / "models", f"models:\n  - path: {suite_dir / 'models' / 'digits_mlp.onnx'}\n"
                                       "  - path: ~/models/yolo_timing.onnx\n")
    suite = load_suite(path)
    assert suite.models[1].path == suite_dir / "models" / "yolo_timing.onnx"


def test_a_suites_sweep_lies_over_the_command_lines_lists(suite_dir):
    from orchestrator.sweep import Sweep

    path = write(suite_dir, """\
        models: [{path: models/digits_mlp.onnx}]
        settings: {runs: 50}
        sweep:
          threads: [2, 1]
          providers: [[CPU], [CPU, CPU]]
        """)
    suite = load_suite(path)
    assert suite.sweep.given() == ["threads", "providers"]
    given = Sweep(threads=(4, 8), batch=(1, 8))  # the command line's lists
    settings, sweep = suite.with_sweep(suite.bench_settings(), given)
    assert (sweep.threads, sweep.batch) == ((2, 1), (1, 8))  # the suite's threads, the command line's batch
    assert sweep.providers == (("CPU",), ("CPU", "CPU"))
    assert (settings.threads, settings.providers, settings.min_runs) == (2, ("CPU",), 50)  # the first point


@pytest.mark.parametrize("sweep, message", [
    ("{threads: [1, 2]}\nsettings: {threads: 4}", "sweep.threads is set in settings: too"),
    ("{threads: [-1, 2]}", "sweep.threads -1:"),
    ("{threads: [2, 2]}", "sweep.threads lists a value twice"),
    ("{runtime: [onnxruntime, no-such-runtime]}", "sweep.runtime no-such-runtime"),
    ("{thread: [1, 2]}", "unknown key 'thread' in sweep (did you mean 'threads'?)"),
    ("{batch: 8}", "sweep.batch must be a list"),
])
def test_a_bad_sweep_is_named_with_its_line(suite_dir, sweep, message):
    path = write(suite_dir, "models: [{path: models/digits_mlp.onnx}]\nvariants: [fp32]\nsweep: " + sweep + "\n")
    text = problems(path)
    assert message in text, text
    assert f"{path}:3: " in text, text


def test_a_suites_one_value_in_settings_lies_over_a_command_line_list(suite_dir):
    from orchestrator.sweep import Sweep

    path = write(suite_dir, """\
        models: [{path: models/digits_mlp.onnx}]
        settings: {threads: 4}
        """)
    suite = load_suite(path)
    settings, sweep = suite.with_sweep(suite.bench_settings(BenchSettings().replace(threads=1)),
                                       Sweep(threads=(1, 2), batch=(1, 8)))
    assert (settings.threads, sweep.threads) == (4, ())  # measured at 4 only, as the settings say
    assert sweep.batch == (1, 8)  # what the suite does not set stays the command line's

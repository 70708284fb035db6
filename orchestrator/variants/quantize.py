"""The int8 variants, made by onnxruntime.quantization.

- `int8-dynamic`: weights stored as int8, activations quantized at run time. Weights are
  UNSIGNED (QUInt8): with onnxruntime's default signed weights, dynamic int8 conv models ran
  5-10x slower than fp32 on x86.
- `int8-static`: QDQ format (QuantizeLinear/DequantizeLinear pairs that every onnxruntime
  provider understands), int8 activations and weights (S8S8, onnxruntime's recommended first
  choice for QDQ), per-channel weight scales where the quantizer supports them (Conv, Gemm,
  MatMul), activation ranges from MinMax calibration over real inputs. The model is
  pre-processed first (onnxruntime's quant_pre_process: shape inference plus basic graph
  optimisation, which folds BatchNormalization into Conv so the folded weights are quantized).
  onnxruntime's quantizer fails on some graphs that a slightly different input avoids, so a
  failed attempt is retried on the unprocessed model, then per-tensor; `actions` lists them.
"""
from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

from ..errors import BadInputError
from .calibration import DEFAULT_MAX_SAMPLES, ArrayCalibrationReader, CalibrationData
from .common import finish_record, load_prepared
from .errors import CalibrationRequiredError, VariantBuildError
from .record import VariantRecord, save_model_atomic
from .spec import VariantSpec

_log = logging.getLogger(__name__)

PER_CHANNEL_MIN_OPSET = 13
"""DequantizeLinear's `axis` (per-channel scales) exists from opset 13; onnxruntime's quantizer
writes it on older models anyway and the result does not load."""

PREPROCESS_TIMEOUT_S = 600.0
"""Upper bound for onnxruntime's quantization pre-processing of one model (seconds)."""


def make_int8_dynamic(
    source: Path, out_path: Path, spec: VariantSpec, calibration: CalibrationData | None = None
) -> VariantRecord:
    """Dynamic int8 quantization with unsigned (QUInt8) weights; `calibration` is not used."""
    model, actions = load_prepared(source, spec)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".int8-dynamic-") as tmp:
        quantized = Path(tmp) / "quantized.onnx"
        try:
            quantize_dynamic(model, quantized, weight_type=QuantType.QUInt8, per_channel=False)
        except Exception as exc:  # noqa: BLE001 - the quantizer raises many unrelated exception types
            raise VariantBuildError(spec.text, f"onnxruntime quantize_dynamic failed: {exc}") from exc
        save_model_atomic(onnx.load(str(quantized)), out_path)
    actions.append(
        "onnxruntime quantize_dynamic: weights uint8 (QUInt8; signed weights ran 5-10x slower on x86), "
        "activations quantized at run time"
    )
    return finish_record(source, out_path, spec, actions)


def make_int8_static(
    source: Path, out_path: Path, spec: VariantSpec, calibration: CalibrationData | None = None
) -> VariantRecord:
    """Static QDQ int8 quantization calibrated on `calibration` (required)."""
    if calibration is None:
        raise CalibrationRequiredError(spec.text)
    calibration = calibration.limited(DEFAULT_MAX_SAMPLES)
    model, actions = load_prepared(source, spec)
    try:
        reader = ArrayCalibrationReader(calibration, model)
    except BadInputError as exc:
        raise VariantBuildError(spec.text, str(exc)) from exc
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".int8-static-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        preprocessed = Path(tmp) / "preprocessed.onnx"
        quantized = Path(tmp) / "quantized.onnx"
        onnx.save(model, str(prepared))
        to_quantize = _preprocess(prepared, preprocessed, actions)
        opset = _default_opset(model)
        per_channel_choices = (True, False) if opset >= PER_CHANNEL_MIN_OPSET else (False,)
        if opset < PER_CHANNEL_MIN_OPSET:
            actions.append(f"per-tensor weight scales: the model is opset {opset}; per-channel QDQ needs "
                           f"opset >= {PER_CHANNEL_MIN_OPSET} (DequantizeLinear's axis)")
        per_channel, used = _quantize_with_fallbacks(spec, [to_quantize, prepared], quantized, reader, actions,
                                                     per_channel_choices)
        save_model_atomic(onnx.load(str(quantized)), out_path)
    actions.append(
        f"onnxruntime quantize_static: QDQ format, int8 activations and weights (S8S8), "
        f"{'per-channel' if per_channel else 'per-tensor (per-channel failed)'} weight scales, "
        f"on the {'pre-processed' if used == preprocessed else 'unprocessed'} model, "
        f"MinMax calibration on {calibration.sample_count} sample(s) from {calibration.origin}"
    )
    return finish_record(source, out_path, spec, actions)


def _preprocess(prepared: Path, preprocessed: Path, actions: list[str]) -> Path:
    """Run onnxruntime's quantization pre-processing; without symbolic shape inference when that
    fails (ML-domain ops such as skl2onnx's Scaler stop it); the unprocessed model when both fail.

    It runs as a child process in the temp folder because a failed symbolic shape inference
    dumps `sym_shape_infer_temp.onnx` (and possibly external data) into the working directory.
    """
    failures: list[str] = []
    for skip_symbolic in (False, True):
        argv = [sys.executable, "-m", "onnxruntime.quantization.preprocess",
                "--input", str(prepared), "--output", str(preprocessed)]
        if skip_symbolic:
            argv += ["--skip_symbolic_shape", "True"]  # the tool parses any non-empty value as true
        try:
            done = subprocess.run(
                argv, cwd=prepared.parent, capture_output=True, text=True, timeout=PREPROCESS_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            failures.append(f"timed out after {PREPROCESS_TIMEOUT_S:.0f} s")
            continue
        if done.returncode != 0 or not preprocessed.is_file():
            last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            failures.append(last)
            _log.info("quant_pre_process(skip_symbolic_shape=%s) failed: %s", skip_symbolic, done.stderr)
            continue
        how = "ONNX shape inference (symbolic shape inference failed)" if skip_symbolic else "symbolic shape inference"
        actions.append(
            f"onnxruntime quant_pre_process: {how} + basic graph optimisation "
            "(e.g. BatchNormalization folded into Conv)"
        )
        return preprocessed
    actions.append(f"quant_pre_process skipped (it failed: {'; '.join(failures)})")
    return prepared


def _quantize_with_fallbacks(
    spec: VariantSpec, models: list[Path], out_path: Path, reader: ArrayCalibrationReader, actions: list[str],
    per_channel_choices: tuple[bool, ...] = (True, False),
) -> tuple[bool, Path]:
    """quantize_static per-channel on the pre-processed model, else on the unprocessed one, else
    per-tensor; the quantizer has bugs on some graphs that one of the others avoids. Returns
    (whether per-channel scales were used, the model quantized); every failed attempt is recorded in `actions`."""
    failures: list[str] = []
    candidates = list(dict.fromkeys(models))
    for per_channel in per_channel_choices:
        for model_path in candidates:
            reader.rewind()
            try:
                _quantize_static(model_path, out_path, reader, per_channel=per_channel)
                _check_loads(out_path)
            except Exception as exc:  # noqa: BLE001 - the quantizer raises many unrelated exception types
                scales = "per-channel" if per_channel else "per-tensor"
                failures.append(f"{scales} on {model_path.stem}: {type(exc).__name__}: {exc}")
                _log.info("quantize_static attempt failed: %s", failures[-1])
                continue
            if failures:
                actions.append("quantize_static attempts that failed first: " + "; ".join(failures))
            return per_channel, model_path
    raise VariantBuildError(spec.text, "onnxruntime quantize_static failed: " + "; ".join(failures))


def _default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _check_loads(path: Path) -> None:
    """onnxruntime must load what the quantizer wrote: on opset < 13 models it writes per-channel
    DequantizeLinear nodes with an `axis` attribute that only opset 13 has (an invalid model)."""
    import onnxruntime

    onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _quantize_static(model_path: Path, out_path: Path, reader: ArrayCalibrationReader, per_channel: bool) -> None:
    quantize_static(
        str(model_path),
        str(out_path),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )

"""The `fp32` variant: the original model file, byte for byte (the reference for all others)."""
from __future__ import annotations

import shutil
from pathlib import Path

from orchestrator.atomic import atomic_path

from .calibration import CalibrationData
from .common import finish_record, load_model
from .record import VariantRecord
from .spec import VariantSpec


def make_fp32(
    source: Path, out_path: Path, spec: VariantSpec, calibration: CalibrationData | None = None
) -> VariantRecord:
    """Copy the original unchanged (Constant-node weights included), after checking it loads."""
    load_model(source, spec)
    with atomic_path(out_path) as tmp:
        shutil.copyfile(source, tmp)
    return finish_record(
        source, out_path, spec, ["copied the original model unchanged (the fp32 reference)"], measure_fidelity=False
    )

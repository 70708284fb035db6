"""The `fp32` variant: the original model file, byte for byte (the reference for all others)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .calibration import CalibrationData
from .common import finish_record, load_model
from .record import VariantRecord
from .spec import VariantSpec


def make_fp32(
    source: Path, out_path: Path, spec: VariantSpec, calibration: CalibrationData | None = None
) -> VariantRecord:
    """Copy the original unchanged (Constant-node weights included), after checking it loads."""
    load_model(source, spec)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return finish_record(
        source, out_path, spec, ["copied the original model unchanged (the fp32 reference)"], measure_fidelity=False
    )

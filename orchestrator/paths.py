"""Where farm keeps its per-user files (XDG base directories)."""
from __future__ import annotations

import os
from pathlib import Path


def farm_cache_dir() -> Path:
    """$XDG_CACHE_HOME/farm, else ~/.cache/farm: variants, datasets, wheels, the agent bundle."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "farm"


def farm_data_dir() -> Path:
    """$XDG_DATA_HOME/farm, else ~/.local/share/farm: the default results database."""
    base = os.environ.get("XDG_DATA_HOME", "").strip() or str(Path.home() / ".local" / "share")
    return Path(base) / "farm"

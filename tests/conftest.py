"""Shared fixtures: every test gets its own database, cache and reports folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.models import DEMO_DIR

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Keep farm's per-user files (default DB, local board workdir) inside the test's tmp dir."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FARM_DB", raising=False)
    monkeypatch.delenv("FARM_INVENTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'farm.db'}"


@pytest.fixture
def digits_model() -> Path:
    return DEMO_DIR / "digits_mlp.onnx"


@pytest.fixture
def yolo_model() -> Path:
    return DEMO_DIR / "yolo_timing.onnx"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")

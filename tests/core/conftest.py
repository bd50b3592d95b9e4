"""Shared setup for tests/core: isolated environment, helper modules on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
for _p in (_HERE, _HERE.parent):  # tests/core (coreutil) and tests/ (reference)
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

_SNAPDIR_ENV = ("SNAPDIR_CACHE_DIR", "SNAPDIR_NO_STAT_CACHE", "SNAPDIR_MANIFEST_CONTEXT",
                "SNAPDIR_HASH_THREADS", "SNAPDIR_DATA_DIR", "SNAPDIR_STORE", "XDG_CACHE_HOME",
                "XDG_DATA_HOME")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory,
                  monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache dir; nothing touches the real home."""
    for var in _SNAPDIR_ENV:
        monkeypatch.delenv(var, raising=False)
    base = tmp_path_factory.mktemp("home")
    cache = base / "cache"
    monkeypatch.setenv("SNAPDIR_CACHE_DIR", str(cache))
    monkeypatch.setenv("SNAPDIR_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "xdg-cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "xdg-data"))
    monkeypatch.setenv("HOME", str(base))
    return cache


@pytest.fixture
def cache_dir(_isolated_env: Path) -> Path:
    """The SNAPDIR_CACHE_DIR of this test."""
    return _isolated_env

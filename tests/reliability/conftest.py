"""Fixtures for the reliability tests (faults, crashes, concurrency, hostile input).

The ``cli`` fixture is the one of ``tests/transfer/conftest.py`` (loaded by path in
``relutil``: test directories are not packages); the fault proxy is ``tests/faultproxy.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from relutil import FaultProxy, _transfer

cli = _transfer.cli  # the fixture itself, re-exported for this directory


@pytest.fixture
def faultproxy(seaweedfs) -> Iterator[FaultProxy]:
    """A 5% fault proxy in front of the session's SeaweedFS (seeded)."""
    proxy = FaultProxy(seaweedfs.endpoint, rate=0.05, seed=20240611).start()
    try:
        yield proxy
    finally:
        proxy.stop()

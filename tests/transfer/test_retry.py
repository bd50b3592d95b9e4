"""The retry loop itself: attempts and backoff."""

from __future__ import annotations

import pytest

from snapdir.errors import Throttled
from snapdir.transfer.config import TransferConfig
from snapdir.transfer.retry import retrying


@pytest.mark.anyio
async def test_many_attempts_keep_the_backoff_capped() -> None:
    """SNAPDIR_RETRIES has no maximum: past ~1024 attempts the exponential backoff once
    overflowed a float (an internal error after ~40 minutes of a server's outage)."""
    calls = [0]

    async def flaky() -> str:
        calls[0] += 1
        if calls[0] < 1100:
            raise Throttled("503 slow down")
        return "ok"

    cfg = TransferConfig(jobs=1, retries=2000, backoff_cap=0.0)
    assert await retrying(flaky, cfg) == "ok"
    assert calls[0] == 1100

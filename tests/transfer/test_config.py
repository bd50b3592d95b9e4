"""TransferConfig refuses values the transfers cannot use, with one usage line."""

from __future__ import annotations

from typing import Any

import pytest

from snapdir.errors import UsageError
from snapdir.transfer.config import TransferConfig

MiB = 1024 * 1024


@pytest.mark.parametrize(("field", "value", "says"), [
    # a float part size was accepted, then failed the push to S3 as 'cannot reach' the
    # store (after every retry) and to a file store with a bare TypeError
    ("part_size", 8.5 * MiB, "part_size=8912896.0 is not an integer"),
    ("part_size", "8388608", "part_size='8388608' is not an integer"),
    ("range_size", None, "range_size=None is not an integer"),
    ("jobs", 4.0, "jobs=4.0 is not an integer"),
    ("part_size", 4 * MiB, "at least 5242880 bytes"),
    # S3 refuses parts over 5 GiB, and each part is read into memory whole
    ("part_size", 5 * 1024 * MiB + 1, "at most 5368709120 bytes"),
])
def test_bad_values_are_usage_errors(field: str, value: Any, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        TransferConfig(**{field: value})


def test_limits_themselves_are_accepted() -> None:
    assert TransferConfig(part_size=5 * MiB).part_size == 5 * MiB
    assert TransferConfig(part_size=5 * 1024 * MiB).part_size == 5 * 1024 * MiB

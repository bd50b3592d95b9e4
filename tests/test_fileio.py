"""Writes of received bytes go to disk whole, in pieces, at the right place."""

from __future__ import annotations

import os
from pathlib import Path

from snapdir.fileio import WRITE_PIECE, pwrite_all, write_all


def test_pwrite_all_writes_every_byte_at_its_offset(tmp_path: Path) -> None:
    data = os.urandom(3 * WRITE_PIECE + 12345)
    head = b"h" * 4099  # an unaligned start, as received chunks have
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        os.ftruncate(fd, len(head) + len(data))
        assert pwrite_all(fd, memoryview(data), len(head)) == len(head) + len(data)
        assert pwrite_all(fd, head, 0) == len(head)
    finally:
        os.close(fd)
    assert path.read_bytes() == head + data


def test_write_all_appends_large_and_empty_chunks(tmp_path: Path) -> None:
    chunks = [os.urandom(WRITE_PIECE * 2 + 1), b"", memoryview(os.urandom(100))]
    path = tmp_path / "f"
    with open(path, "wb", buffering=0) as fh:
        for c in chunks:
            write_all(fh.fileno(), c)
    assert path.read_bytes() == b"".join(bytes(c) for c in chunks)

"""Writes of received bytes go to disk whole, in pieces, at the right place; large ones
past the page cache where the filesystem allows."""

from __future__ import annotations

import fcntl
import mmap
import os
from pathlib import Path

import pytest

from snapdir.fileio import (
    DIRECT_ALIGN,
    WRITE_PIECE,
    enable_direct,
    pwrite_all,
    pwrite_direct,
    write_all,
)


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


def _is_direct(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_DIRECT", 0))


def test_direct_writes_pad_the_last_block_and_truncate_back(tmp_path: Path) -> None:
    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT on this platform")
    size = 2 * DIRECT_ALIGN + 1000  # the last range ends mid-block
    data = os.urandom(size)
    buf = mmap.mmap(-1, 3 * DIRECT_ALIGN)  # page-aligned, like RangeBuffers'
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        if not enable_direct(fd):
            pytest.skip(f"{tmp_path} has no O_DIRECT")
        assert _is_direct(fd)
        with memoryview(buf) as view:
            view[:size - DIRECT_ALIGN] = data[DIRECT_ALIGN:]
            assert pwrite_direct(fd, view, size - DIRECT_ALIGN, DIRECT_ALIGN)
            view[:DIRECT_ALIGN] = data[:DIRECT_ALIGN]
            assert pwrite_direct(fd, view, DIRECT_ALIGN, 0)
        assert os.fstat(fd).st_size == 3 * DIRECT_ALIGN  # padded
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    assert path.read_bytes() == data


def test_a_refused_direct_write_leaves_plain_writes(tmp_path: Path) -> None:
    """A buffer the device cannot take directly (misaligned in memory): the kernel says
    EINVAL, nothing is lost, and the file goes back to plain writes."""
    if not hasattr(os, "O_DIRECT"):
        pytest.skip("no O_DIRECT on this platform")
    raw = mmap.mmap(-1, 2 * DIRECT_ALIGN)
    path = tmp_path / "f"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        if not enable_direct(fd):
            pytest.skip(f"{tmp_path} has no O_DIRECT")
        with memoryview(raw) as view:
            odd = view[1:1 + DIRECT_ALIGN]  # one byte past a page boundary
            assert not pwrite_direct(fd, odd, DIRECT_ALIGN, 0)
            odd.release()
        assert not _is_direct(fd)
        pwrite_all(fd, b"plain", 0)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"plain"

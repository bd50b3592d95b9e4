"""Writing received bytes to disk (sync, called from worker threads).

Every write of new file data goes through here, in pieces of at most ``WRITE_PIECE``
bytes. The page cache sizes a new file's folios by the write that creates them, and large
folios are costly where the kernel has to find fresh high-order memory for them. Measured
on this machine (Firecracker VM, Linux 6.18, ext4, 12 s idle before each run so freed
memory has gone back to the host), 2 GiB of new file data written from a hot buffer:

    write size      32 KiB     128 KiB    256 KiB    512 KiB    1 MiB
    system time     0.6-0.9 s  0.5-0.6 s  0.5-0.7 s  1.5-2.1 s  3.6-4.7 s

(perf: the extra time is all in ``copy_folio_from_iter_atomic``, the first touch of the new
folios.) Received buffers are 1-8 MiB; writing them whole made a 2 GiB pull spend
several seconds more of system time than s5cmd, which writes 32 KiB at a time. The extra
syscalls cost ~10 µs per 256 KiB.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stores.base import Chunk

#: Largest single write (see the table above).
WRITE_PIECE = 256 * 1024


def pwrite_all(fd: int, data: Chunk, offset: int) -> int:
    """Write all of ``data`` at ``offset`` of ``fd``; returns the offset after it."""
    view = memoryview(data)
    try:
        pos = 0
        while pos < len(view):
            n = os.pwrite(fd, view[pos:pos + WRITE_PIECE], offset + pos)
            if n == 0:  # a regular file never does this; never spin if one does
                raise OSError(f"write of {len(view) - pos} bytes at {offset + pos} wrote none")
            pos += n
    finally:
        view.release()
    return offset + pos


def write_all(fd: int, data: Chunk) -> None:
    """Write all of ``data`` at the current position of ``fd``."""
    view = memoryview(data)
    try:
        pos = 0
        while pos < len(view):
            n = os.write(fd, view[pos:pos + WRITE_PIECE])
            if n == 0:
                raise OSError(f"write of {len(view) - pos} bytes wrote none")
            pos += n
    finally:
        view.release()

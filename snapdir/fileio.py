"""Writing received bytes to disk (sync, called from worker threads).

Every write of new file data goes through here, in pieces of at most ``WRITE_PIECE``
bytes. The page cache sizes a new file's folios by the write that creates them, and large
folios are costly where the kernel has to find fresh high-order memory for them. Measured
on this machine (Firecracker VM, Linux 6.18, ext4, 12 s idle before each run so freed
memory has gone back to the host), 2 GiB of new file data written from a hot buffer:

    write size      32 KiB     128 KiB    256 KiB    512 KiB    1 MiB
    system time     0.6-0.9 s  0.5-0.6 s  0.5-0.7 s  1.5-2.1 s  3.6-4.7 s

and on a later day (8 s idle, `dd` from /dev/zero, two or three runs each):

    write size      4 KiB      16 KiB     32 KiB     64 KiB     128 KiB    256 KiB
    system time     2.0-2.7 s  1.0-1.3 s  0.8-1.1 s  0.7-1.0 s  0.7 s      1.9-2.2 s

(perf: the extra time is all in ``copy_folio_from_iter_atomic``, the first touch of the new
folios.) Inside a 2 GiB pull, where several threads write at once, the cliff came lower:
``copy_folio_from_iter_atomic`` took 0.33-0.47 s with 32 KiB writes, 0.9-1.3 s with
64 KiB and 2.1 s with 256 KiB (perf, three runs each). So writes go in 32 KiB pieces, as
s5cmd's do; the extra syscalls cost ~2 µs per 32 KiB.

The ranges of one large download are written into one file by several threads, and the
kernel takes the file's lock (``i_rwsem``) for each buffered write. A writer that finds it
taken spins while the holder runs on the other CPU: ``rwsem_spin_on_owner`` was 5-6 % of a
2 GiB pull's CPU (perf, two runs), 18 % in a run where the copies into new pages were slow,
CPU taken from the server on the same two CPUs. So the ranges of one file take a lock of
ours around each write (callers of ``pwrite_all`` hold it): a waiting thread sleeps instead,
and the spinning is gone (0.02 %). Same host, 7 runs each, alternating: system time
2.4-3.9 s against 3.0-6.9 s.

Large downloads can skip the page cache altogether where the filesystem allows
(``SNAPDIR_DIRECT_IO=1``, ``O_DIRECT``, see ``enable_direct``): 2 GiB written fresh costs
0.2 s of system time that way, and the file does not push a training job's working set out
of memory, but the pull then waits for the disk. With 256 KiB writes through the page
cache it was the faster choice here (a 2 GiB pull spent 3.5-6 s of system time filling
new pages); with 32 KiB writes the page cache is faster on this machine's ~400 MB/s disk
(2 GiB pull 4.0-4.4 s against 5.6-7.8 s; 4 x 256 MiB 1.7-2.1 s against 2.5-3.2 s), so it
is the default.
"""

from __future__ import annotations

import errno
import fcntl
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stores.base import Chunk

#: Largest single write (see the tables above).
WRITE_PIECE = 32 * 1024
#: ``O_DIRECT`` wants buffer addresses, file offsets and lengths aligned to the device's
#: logical block (512 or 4096 bytes); page alignment satisfies them all.
DIRECT_ALIGN = 4096
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)


def pwrite_all(fd: int, data: Chunk, offset: int, piece: int = WRITE_PIECE) -> int:
    """Write all of ``data`` at ``offset`` of ``fd``; returns the offset after it."""
    view = memoryview(data)
    try:
        pos = 0
        while pos < len(view):
            n = os.pwrite(fd, view[pos:pos + piece], offset + pos)
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


def running(pid: int) -> bool:
    """Whether process ``pid`` is alive (another user's too): the writer named in a
    temp file's name, still at work, or gone and its temp file a leftover."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    return True


def enable_direct(fd: int) -> bool:
    """Switch ``fd`` to writes that bypass the page cache (``O_DIRECT``); False where the
    platform or the filesystem has no such thing (tmpfs, many FUSE filesystems)."""
    if not _O_DIRECT:
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | _O_DIRECT)
    except OSError:
        return False
    return True


def disable_direct(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_O_DIRECT)


def pwrite_direct(fd: int, buf: memoryview, length: int, offset: int) -> bool:
    """Write ``buf[:length]`` at ``offset`` (a multiple of ``DIRECT_ALIGN``) of an
    ``O_DIRECT`` ``fd``; ``buf`` is page-aligned and at least ``length`` rounded up to
    ``DIRECT_ALIGN`` long. The padding past ``length`` lands beyond the data: the caller
    truncates the file to its size once every range is in. False if the filesystem
    refuses the alignment after all: ``fd`` is back to plain writes and the caller writes
    the range again that way.
    """
    padded = -(-length // DIRECT_ALIGN) * DIRECT_ALIGN
    try:
        pwrite_all(fd, buf[:padded], offset, piece=padded)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        disable_direct(fd)
        return False
    return True

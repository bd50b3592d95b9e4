"""File hashing (sync, called from worker threads).

Small files are read whole with one ``read`` (they are small); large files go through
BLAKE3's own multi-threading over a sliding memory-map window (16 MiB), so they hash as fast
as a whole-file map while resident memory stays flat whatever the file size.
Every file is checked against the stat the walk saw, before and after reading: a file that
changed while it was read is an error, never a silently wrong checksum.
"""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Callable

import blake3

from .core.manifest import Hasher
from .errors import FileChanged, SourceError

#: Files at least this large are hashed with BLAKE3's multi-threaded mmap path.
LARGE_FILE = 8 * 1024 * 1024
#: Bytes mapped at a time on that path (a multiple of every page size); measured on a
#: 2 GiB file: as fast as mapping it whole (0.40 s), 27 MB peak RSS instead of 2 GB.
_WINDOW = 16 * 1024 * 1024
_CHUNK = 4 * 1024 * 1024
_FLAGS = os.O_RDONLY | os.O_CLOEXEC
# preadv2(RWF_NOWAIT): read only what the page cache holds (Linux >= 4.14); elsewhere the
# nowait path is never taken (see snapshot.py).
_NOWAIT: int = getattr(os, "RWF_NOWAIT", 0)
HAS_NOWAIT = bool(_NOWAIT) and hasattr(os, "preadv")
#: what filesystems that cannot honour RWF_NOWAIT answer (tmpfs and procfs: EOPNOTSUPP)
_NOWAIT_REFUSED = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})


def _changed(path: str) -> FileChanged:
    return FileChanged(
        f"{path}: the file changed while it was being hashed; re-run on a quiescent tree", path)


def _open_error(path: str, exc: OSError) -> SourceError:
    if isinstance(exc, PermissionError):
        return SourceError(f"{path}: permission denied; make it readable or --exclude it", path)
    if isinstance(exc, FileNotFoundError):
        return FileChanged(f"{path}: the file vanished while the tree was read; re-run on a "
                           "quiescent tree", path)
    return SourceError(f"{path}: cannot read it ({exc.strerror})", path)


def threaded_blake3(hasher: Hasher) -> blake3.blake3:
    """A BLAKE3 that spreads large updates over every core (keyed with the manifest
    context, if any)."""
    if hasher.context is not None:
        return blake3.blake3(max_threads=blake3.blake3.AUTO, derive_key_context=hasher.context)
    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def hash_range(fd: int, start: int, end: int, h: blake3.blake3,
               check: Callable[[], None] | None = None,
               on_bytes: Callable[[int], None] | None = None) -> int:
    """Feed bytes ``[start, end)`` of ``fd`` to ``h``; returns how many there were (fewer
    if the file is shorter).

    Through map windows of at most 16 MiB, each released before the next, so resident
    memory stays flat whatever the size; with plain reads where the file cannot be mapped
    (some FUSE and network filesystems). ``check`` runs before each window: a file
    truncated under a live map faults on access (SIGBUS), so callers hashing files that
    others may change pass a size check there. ``on_bytes(n)`` hears of each window hashed
    (progress).
    """
    gran = mmap.ALLOCATIONGRANULARITY
    done = 0
    mapped = True
    while start < end:
        if check is not None:
            check()
        base = start - start % gran
        length = min(end, base + _WINDOW) - base
        if mapped:
            try:
                window = mmap.mmap(fd, length, prot=mmap.PROT_READ, offset=base)
            except OSError:
                mapped = False
            else:
                with window:
                    view = memoryview(window)
                    try:
                        h.update(view[start - base:])
                    finally:
                        view.release()
        if not mapped:
            data = os.pread(fd, base + length - start, start)
            h.update(data)
            if len(data) < base + length - start:
                return done + len(data)
        done += base + length - start
        if on_bytes is not None:
            on_bytes(base + length - start)
        start = base + length
    return done


def hash_file(path: str, size: int, mtime_ns: int, hasher: Hasher, *,
              nowait: bool = False, on_bytes: Callable[[int], None] | None = None
              ) -> str | None:
    """Checksum of ``path``, which the walk saw with ``size`` and ``mtime_ns``.

    ``on_bytes`` hears of a large BLAKE3 file's bytes as they are hashed (progress).

    With ``nowait`` (small files only), return None at once, having hashed nothing, when
    the bytes are not all in the page cache (``RWF_NOWAIT``): the caller then hands the file
    to a thread that may block on the disk.
    """
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        raise _open_error(path, exc) from None
    try:
        if size >= LARGE_FILE and hasher.algo == "b3sum":
            st = os.fstat(fd)
            if st.st_size != size or st.st_mtime_ns != mtime_ns:
                raise _changed(path)

            def same_size() -> None:
                if os.fstat(fd).st_size != size:
                    raise _changed(path)

            h = threaded_blake3(hasher)
            got = hash_range(fd, 0, size, h, same_size, on_bytes)
        elif size < _CHUNK:
            # One read of size + 1 bytes: a file that grew reads longer, one that shrank
            # reads shorter; fstat afterwards catches any other change since the walk.
            if nowait:
                buf = bytearray(size + 1)
                try:
                    got = os.preadv(fd, (buf,), 0, _NOWAIT)
                except BlockingIOError:
                    return None
                except OSError as exc:
                    if exc.errno in _NOWAIT_REFUSED:  # tmpfs, procfs, some FUSE mounts
                        return None  # cannot tell without blocking: the blocking path reads it
                    raise
                if got < size:
                    return None  # partly cached (or shrunk): let the blocking path decide
                data: bytes | memoryview = memoryview(buf)[:got]
            else:
                data = os.read(fd, size + 1)
                got = len(data)
            if got == size:
                after = os.fstat(fd)
                if after.st_size == size and after.st_mtime_ns == mtime_ns:
                    return hasher.hex(data)  # type: ignore[arg-type]  # any buffer
            raise _changed(path)
        else:
            h = hasher.new()
            got = 0
            while True:
                chunk = os.read(fd, min(_CHUNK, size - got + 1))
                if not chunk:
                    break
                got += len(chunk)
                h.update(chunk)
                if got > size:
                    break
        after = os.fstat(fd)
        if got != size or after.st_size != size or after.st_mtime_ns != mtime_ns:
            raise _changed(path)
        return str(h.hexdigest())
    except OSError as exc:
        raise _open_error(path, exc) from None
    finally:
        os.close(fd)


def hash_bytes(data: bytes) -> str:
    return str(blake3.blake3(data).hexdigest())

"""File hashing (sync, called from worker threads).

Small files are read whole with one ``read`` (they are small); large files go through
BLAKE3's own multi-threading over a memory map, so memory does not grow with file size.
Every file is checked against the stat the walk saw, before and after reading: a file that
changed while it was read is an error, never a silently wrong checksum.
"""

from __future__ import annotations

import os

import blake3

from .core.manifest import Hasher
from .errors import FileChanged, SourceError

#: Files at least this large are hashed with BLAKE3's multi-threaded mmap path.
LARGE_FILE = 8 * 1024 * 1024
_CHUNK = 4 * 1024 * 1024


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


def hash_file(path: str, size: int, mtime_ns: int, hasher: Hasher) -> str:
    """Checksum of ``path``, which the walk saw with ``size`` and ``mtime_ns``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise _open_error(path, exc) from None
    try:
        st = os.fstat(fd)
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            raise _changed(path)
        if size >= LARGE_FILE and hasher.algo == "b3sum":
            h = blake3.blake3(max_threads=blake3.blake3.AUTO, derive_key_context=hasher.context) \
                if hasher.context is not None else blake3.blake3(max_threads=blake3.blake3.AUTO)
            h.update_mmap(path)
            got = size  # mmap maps exactly the size at open; re-checked below
        else:
            h = hasher.new()
            got = 0
            while True:
                data = os.read(fd, min(_CHUNK, max(size - got + 1, 1)))
                if not data:
                    break
                got += len(data)
                h.update(data)
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

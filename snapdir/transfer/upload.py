"""Sending one object: the bytes are hashed as they are read, and must match the digest the
manifest gave them; otherwise the file changed since it was hashed and nothing is written."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..core.manifest import Hasher
from ..errors import FileChanged, SourceError
from ..stores.base import Store, object_key
from .batch import Batcher
from .config import TransferConfig
from .threads import run_sync

#: Files up to this size are read in batches (one worker-thread hop for many files).
SMALL = 1024 * 1024


def _changed(path: str) -> FileChanged:
    return FileChanged(f"{path}: the file changed since it was hashed; nothing was pushed for "
                       "it and no manifest was written; re-run on a quiescent tree", path)


def _read_error(path: str, exc: OSError) -> SourceError:
    return SourceError(f"{path}: cannot read it ({exc.strerror}); nothing was pushed for it",
                       path)


def read_verified(path: str, size: int, digest: str, hasher: Hasher) -> bytes:
    """The whole (small) file, checked against ``digest``."""
    try:
        with open(path, "rb", buffering=0) as fh:
            data = fh.read(size + 1)
    except OSError as exc:
        raise _read_error(path, exc) from None
    if len(data) != size or hasher.hex(data) != digest:
        raise _changed(path)
    return data


def _read_hashed(fd: int, want: int, offset: int, h: Any) -> bytes:
    """Read ``want`` bytes at ``offset`` and hash them if all came: one thread hop."""
    data = os.pread(fd, want, offset)
    if len(data) == want:
        h.update(data)
    return data


async def verified_chunks(path: str, size: int, digest: str, hasher: Hasher, chunk: int,
                          on_bytes: Callable[[int], None] | None = None
                          ) -> AsyncIterator[bytes]:
    """Chunks of a large file; raises before the last chunk if the bytes do not match.
    ``on_bytes(n)`` is told of each chunk as it is handed on (progress)."""
    h = hasher.new()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise _read_error(path, exc) from None
    try:
        offset = 0
        while offset < size:
            want = min(chunk, size - offset)
            data = await run_sync(_read_hashed, fd, want, offset, h)
            if len(data) != want:
                raise _changed(path)
            offset += want
            if offset >= size and (h.hexdigest() != digest or os.fstat(fd).st_size != size):
                raise _changed(path)
            if on_bytes is not None:
                on_bytes(want)
            yield data
    finally:
        os.close(fd)


async def upload_object(store: Store, digest: str, path: str, size: int, hasher: Hasher,
                        config: TransferConfig, reader: Batcher[bytes] | None = None, *,
                        on_bytes: Callable[[int], None] | None = None) -> None:
    """Send one object; a large one in parts, each reported to ``on_bytes`` (progress) as it
    is read, hashed and handed to the store."""
    key = object_key(digest)
    if size < config.multipart_threshold:
        if reader is not None and size <= SMALL:
            data = await reader.call(path, size, digest, hasher)
        else:
            data = await run_sync(read_verified, path, size, digest, hasher)
        await store.put_bytes(key, data)
    else:
        chunks = verified_chunks(path, size, digest, hasher, config.part_size_for(size),
                                 on_bytes)
        await store.put(key, chunks, size)

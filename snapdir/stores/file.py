"""A store in a local directory (``file:///abs/path`` or a plain path).

Writes go to ``.tmp-<pid>-<host>-<random>`` next to the final name and are renamed into
place, so a reader never sees a partial object under its real key. A writer killed
mid-write (kill -9, a crash) leaves its temp file; the next write into that directory
removes it (``remove_stale_temps``). Blocking calls run in worker threads (one
``CapacityLimiter`` per store).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import re
import secrets
import stat
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from ..errors import AccessDenied, ObjectNotFound, StoreError, StoreMissing, StoreUnavailable
from ..fileio import write_all
from ..transfer.batch import Batcher
from ..transfer.threads import run_sync
from .base import Chunk, check_flag, file_uri, named_by

TMP_PREFIX = ".tmp-"
#: A temp file whose writer cannot be asked (another host's, or one named by a snapdir
#: before the pid was in the name) is removed once untouched for this long: a live writer
#: keeps its file's mtime fresh as it writes.
STALE_TEMP_SECONDS = 6 * 3600
#: Our temp names: ``.tmp-<pid>-<host tag>-<random>``, and ``.tmp-<16 hex>`` (older).
_TEMP = re.compile(r"\.tmp-(?:(\d+)-([0-9a-f]{8})-[0-9a-f]{8}|[0-9a-f]{16})")
_READ_CHUNK = 1024 * 1024
_T = TypeVar("_T")


class FileStore:
    """A ``Store`` rooted at directory ``root`` (created on the first write)."""

    def __init__(self, root: str | os.PathLike[str], *, uri: str | None = None,
                 fsync: bool = False, threads: int = 16, list_chunk: int = 1000,
                 named_by: str = "--store") -> None:
        self.root = Path(os.path.abspath(os.fspath(root)))
        self.uri = uri or file_uri(self.root)
        self.fsync = fsync
        self.list_chunk = list_chunk
        #: the option that named this store, for messages (see ``base.named_by``)
        self.named_by = named_by
        self._limiter = anyio.CapacityLimiter(threads)
        self._reads: Batcher[bytes | None] = Batcher(_read_small)
        self._writes: Batcher[None] = Batcher(_write_bytes)

    def path_of(self, key: str) -> Path:
        """The file that holds ``key`` (whether or not it exists)."""
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise StoreError(f"invalid key {key!r} for {self.uri}", key=key)
        return self.root.joinpath(*parts)

    async def _run(self, fn: Callable[[], _T], key: str) -> _T:
        try:
            return await run_sync(fn)
        except OSError as exc:
            raise self._error(exc, key) from exc

    def missing(self, looking_for: str, key: str = "") -> StoreMissing | None:
        """The error for reading from this store when there is no store here (its root
        is not a directory), naming what was looked for; None when it is there."""
        if self.root.is_dir():
            return None
        return StoreMissing(f"there is no store at {self.root} (looking for {looking_for}); "
                            f"check {check_flag(self)}", key=key)

    def _error(self, exc: OSError, key: str) -> StoreError:
        where = f"{key} in {self.uri}"
        if blocker := blocking_file(self.root):
            return StoreError(not_a_directory(self.uri, blocker, named_by(self)), key=key)
        if isinstance(exc, FileNotFoundError | NotADirectoryError | IsADirectoryError):
            if (gone := self.missing(key, key)) is not None:  # not just one object
                return gone
            return ObjectNotFound(f"{where} does not exist", key=key)
        if isinstance(exc, PermissionError):
            return AccessDenied(f"permission denied on {where} ({exc.strerror}): check the "
                                f"directory's owner and mode", key=key)
        if exc.errno in (errno.EIO, errno.ETIMEDOUT, errno.ESTALE, errno.EAGAIN):
            return StoreUnavailable(f"I/O error on {where}: {exc.strerror}", key=key)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StoreError(f"cannot write {where}: {exc.strerror}; free space on the "
                              "store's filesystem", key=key)
        if exc.errno == errno.EROFS:  # (the cache's store too: no --store to change there)
            return StoreError(f"cannot write {where}: {exc.strerror}; the store must be "
                              "a writable directory", key=key)
        return StoreError(f"cannot access {where}: {exc.strerror or exc}", key=key)

    async def head(self, key: str) -> int | None:
        path = self.path_of(key)

        def stat() -> int | None:
            try:
                st = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                return None
            return st.st_size if not path.is_dir() else None

        return await self._run(stat, key)

    async def get(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[Chunk]:
        path = self.path_of(key)
        if start == 0 and end is None:  # whole object: small ones in one batched call
            whole = await self.get_small(key, _READ_CHUNK)
            if whole is not None:
                if whole:
                    yield whole
                return
        try:
            f = await anyio.open_file(path, "rb", buffering=0, limiter=self._limiter)
        except OSError as exc:
            raise self._error(exc, key) from exc
        async with f:
            try:
                if start:
                    await f.seek(start)
                pos = start
                while end is None or pos < end:
                    want = _READ_CHUNK if end is None else min(_READ_CHUNK, end - pos)
                    chunk = await f.read(want)
                    if not chunk:
                        break
                    pos += len(chunk)
                    yield chunk
            except OSError as exc:
                raise self._error(exc, key) from exc

    async def get_bytes(self, key: str) -> bytes:
        return await self._run(self.path_of(key).read_bytes, key)

    async def get_small(self, key: str, limit: int) -> bytes | None:
        try:
            whole = await self._reads.call(self.path_of(key))
        except OSError as exc:
            raise self._error(exc, key) from exc
        return whole if whole is not None and len(whole) <= limit else None

    async def put(self, key: str, chunks: AsyncIterable[Chunk], size: int) -> None:
        path = self.path_of(key)
        tmp = await self._run(lambda: _open_temp(path), key)
        try:
            written = 0
            async with await anyio.open_file(tmp, "r+b", buffering=0,
                                             limiter=self._limiter) as f:
                fd = f.wrapped.fileno()
                async for chunk in chunks:
                    async with self._limiter:
                        await run_sync(write_all, fd, chunk)
                    written += len(chunk)
                if self.fsync:
                    await run_sync(os.fsync, fd)
            if written != size:
                raise StoreError(f"put of {key} to {self.uri} got {written} bytes, expected "
                                 f"{size}: the source changed while it was read", key=key)
            await self._run(lambda: os.replace(tmp, path), key)
        except OSError as exc:
            await _discard(tmp)
            raise self._error(exc, key) from exc
        except BaseException:
            await _discard(tmp)
            raise

    async def put_bytes(self, key: str, data: bytes) -> None:
        try:
            await self._writes.call(self.path_of(key), data, self.fsync)
        except OSError as exc:
            raise self._error(exc, key) from exc

    async def list(self, prefix: str) -> AsyncIterator[list[str]]:
        # Walk only the deepest directory the prefix names; filter by the rest.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        walker = _walk(self.root, base)
        while True:
            chunk = await self._run(lambda: _take(walker, self.list_chunk), prefix)
            keys = [k for k in chunk if k.startswith(prefix)]
            if keys:
                yield keys
            if len(chunk) < self.list_chunk:
                return

    async def delete(self, key: str) -> None:
        path = self.path_of(key)
        await self._run(lambda: path.unlink(missing_ok=True), key)

    async def aclose(self) -> None:
        pass


def not_a_directory(uri: str, blocker: Path, flag: str = "--store") -> str:
    return (f"store {uri}: {blocker} is a file, not a directory; give {flag} a directory "
            "(or a path that does not exist yet)")


def blocking_file(root: Path) -> Path | None:
    """The nearest existing path at or above ``root`` if it is not a directory."""
    for p in (root, *root.parents):
        if os.path.lexists(p):
            return None if os.path.isdir(p) else p
    return None


def _read_small(path: Path) -> bytes | None:
    """The whole file if it is at most ``_READ_CHUNK`` bytes, else None (stream it)."""
    with open(path, "rb", buffering=0) as fh:
        if os.fstat(fh.fileno()).st_size > _READ_CHUNK:
            return None
        data = fh.read(_READ_CHUNK + 1)
    return data if len(data) <= _READ_CHUNK else None


def _write_bytes(path: Path, data: bytes, fsync: bool) -> None:
    tmp = _open_temp(path)
    try:
        with tmp.open("r+b", buffering=0) as f:
            write_all(f.fileno(), data)
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@functools.cache
def _host_tag() -> str:
    """8 hex digits for this host and pid namespace: where a temp name's pid means a
    process this one can ask about."""
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        ns = ""
    return hashlib.sha256(f"{os.uname().nodename}\0{ns}".encode()).hexdigest()[:8]


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's (EPERM), or cannot tell
    return True


def remove_stale_temps(directory: Path) -> None:
    """Remove from ``directory`` the temp files of writers that are gone: ours from this
    host whose process has exited, and any of ours untouched for ``STALE_TEMP_SECONDS``
    (a writer on another host, or a name without a pid). A concurrent writer's temp is
    left alone (unless it wrote nothing for that long: its rename then fails, loudly).
    Other files, and other ``.tmp-`` names, are never touched."""
    try:
        with os.scandir(directory) as it:
            names = [e.name for e in it if e.name.startswith(TMP_PREFIX)]
    except OSError:
        return
    now = time.time()
    for name in names:
        if (m := _TEMP.fullmatch(name)) is None:
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        dead = m[1] is not None and m[2] == _host_tag() and not _alive(int(m[1]))
        if stat.S_ISREG(st.st_mode) and (dead or now - st.st_mtime > STALE_TEMP_SECONDS):
            with contextlib.suppress(OSError):
                os.unlink(path)


def _open_temp(path: Path) -> Path:
    """Create an empty, uniquely named temp file next to ``path`` (parents made); the
    temp files killed writers left there are removed."""
    tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{_host_tag()}-{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    try:
        os.close(os.open(tmp, flags, 0o644))
    except FileNotFoundError:  # first object under this prefix: make its directories
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(tmp, flags, 0o644))
        return tmp
    remove_stale_temps(path.parent)
    return tmp


async def _discard(tmp: Path) -> None:
    with anyio.CancelScope(shield=True):
        await run_sync(lambda: tmp.unlink(missing_ok=True))


def _walk(root: Path, base: str) -> Iterator[str]:
    """Keys (posix, relative to ``root``) of the files under ``root/base``, skipping temps."""
    top = os.path.join(root, *base.split("/")) if base else os.fspath(root)
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif not e.name.startswith(TMP_PREFIX):
                    yield os.path.relpath(e.path, root).replace(os.sep, "/")


def _take(it: Iterator[str], n: int) -> list[str]:
    out: list[str] = []
    for item in it:
        out.append(item)
        if len(out) >= n:
            break
    return out

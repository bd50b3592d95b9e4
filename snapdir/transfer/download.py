"""Receiving one object: streamed to a temporary file next to its final place while being
hashed, verified, then renamed into place. A wrong byte never appears under the real name.
Large objects come in parallel ranged GETs, written as they arrive and hashed in file
order. From S3, through the page cache (the default), worker threads receive each range
straight into the file (``stores/s3ranges.py``) and each range is hashed from the page
cache once the ones before it are: no buffer of ours holds it. Other stores' ranges are
written and hashed from the store's own buffers; past the page cache
(``SNAPDIR_DIRECT_IO=1``, see ``fileio``) a range is first gathered into a reused
page-aligned buffer, as ``O_DIRECT`` requires.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

import anyio

from ..core.manifest import Hasher
from ..errors import AGAIN, IntegrityError
from ..fileio import DIRECT_ALIGN, enable_direct, pwrite_all, pwrite_direct, write_all
from ..hashing import hash_range, threaded_blake3
from ..stores.base import Chunk, Store, WritesRanges, object_key
from .batch import Batcher
from .cache import RESUME_ATTR, left_by_dead, partial_of, resumable_dirs, temp_name, temp_names
from .config import TransferConfig
from .pool import first_error
from .threads import run_stoppable, run_sync

#: Objects the manifest says are at most this large are fetched in one awaited request.
SMALL_GET = 1024 * 1024


def _mismatch(store: Store, digest: str, actual: str, label: str) -> IntegrityError:
    return IntegrityError(
        f"object {digest} (for {label}) from {store.uri} is corrupt: its bytes hash to "
        f"{actual}; they were discarded; repair the store from a good copy with "
        f"`snapdir push --force` (or delete {object_key(digest)} and the snapshot's manifest "
        "from it, then push again)",
        key=object_key(digest), expected=digest, actual=actual)


def write_small(tmp: Path, final: Path, chunks: list[Chunk], digest: str,
                 hasher: Hasher, mode: int | None) -> str:
    h = hasher.new()
    for c in chunks:
        h.update(c)
    actual = str(h.hexdigest())
    if actual != digest:
        return actual
    try:
        fh = _open_write(tmp)
    except FileNotFoundError:  # its directory does not exist yet (a fresh cache)
        final.parent.mkdir(parents=True, exist_ok=True)
        fh = _open_write(tmp)
    with fh:
        for c in chunks:
            write_all(fh.fileno(), c)
        if mode is not None:
            os.fchmod(fh.fileno(), mode)
    os.replace(tmp, final)
    return actual


def adopt_partial(final: Path, digest: str, size: int, tmp: Path) -> int:
    """Take over a partial download of ``digest`` that a process which died (kill -9, a
    lost node) or was stopped left next to ``final``: it is renamed to ``tmp``; returns how
    many of its first bytes are in (0: none to take over). Its bytes are hashed again
    with the rest, so a wrong one fails the download as ever. Other partial downloads
    of ``digest`` there are removed. Only a directory where the caller's clean-up pass
    (``remove_stale_temps``) left one is looked in."""
    if os.fspath(final.parent) not in resumable_dirs:
        return 0
    done = 0
    for name in temp_names(final.parent):
        path = final.parent / name
        part = partial_of(path)
        if part is None or part[0] != digest or not left_by_dead(name):
            continue
        try:
            st = os.lstat(path)
            # only a file of ours and nobody else's: one another user owns (a shared
            # directory), or one with a second name, could be written after it is verified
            if (done == 0 and 0 < part[1] <= min(size, st.st_size) and stat.S_ISREG(st.st_mode)
                    and st.st_nlink == 1 and st.st_uid == os.geteuid()):
                os.rename(path, tmp)  # atomic: of two processes, one takes it over
                done = part[1]
            else:
                os.unlink(path)
        except OSError:  # taken over (or removed) by another process meanwhile
            continue
    return done


def _open_write(path: Path) -> BinaryIO:
    return open(path, "wb", buffering=0)  # written through fileio.write_all


def _hash_write(h: Any, fh: BinaryIO, chunk: Chunk) -> None:
    """Hash and write one chunk: one worker-thread hop for both."""
    h.update(chunk)
    write_all(fh.fileno(), chunk)


async def download_object(store: Store, digest: str, final: Path, hasher: Hasher,
                          config: TransferConfig, *, size_hint: int = 0, label: str = "",
                          mode: int | None = None, writer: Batcher[str] | None = None,
                          large: anyio.CapacityLimiter | None = None,
                          buffers: RangeBuffers | None = None,
                          on_bytes: Callable[[int], None] | None = None) -> int:
    """Fetch object ``digest`` into ``final`` (verified); returns its size.

    ``large`` (shared by the caller's downloads) bounds how many objects come in ranged
    GETs at once; ``buffers`` (shared too) holds the ranges they receive. An object too
    large to hold in memory reports its bytes to ``on_bytes`` as they are written (from
    worker threads too: progress; a retried attempt reports them again).
    """
    key = object_key(digest)
    label = label or key
    tmp = temp_name(final)
    resumable = [False]  # the temp file is a partial download the next one can take over

    async def place_small(chunks: list[Chunk]) -> None:
        """Verify bytes held in memory and write them into place (batched if we can)."""
        args = (tmp, final, chunks, digest, hasher, mode)
        actual = await (writer.call(*args) if writer is not None
                        else run_sync(write_small, *args))
        if actual != digest:
            raise _mismatch(store, digest, actual, label)

    try:
        big = size_hint >= config.multipart_threshold
        if 0 < size_hint <= SMALL_GET:
            data = await store.get_small(key, config.small_object_limit)
            if data is not None:
                await place_small([data])
                return len(data)
            # larger than the manifest said (a followed symlink's line has the link's own
            # size): a large object still comes in ranges
            big = True
        if big:
            size = await store.head(key)
            if size is not None and size >= config.multipart_threshold:
                own = buffers is None
                pool = buffers or RangeBuffers(config.range_size, config.range_window)
                try:
                    async with large or anyio.CapacityLimiter(1):
                        resume = await run_sync(adopt_partial, final, digest, size, tmp)
                        actual = await _ranged(store, key, tmp, final, size, config,
                                               hasher, pool, on_bytes, resume=resume,
                                               digest=digest, resumable=resumable)
                finally:
                    if own:
                        pool.close()
                if actual != digest:
                    raise _mismatch(store, digest, actual, label)
                # complete: the record of a partial download (this one's, or the one it
                # took over) is not left on the user's file
                with contextlib.suppress(OSError):
                    os.removexattr(tmp, RESUME_ATTR)
                if mode is not None:
                    os.chmod(tmp, mode)
                os.replace(tmp, final)
                return size
        chunks: list[Chunk] = []
        held = 0
        fh: BinaryIO | None = None
        h: Any = None
        try:
            async for chunk in store.get(key):
                if fh is None and held + len(chunk) <= config.small_object_limit:
                    chunks.append(chunk)
                    held += len(chunk)
                    continue
                if fh is None:  # too big to hold: stream to disk from here on
                    final.parent.mkdir(parents=True, exist_ok=True)
                    fh = await run_sync(_open_write, tmp)
                    h = hasher.new()
                    for c in chunks:
                        await run_sync(_hash_write, h, fh, c)
                    chunks = []
                await run_sync(_hash_write, h, fh, chunk)
                held += len(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
            if fh is None:
                await place_small(chunks)
                return held
            assert h is not None
            actual = str(h.hexdigest())
            if actual != digest:
                raise _mismatch(store, digest, actual, label)
            if mode is not None:
                os.fchmod(fh.fileno(), mode)
        finally:
            if fh is not None:
                fh.close()
        os.replace(tmp, final)
        return held
    except BaseException as exc:
        # stopped (Ctrl-C, SIGTERM, another object's failure): a large object's bytes in
        # so far stay for the next download to take over; anything else goes
        if not (resumable[0] and isinstance(exc, (anyio.get_cancelled_exc_class(),
                                                  KeyboardInterrupt, SystemExit))):
            tmp.unlink(missing_ok=True)
        raise


class RangeBuffers:
    """Page-aligned buffers of ``config.range_size`` bytes that ranged downloads receive
    into, shared by every ranged download of one transfer and reused: their pages stay
    resident, so a range costs one copy and no page faults. ``count`` bounds the bytes
    held (see ``TransferConfig``). Each download takes its buffers in file order, so the
    range its hash waits for always has one: no download waits on another forever.
    """

    def __init__(self, size: int, count: int) -> None:
        self.size = -(-size // DIRECT_ALIGN) * DIRECT_ALIGN
        self._free: list[mmap.mmap] = []
        self.made = 0  # buffers allocated so far
        self._count = count
        self._slots = anyio.Semaphore(count)

    async def take(self, alloc: bool = True) -> mmap.mmap | None:
        """A buffer (or, with ``alloc=False``, only the right to hold a range's bytes)."""
        await self._slots.acquire()
        if not alloc:
            return None
        if self._free:
            return self._free.pop()
        self.made += 1
        return mmap.mmap(-1, self.size)  # anonymous: page-aligned, zero-filled on first use

    def give(self, buf: mmap.mmap | None) -> None:
        if buf is not None:
            self._free.append(buf)
        self._slots.release()

    def close(self) -> None:
        for buf in self._free:
            try:
                buf.close()
            except BufferError:
                # a view of it is still alive (held by the traceback of a failed write
                # that is still propagating): it is unmapped when that view goes
                pass
        self._free.clear()

    @classmethod
    def for_config(cls, config: TransferConfig) -> RangeBuffers:
        return cls(config.range_size, config.range_window)


async def _ranged(store: Store, key: str, tmp: Path, final: Path, size: int,
                  config: TransferConfig, hasher: Hasher, buffers: RangeBuffers,
                  on_bytes: Callable[[int], None] | None = None, *, resume: int = 0,
                  digest: str = "", resumable: list[bool] | None = None) -> str:
    """Parallel ranged GETs into ``tmp``; returns the digest of the bytes received.

    From a store that writes ranges itself (S3, through the page cache), each range is
    hashed from the file once it and every range before it are in. Otherwise each range is
    written as it arrives and hashed from the store's chunks, or (``direct_io``) received
    whole into a buffer of ``buffers``, written from it past the page cache and hashed
    from it. Ranges take their slot (and buffer) in file order and give it back once
    hashed: a slow range holds up at most ``range_window`` behind it. A retried range
    resumes where its last attempt stopped.

    ``resume``: the first bytes of ``tmp`` are a partial download taken over (hashed
    first, then the ranges after them come). As the hashed part grows, ``tmp`` records it
    with ``digest`` (``cache.RESUME_ATTR``) and ``resumable[0]`` becomes True: if the
    download stops, the next one takes over from there.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    part = buffers.size
    trunc = 0 if resume else os.O_TRUNC
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | trunc | os.O_CLOEXEC, 0o644)
    try:
        h = threaded_blake3(hasher)
        if resume and await run_sync(hash_range, fd, 0, resume, h) != resume:
            # shorter than it said (unreachable: its size was checked): start afresh
            h, resume = threaded_blake3(hasher), 0
            os.ftruncate(fd, 0)
        if resume and resumable is not None:
            resumable[0] = True  # its record stands: stopped again, it is kept again
        if resume and on_bytes is not None:
            on_bytes(resume)
        direct = config.direct_io and enable_direct(fd)
        # Through the page cache, a store that can (S3) writes each range into the file
        # itself as it arrives, and the range is hashed from the page cache; other stores'
        # ranges are written and hashed from their own buffers. Either way: no copy into
        # ours (and none of our buffers to fault in).
        copy = direct
        ranged = store if not direct and isinstance(store, WritesRanges) else None
        sockets = ranged is not None and await ranged.range_writer() is not None
        if sockets:
            os.ftruncate(fd, size)  # ranges land anywhere; hash_range maps what is there
        record = resumable is not None and bool(digest)
        #: one write into the file at a time, whichever range it is from (see ``fileio``)
        write_lock = threading.Lock()
        #: range start -> (its buffer or None, bytes of it received so far, the chunks
        #: themselves when they are kept instead of copied)
        held: dict[int, tuple[mmap.mmap | None, list[int], list[Chunk]]] = {}
        done: set[int] = set()
        hashed = resume
        hashing = anyio.Lock()

        def arrived(n: int) -> None:
            """Progress counts bytes as they arrive, in whichever thread receives them
            (counted once hashed, in file order, they showed in bursts of several ranges
            on a slow link: nothing for the first 128 MiB at 40 MB/s)."""
            if on_bytes is not None:
                on_bytes(n)

        def receive(buf: mmap.mmap | None, got: list[int], kept: list[Chunk], chunk: Chunk,
                    start: int, length: int) -> None:
            """Copy ``chunk`` into ``buf`` and write the range out once it is whole; or,
            without a buffer, write ``chunk`` at once and keep it for the hash."""
            nonlocal direct
            n = len(chunk)
            if got[0] + n > length:
                from ..errors import StoreUnavailable
                raise StoreUnavailable(f"{key}: range at {start} came back longer than "
                                       f"asked ({got[0] + n} of {length} bytes); {AGAIN}",
                                       key)
            if buf is None:
                with write_lock:
                    pwrite_all(fd, chunk, start + got[0])
                if not sockets:  # else it is hashed from the page cache
                    kept.append(chunk)
                got[0] += n
                arrived(n)
                return
            view = memoryview(buf)
            try:
                view[got[0]:got[0] + n] = chunk
                got[0] += n
                arrived(n)
                if got[0] == length and not (direct and pwrite_direct(fd, view, length, start)):
                    direct = False
                    with write_lock:
                        pwrite_all(fd, view[:length], start)
            finally:
                view.release()

        async def fetch_range(start: int, end: int) -> None:
            buf, got, kept = held[start]
            # (asked again each attempt: it signs with the credentials of the moment)
            writer = await ranged.range_writer() if sockets and ranged is not None else None
            if writer is not None:
                def written(n: int) -> None:
                    got[0] += n
                    arrived(n)

                call = writer.call(key, start + got[0], end, fd, written, write_lock)
                await run_stoppable(call.run, call.stop)
            else:
                async for chunk in store.get(key, start + got[0], end):
                    await run_sync(receive, buf, got, kept, chunk, start, end - start)
            if got[0] != end - start:
                from ..errors import StoreUnavailable
                raise StoreUnavailable(f"{key}: truncated body ({got[0]} of "
                                       f"{end - start} bytes); {AGAIN}", key)

        def feed(start: int, buf: mmap.mmap | None, length: int, kept: list[Chunk]) -> None:
            if sockets:  # written by the socket threads: hash it from the page cache
                if hash_range(fd, start, start + length, h) != length:
                    raise AssertionError(f"{key}: range at {start} is short on disk")
                return
            if buf is None:
                for chunk in kept:
                    h.update(chunk)
                kept.clear()
                return
            with memoryview(buf) as view:
                h.update(view[:length])

        async def advance() -> None:
            nonlocal hashed, record
            async with hashing:
                while hashed in done:
                    buf, got, kept = held.pop(hashed)
                    try:
                        await run_sync(feed, hashed, buf, got[0], kept)
                    finally:
                        buffers.give(buf)
                    hashed += got[0]
                    if record and resumable is not None:
                        try:
                            os.setxattr(fd, RESUME_ATTR, f"{digest} {hashed}".encode())
                            resumable[0] = True
                        except OSError:  # no user attributes here: nothing to resume
                            record = False

        limiter = anyio.CapacityLimiter(config.part_concurrency)

        async def one(start: int, end: int) -> None:
            from .retry import retrying
            async with limiter:
                await retrying(partial(fetch_range, start, end), config)
            done.add(start)
            await advance()

        try:
            async with anyio.create_task_group() as tg:
                for start in range(resume, size, part):
                    # in file order: the range the hash waits for always has its buffer
                    held[start] = (await buffers.take(copy), [0], [])
                    tg.start_soon(one, start, min(size, start + part))
        except BaseExceptionGroup as group:
            raise first_error(group) from None
        finally:
            for buf, _, _ in held.values():  # ranges a failure left unhashed
                buffers.give(buf)
            held.clear()
        if hashed != size:  # unreachable unless a range went missing: never trust it
            raise AssertionError(f"{key}: hashed {hashed} of {size} bytes")
        os.ftruncate(fd, size)  # a direct write pads the last range to the alignment
        return str(h.hexdigest())
    finally:
        os.close(fd)

"""Build a manifest from a directory: walk → stat cache → hash → assemble.

The walk runs in the calling thread and hands batches of files to a bounded pool of hash
threads as it finds them, so walking and hashing overlap; at most ``4 × threads`` batches
are in flight (backpressure). Large files go through one lane of their own, where BLAKE3
uses every core on one file at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import settings
from .core.manifest import FILE, DirNode, Entry, Hasher, Manifest, assemble
from .hashing import LARGE_FILE, hash_file
from .scan import PendingFile, absolute, compile_excludes, walk
from .statcache import now_ns, open_stat_cache


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestOptions:
    """How to turn a directory into a manifest (the ``snapdir manifest`` flags)."""

    follow: bool = True
    exclude: tuple[str, ...] = ()
    checksum_bin: str = "b3sum"
    absolute: bool = False
    stat_cache: bool = field(default_factory=settings.stat_cache_enabled)
    context: str | None = field(default_factory=settings.manifest_context)
    threads: int = field(default_factory=settings.hash_threads)

    def hasher(self) -> Hasher:
        return Hasher(self.checksum_bin, self.context)


@dataclass(slots=True)
class HashStats:
    files: int = 0
    hashed_files: int = 0
    hashed_bytes: int = 0
    cached_files: int = 0


def _hash_batch(files: Sequence[PendingFile], hasher: Hasher) -> list[str]:
    return [hash_file(f.source, f.data_size, f.mtime_ns, hasher) for f in files]


def build_manifest(
    root: str | Path,
    options: ManifestOptions | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    stats: HashStats | None = None,
    sources: dict[str, tuple[str, int]] | None = None,
) -> Manifest:
    """The manifest of ``root`` (sync; call it from a worker thread in async code).

    If ``sources`` is given it is filled with ``checksum -> (file to read, its size)``,
    one file per distinct content, for uploads.
    """
    opts = options or ManifestOptions()
    hasher = opts.hasher()
    tag = hasher.cache_tag
    st = stats if stats is not None else HashStats()
    cache = open_stat_cache(settings.cache_dir(), absolute(str(root)), tag, opts.stat_cache)
    started = now_ns()
    slots = threading.BoundedSemaphore(max(4 * opts.threads, 8))
    pool = ThreadPoolExecutor(max_workers=opts.threads, thread_name_prefix="snapdir-hash")
    large = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapdir-hash-large")
    jobs: list[tuple[Sequence[PendingFile], Future[list[str]]]] = []
    done: list[tuple[PendingFile, str]] = []
    new: list[tuple[PendingFile, str]] = []

    def submit(ex: ThreadPoolExecutor, files: Sequence[PendingFile]) -> None:
        slots.acquire()
        fut = ex.submit(_hash_batch, files, hasher)
        fut.add_done_callback(lambda _f: slots.release())
        jobs.append((files, fut))

    root_node: DirNode | None = None
    try:
        for item in walk(str(root), follow=opts.follow,
                         exclude=compile_excludes(opts.exclude), absolute_paths=opts.absolute):
            if isinstance(item, DirNode):
                root_node = item
                break
            st.files += len(item)
            small: list[PendingFile] = []
            get = cache.get
            for f in item:
                cs = get(f)
                if cs is not None:
                    done.append((f, cs))
                elif f.data_size >= LARGE_FILE:
                    submit(large, [f])
                else:
                    small.append(f)
            st.cached_files = len(done)
            if small:
                submit(pool, small)
            if progress is not None:
                progress(st.files, len(done))
        for files, fut in jobs:
            sums = fut.result()
            for f, cs in zip(files, sums, strict=True):
                new.append((f, cs))
                st.hashed_files += 1
                st.hashed_bytes += f.data_size
    except BaseException:
        for _, fut in jobs:
            fut.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        large.shutdown(wait=True, cancel_futures=True)
    assert root_node is not None
    cache.update([*done, *new], started)
    if sources is not None:
        for f, cs in (*done, *new):
            sources.setdefault(cs, (f.source, f.data_size))
    for f, cs in done:
        f.parent.files.append(Entry(FILE, f.mode, cs, f.size, f.path))
    for f, cs in new:
        f.parent.files.append(Entry(FILE, f.mode, cs, f.size, f.path))
    return assemble(root_node, hasher)

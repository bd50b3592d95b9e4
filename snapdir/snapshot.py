"""Build a manifest from a directory: walk → stat cache → hash → assemble.

The walk runs in the calling thread. A small file whose bytes are all in the page cache is
hashed right there, as soon as the walk finds it (``RWF_NOWAIT`` tells without blocking):
on a warm page cache that is faster than any hand-off to threads, which would mostly fight
over the GIL. Files that would block on the disk, and medium files, go in batches to a
bounded pool of hash threads, so walking, disk reads and hashing overlap; at most
``4 × threads`` batches are in flight (backpressure). Large files go through one lane of
their own, where BLAKE3 uses every core on one file at a time (memory-mapped).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import settings
from .core.manifest import FILE, DirNode, Entry, Hasher, Manifest, assemble, check_checksum_bin
from .errors import Stopped, UsageError, check_stop, nonempty_path
from .hashing import HAS_NOWAIT, LARGE_FILE, hash_file
from .scan import PendingFile, absolute, compile_excludes, walk
from .statcache import now_ns, open_stat_cache

#: Files below this size are tried inline (page cache permitting); larger ones go to threads.
INLINE_MAX = 1024 * 1024
#: Page-cache misses in one walk batch after which the rest of it goes straight to threads.
_MISSES = 8


class _Job:
    __slots__ = ("_done", "error", "files", "result")

    def __init__(self, files: Sequence[PendingFile]) -> None:
        self.files = files
        self.result: list[str | None] = []
        self.error: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()

    def ready(self) -> bool:
        if self._done.acquire(blocking=False):
            self._done.release()
            return True
        return False

    def wait(self) -> list[str | None]:
        self._done.acquire()
        self._done.release()
        if self.error is not None:
            raise self.error
        return self.result


class _Pool:
    """A minimal thread pool (threads start on first use); cheaper to import and to use
    than concurrent.futures for this one job shape."""

    def __init__(self, threads: int, name: str, slots: threading.Semaphore,
                 work: Callable[[Sequence[PendingFile]], list[str | None]]) -> None:
        self._n = threads
        self._name = name
        self._slots = slots
        self._work = work
        self._queue: deque[_Job | None] = deque()
        self._ready = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self.cancelled = False

    def submit(self, files: Sequence[PendingFile]) -> _Job:
        self._slots.acquire()
        job = _Job(files)
        self._queue.append(job)
        self._ready.release()
        if len(self._threads) < self._n:
            t = threading.Thread(target=self._run, name=f"{self._name}-{len(self._threads)}",
                                 daemon=True)
            t.start()
            self._threads.append(t)
        return job

    def _run(self) -> None:
        while True:
            self._ready.acquire()
            job = self._queue.popleft()
            if job is None:
                return
            try:
                if not self.cancelled:
                    job.result = self._work(job.files)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                job.error = exc
            finally:
                self._slots.release()
                job._done.release()

    def shutdown(self, cancel: bool = False) -> None:
        self.cancelled = self.cancelled or cancel
        for _ in self._threads:
            self._queue.append(None)
            self._ready.release()
        for t in self._threads:
            t.join()


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

    def __post_init__(self) -> None:
        check_checksum_bin(self.checksum_bin)  # refused here, before any walking
        # one regex as a str is that regex, not one per letter (which leaves out nearly
        # every path: an empty snapshot pushed without a word)
        exclude = (self.exclude,) if isinstance(self.exclude, str) else tuple(self.exclude)
        if not all(isinstance(x, str) for x in exclude):
            raise UsageError(f"exclude is {self.exclude!r}: give a list of regexes (str), "
                             "or one str")
        object.__setattr__(self, "exclude", exclude)

    def hasher(self) -> Hasher:
        return Hasher(self.checksum_bin, self.context)


@dataclass(slots=True)
class HashStats:
    """Counts as the walk goes (progress reads them from another thread)."""

    files: int = 0  # seen so far
    hashed_files: int = 0
    hashed_bytes: int = 0  # of files hashed whole (the walking thread writes it)
    large_bytes: int = 0  # of large files, as they are hashed (the large-file thread)
    cached_files: int = 0

    @property
    def bytes(self) -> int:
        return self.hashed_bytes + self.large_bytes


class Sources(Mapping[str, tuple[str, int]]):
    """``checksum -> (file to read, bytes to read)``, one file per distinct content, for
    uploads. Compact at millions of files: a file is kept as its manifest Entry (already in
    memory), its path rebuilt on lookup; only a followed link whose size differs from its
    target's needs a tuple of its own."""

    def __init__(self) -> None:
        self._items: dict[str, Entry | tuple[str, int]] = {}
        self._base = ""
        self._strip = 0

    def _bind(self, root: str, prefix: str) -> None:
        # the walk reads root.rstrip("/") + "/" + (manifest path minus its prefix)
        fs_root = root.rstrip("/") or "/"
        self._base = fs_root if fs_root == "/" else fs_root + "/"
        self._strip = len(prefix)

    def _add(self, f: PendingFile, entry: Entry) -> None:
        if entry.checksum not in self._items:
            self._items[entry.checksum] = entry if f.data_size == f.size \
                else (f.source, f.data_size)

    def __getitem__(self, checksum: str) -> tuple[str, int]:
        v = self._items[checksum]
        if isinstance(v, tuple):
            return v
        return self._base + v.path[self._strip:], v.size

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, checksum: object) -> bool:
        return checksum in self._items

    def data_bytes(self) -> int:
        """The bytes of every distinct content (a followed link's are its target's)."""
        return sum(v[1] if isinstance(v, tuple) else v.size for v in self._items.values())


def _hash_batch(files: Sequence[PendingFile], hasher: Hasher) -> list[str | None]:
    return [hash_file(f.source, f.data_size, f.mtime_ns, hasher) for f in files]


def build_manifest(
    root: str | Path,
    options: ManifestOptions | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    stats: HashStats | None = None,
    sources: Sources | None = None,
    stop: threading.Event | None = None,
) -> Manifest:
    """The manifest of ``root`` (sync; call it from a worker thread in async code).

    If ``sources`` is given it is filled with ``checksum -> (file to read, its size)``,
    one file per distinct content, for uploads (see ``Sources``).

    ``stop``: once set (see ``transfer.threads.run_interruptible``), ``Stopped`` is raised
    before the next directory, or within 16 MiB of a large file being hashed. Interrupted
    any way (an exception in the calling thread too), a large file's hashing stops there.
    """
    nonempty_path(root, "the directory to snapshot")
    opts = options or ManifestOptions()
    hasher = opts.hasher()
    st = stats if stats is not None else HashStats()
    cache = open_stat_cache(settings.cache_dir(), absolute(str(root)), hasher.cache_tag,
                            opts.stat_cache)
    cache.begin(now_ns())
    slots = threading.BoundedSemaphore(max(4 * opts.threads, 8))

    def work(files: Sequence[PendingFile]) -> list[str | None]:
        return _hash_batch(files, hasher)

    def work_large(files: Sequence[PendingFile]) -> list[str | None]:
        # one thread, so the only writer of st.large_bytes
        out: list[str | None] = []
        for f in files:
            counted = 0

            def count(n: int) -> None:
                nonlocal counted
                counted += n
                st.large_bytes += n
                if large.cancelled or (stop is not None and stop.is_set()):
                    raise Stopped  # a file of many GB: not hashed to its end for nothing

            out.append(hash_file(f.source, f.data_size, f.mtime_ns, hasher, on_bytes=count))
            st.large_bytes += f.data_size - counted
        return out

    pool = _Pool(opts.threads, "snapdir-hash", slots, work)
    large = _Pool(1, "snapdir-hash-large", slots, work_large)
    jobs: deque[_Job] = deque()
    add = cache.add
    hit = cache.hit
    inline = HAS_NOWAIT

    if sources is not None:
        sources._bind(str(root), absolute(str(root)).rstrip("/") + "/" if opts.absolute
                      else "./")

    def finish(f: PendingFile, cs: str) -> None:
        entry = Entry(FILE, f.mode, cs, f.size, f.path)
        f.parent.files.append(entry)
        add(f, cs)
        if sources is not None:
            sources._add(f, entry)

    def collect(job: _Job) -> None:
        for f, cs in zip(job.files, job.wait(), strict=True):
            assert cs is not None
            finish(f, cs)
            st.hashed_files += 1
            if f.data_size < LARGE_FILE:  # large files count themselves (work_large)
                st.hashed_bytes += f.data_size

    root_node: DirNode | None = None
    ok = False
    try:
        for item in walk(str(root), follow=opts.follow,
                         exclude=compile_excludes(opts.exclude), absolute_paths=opts.absolute):
            check_stop(stop)
            if isinstance(item, DirNode):
                root_node = item
                break
            st.files += len(item)
            to_pool: list[PendingFile] = []
            misses = 0
            for f in item:
                cs = hit(f)
                if cs is not None:
                    entry = Entry(FILE, f.mode, cs, f.size, f.path)
                    f.parent.files.append(entry)
                    if sources is not None:
                        sources._add(f, entry)
                    st.cached_files += 1
                    continue
                size = f.data_size
                if size >= LARGE_FILE:
                    jobs.append(large.submit([f]))
                elif size < INLINE_MAX and inline and misses < _MISSES:
                    cs = hash_file(f.source, size, f.mtime_ns, hasher, nowait=True)
                    if cs is None:
                        misses += 1
                        to_pool.append(f)
                    else:
                        finish(f, cs)
                        st.hashed_files += 1
                        st.hashed_bytes += size
                else:
                    to_pool.append(f)
            if to_pool:
                jobs.append(pool.submit(to_pool))
            while jobs and jobs[0].ready():
                collect(jobs.popleft())
            if progress is not None:
                progress(st.files, st.cached_files)
        while jobs:
            check_stop(stop)
            collect(jobs.popleft())
        ok = True
    finally:
        pool.shutdown(cancel=not ok)
        large.shutdown(cancel=not ok)
    assert root_node is not None
    cache.save()
    return assemble(root_node, hasher)

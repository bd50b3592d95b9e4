"""download_object: ranged GETs hashed as the contiguous prefix completes."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

import anyio
import blake3
import pytest
from conftest import dead_pid, require_user_xattrs

from snapdir.core.manifest import Hasher
from snapdir.errors import IntegrityError, StoreUnavailable
from snapdir.stores.base import object_key
from snapdir.stores.memory import MemoryStore
from snapdir.transfer.cache import remove_stale_temps
from snapdir.transfer.config import TransferConfig
from snapdir.transfer.download import download_object

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024


class ShuffledStore(MemoryStore):
    """Ranges finish in a random order (the hashing must wait for the prefix)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)

    async def get(self, key: str, start: int = 0, end: int | None = None
                  ) -> AsyncIterator[bytes]:
        await anyio.sleep(self.rng.random() / 50)
        async for chunk in super().get(key, start, end):
            yield chunk


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("part", [5 * MiB, 5 * MiB + 4097])  # page-aligned and not
async def test_ranged_download_is_verified_in_any_order(tmp_path: Path, part: int,
                                                        direct: bool) -> None:
    data = os.urandom(23 * MiB + 777)  # the last range ends mid-block
    digest = blake3.blake3(data).hexdigest()
    store = ShuffledStore(seed=part)
    await store.put_bytes(object_key(digest), data)
    cfg = TransferConfig(multipart_threshold=6 * MiB, range_size=part, part_concurrency=3,
                         range_window=4, direct_io=direct)
    final = tmp_path / "d" / "big.bin"
    size = await download_object(store, digest, final, Hasher(), cfg, size_hint=len(data),
                                 mode=0o640)
    assert size == len(data)
    assert final.read_bytes() == data
    assert final.stat().st_mode & 0o777 == 0o640
    # really ranged (a range is a whole number of pages: written past the page cache)
    assert store.requests["get"] == -(-len(data) // (-(-part // 4096) * 4096))
    assert os.listdir(final.parent) == ["big.bin"]  # no temp file left


async def test_ranged_download_refuses_a_wrong_byte(tmp_path: Path) -> None:
    data = bytearray(os.urandom(20 * MiB))
    digest = blake3.blake3(data).hexdigest()
    data[15 * MiB + 3] ^= 1
    store = ShuffledStore(seed=1)
    await store.put_bytes(object_key(digest), bytes(data))
    cfg = TransferConfig(multipart_threshold=6 * MiB, range_size=5 * MiB)
    final = tmp_path / "big.bin"
    with pytest.raises(IntegrityError, match=digest):
        await download_object(store, digest, final, Hasher(), cfg, size_hint=len(data))
    assert os.listdir(tmp_path) == []  # neither the final name nor a temp file


class CutStore(MemoryStore):
    """The first GET of every range breaks off after one chunk (a connection reset)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[int, int | None]] = []

    async def get(self, key: str, start: int = 0, end: int | None = None
                  ) -> AsyncIterator[bytes]:
        first = all(e != end for _, e in self.asked)
        self.asked.append((start, end))
        async for chunk in super().get(key, start, end):
            yield chunk
            if first:
                raise StoreUnavailable(f"{key}: connection reset", key)


async def test_a_broken_range_resumes_where_it_stopped(tmp_path: Path) -> None:
    data = os.urandom(17 * MiB + 5)
    digest = blake3.blake3(data).hexdigest()
    store = CutStore()
    await store.put_bytes(object_key(digest), data)
    part = 5 * MiB
    cfg = TransferConfig(multipart_threshold=6 * MiB, range_size=part, part_concurrency=2,
                         backoff_base=0.001, backoff_cap=0.01)
    final = tmp_path / "big.bin"
    await download_object(store, digest, final, Hasher(), cfg, size_hint=len(data))
    assert final.read_bytes() == data
    starts = range(0, len(data), part)
    # each range: one broken attempt from its start, then one from after the chunk it got
    assert sorted(store.asked) == sorted(
        [(s, min(len(data), s + part)) for s in starts]
        + [(s + 64 * 1024, min(len(data), s + part)) for s in starts])


class CountingStore(MemoryStore):
    """Records the most ranged GETs in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.now = self.most = 0

    async def get(self, key: str, start: int = 0, end: int | None = None
                  ) -> AsyncIterator[bytes]:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await anyio.sleep(0.01)
            async for chunk in super().get(key, start, end):
                yield chunk
        finally:
            self.now -= 1


async def test_ranged_downloads_in_flight_are_bounded(tmp_path: Path) -> None:
    """Each range is held whole in memory: at most large_jobs x part_concurrency of them,
    however many large objects the snapshot has and however many jobs run."""
    from snapdir.transfer.fetch import download_all
    from snapdir.transfer.progress import Progress

    store = CountingStore()
    items = []
    blobs = {}
    for i in range(5):
        data = os.urandom(7 * MiB + i)
        digest = blake3.blake3(data).hexdigest()
        await store.put_bytes(object_key(digest), data)
        blobs[digest] = data
        items.append((digest, tmp_path / f"f{i}", f"f{i}", len(data), None))
    cfg = TransferConfig(jobs=32, multipart_threshold=6 * MiB, range_size=MiB,
                         part_concurrency=3, large_jobs=2)
    async with Progress("fetch", "off", files_total=5) as prog:
        objects, size = await download_all(store, items, cfg, prog)
    assert (objects, size) == (5, sum(len(b) for b in blobs.values()))
    for digest, final, *_ in items:
        assert Path(final).read_bytes() == blobs[digest]
    assert 3 < store.most <= 2 * 3  # two objects at once, three ranges each


async def test_ranges_held_in_memory_are_bounded_by_the_window(tmp_path: Path) -> None:
    """range_window bounds the ranges every ranged download holds together (received or
    in flight), below large_jobs x part_concurrency; the buffers are reused, not remade."""
    from snapdir.transfer import download
    from snapdir.transfer.fetch import download_all
    from snapdir.transfer.progress import Progress

    made: list[download.RangeBuffers] = []

    class Recorded(download.RangeBuffers):
        def __init__(self, size: int, count: int) -> None:
            super().__init__(size, count)
            made.append(self)

    store = CountingStore()
    items = []
    blobs = {}
    for i in range(3):
        data = os.urandom(9 * MiB + i)
        digest = blake3.blake3(data).hexdigest()
        await store.put_bytes(object_key(digest), data)
        blobs[digest] = data
        items.append((digest, tmp_path / f"f{i}", f"f{i}", len(data), None))
    cfg = TransferConfig(jobs=32, multipart_threshold=6 * MiB, range_size=MiB,
                         part_concurrency=4, large_jobs=2, range_window=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("snapdir.transfer.fetch.RangeBuffers", Recorded)
        async with Progress("fetch", "off", files_total=3) as prog:
            await download_all(store, items, cfg, prog)
    for digest, final, *_ in items:
        assert Path(final).read_bytes() == blobs[digest]
    assert 1 < store.most <= 3
    assert len(made) == 1
    assert made[0].made <= 3  # 30 ranges through three buffers


class FlipOnceStore(MemoryStore):
    """The first GET of the object's last range comes back with one byte flipped: the
    whole object fails its hash and is downloaded again."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.flipped = False

    async def get(self, key: str, start: int = 0, end: int | None = None
                  ) -> AsyncIterator[bytes]:
        async for chunk in super().get(key, start, end):
            if end == self.size and not self.flipped:
                self.flipped = True
                bad = bytearray(chunk)
                bad[0] ^= 1
                chunk = bytes(bad)
            yield chunk


async def test_progress_counts_a_large_object_as_its_ranges_arrive(tmp_path: Path) -> None:
    """A user watching a 5 GiB pull sees its bytes rise range by range, not 0 until the
    end; a retried object is not counted twice."""
    from snapdir.transfer.fetch import download_all
    from snapdir.transfer.progress import Progress

    seen: list[tuple[int, int]] = []

    class Watched(Progress):
        def add(self, files: int = 0, nbytes: int = 0) -> None:
            super().add(files, nbytes)
            seen.append((self.files_done, self.bytes_done))

    data = os.urandom(23 * MiB + 777)
    digest = blake3.blake3(data).hexdigest()
    store = FlipOnceStore(len(data))
    await store.put_bytes(object_key(digest), data)
    cfg = TransferConfig(multipart_threshold=6 * MiB, range_size=5 * MiB, part_concurrency=2,
                         backoff_base=0.001, backoff_cap=0.01)
    item = (digest, tmp_path / "big.bin", "big.bin", len(data), None)
    async with Watched("pull", "off", files_total=1, bytes_total=len(data)) as prog:
        assert await download_all(store, [item], cfg, prog) == (1, len(data))
    assert store.flipped  # the object really came twice
    assert (tmp_path / "big.bin").read_bytes() == data
    partial = [b for f, b in seen if f == 0]
    assert len([b for b in partial if b > 0]) >= 4  # range by range
    # the retry starts the object's count over: never more than the object (a corrupt
    # 67 MiB object retried showed "206.4 MiB/206.4 MiB")
    assert all(0 <= b <= len(data) for b in partial), partial
    assert 0 in partial[1:]
    assert seen[-1] == (1, len(data))  # exactly once in the end


def _as_left_by_a_dead_process(directory: Path) -> Path:
    """The one temp file in ``directory``, renamed as if its writer had since exited."""
    (tmp,) = [p for p in directory.iterdir() if p.name.startswith(".snapdir-tmp-")]
    head, _pid, tail = tmp.name.rsplit("-", 2)
    dead = tmp.with_name(f"{head}-{dead_pid()}-{tail}")
    tmp.rename(dead)
    return dead


class GatedStore(MemoryStore):
    """Ranges from ``gate`` on wait until ``open`` is set (a download stopped part-way)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = 0
        self.open = anyio.Event()
        self.ranges: list[int] = []

    @classmethod
    async def holding(cls, data: bytes, *, gate: int = 0, serving: bool = True
                      ) -> GatedStore:
        """A store holding ``data`` as its object; ranges from ``gate`` on wait unless
        ``serving``."""
        store = cls()
        store.gate = gate
        if serving:
            store.open.set()
        await store.put_bytes(object_key(blake3.blake3(data).hexdigest()), data)
        return store

    async def get(self, key: str, start: int = 0, end: int | None = None
                  ) -> AsyncIterator[bytes]:
        self.ranges.append(start)
        if start >= self.gate:
            await self.open.wait()
        async for chunk in super().get(key, start, end):
            yield chunk


async def _stop_download_once(store: GatedStore, data: bytes, final: Path,
                              cfg: TransferConfig, ready: Callable[[], bool]) -> None:
    """Start downloading ``data`` from ``store`` into ``final``, and stop the download (as
    Ctrl-C does) once ``ready()`` holds."""
    digest = blake3.blake3(data).hexdigest()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(download_object, store, digest, final, Hasher(), cfg,
                                  size_hint=len(data)))
            with anyio.fail_after(10):
                while True:
                    await anyio.sleep(0.01)
                    if ready():
                        break
            scope.cancel()


async def _stopped_part_way(tmp_path: Path, data: bytes, part: int, gate: int
                            ) -> tuple[Path, TransferConfig]:
    """Start downloading ``data``, stop the download (as Ctrl-C does) once the ranges
    before ``gate`` are in."""
    from snapdir.transfer.cache import partial_of

    store = await GatedStore.holding(data, gate=gate, serving=False)
    cfg = TransferConfig(multipart_threshold=6 * MiB, range_size=part, part_concurrency=8,
                         range_window=8)
    final = tmp_path / "d" / "big.bin"

    def hashed_to_gate() -> bool:
        temps = list(final.parent.glob(".snapdir-tmp-*"))
        return bool(temps) and (p := partial_of(temps[0])) is not None and p[1] >= gate

    await _stop_download_once(store, data, final, cfg, hashed_to_gate)
    assert not final.exists()
    return final, cfg


async def _left_by_a_dead_run(tmp_path: Path, data: bytes, part: int, gate: int
                              ) -> tuple[Path, Path, TransferConfig]:
    """``_stopped_part_way``, its partial file then renamed as if its writer had exited:
    (that file, the object's final path, the config)."""
    final, cfg = await _stopped_part_way(tmp_path, data, part, gate)
    return _as_left_by_a_dead_process(final.parent), final, cfg


async def test_a_stopped_large_download_is_taken_over_where_it_stopped(tmp_path: Path
                                                                       ) -> None:
    """A pull stopped (or killed) in the middle of a large object: the next one downloads
    only the ranges that were not in, and the bytes are verified whole as ever."""
    from snapdir.transfer.cache import partial_of

    part = 5 * MiB
    data = os.urandom(31 * MiB + 11)
    digest = blake3.blake3(data).hexdigest()
    left, final, cfg = await _left_by_a_dead_run(tmp_path, data, part, gate=3 * part)
    assert partial_of(left) == (digest, 3 * part)
    remove_stale_temps(final.parent, resumable={digest})  # as pull and fetch do first
    assert left.exists()

    again = await GatedStore.holding(data)
    seen: list[int] = []
    size = await download_object(again, digest, final, Hasher(), cfg, size_hint=len(data),
                                 on_bytes=seen.append)
    assert size == len(data)
    assert final.read_bytes() == data
    assert sorted(again.ranges) == list(range(3 * part, len(data), part))  # the rest only
    assert sum(seen) == len(data)  # progress counts the bytes taken over
    assert os.listdir(final.parent) == ["big.bin"]


async def test_a_taken_over_partial_download_with_a_wrong_byte_is_refused(tmp_path: Path
                                                                          ) -> None:
    """The bytes taken over are hashed again: one flipped on disk since fails the object
    (not a corrupt file under its real name), and the download after starts afresh."""
    part = 5 * MiB
    data = os.urandom(26 * MiB)
    digest = blake3.blake3(data).hexdigest()
    left, final, cfg = await _left_by_a_dead_run(tmp_path, data, part, gate=2 * part)
    fd = os.open(left, os.O_RDWR)
    try:
        os.pwrite(fd, bytes([os.pread(fd, 1, part + 7)[0] ^ 1]), part + 7)
    finally:
        os.close(fd)
    remove_stale_temps(final.parent, resumable={digest})

    again = await GatedStore.holding(data)
    with pytest.raises(IntegrityError, match=digest):
        await download_object(again, digest, final, Hasher(), cfg, size_hint=len(data))
    assert os.listdir(final.parent) == []  # the bad partial is gone with the attempt
    again.ranges.clear()
    await download_object(again, digest, final, Hasher(), cfg, size_hint=len(data))
    assert final.read_bytes() == data
    assert sorted(again.ranges) == list(range(0, len(data), part))


async def test_a_partial_download_of_a_live_process_is_left_alone(tmp_path: Path) -> None:
    """Another process still downloading the same object keeps its file: this one
    downloads the object itself."""
    part = 5 * MiB
    data = os.urandom(21 * MiB)
    digest = blake3.blake3(data).hexdigest()
    final, cfg = await _stopped_part_way(tmp_path, data, part, gate=2 * part)
    (live,) = final.parent.iterdir()  # named with this process's own (live) id
    other = live.with_name(live.name.replace(f"-{os.getpid()}-", "-1-"))  # pid 1: init
    live.rename(other)
    remove_stale_temps(final.parent, resumable={digest})
    again = await GatedStore.holding(data)
    await download_object(again, digest, final, Hasher(), cfg, size_hint=len(data))
    assert final.read_bytes() == data
    assert sorted(again.ranges) == list(range(0, len(data), part))
    assert other.exists()


async def test_a_large_object_in_place_carries_no_resume_record(tmp_path: Path) -> None:
    """The record a partial download keeps on itself (``RESUME_ATTR``) is not left on the
    user's file (or the cached object) once it is complete and in place."""
    from snapdir.transfer.cache import RESUME_ATTR

    data = os.urandom(13 * MiB + 5)
    digest = blake3.blake3(data).hexdigest()
    store = await GatedStore.holding(data)
    cfg = TransferConfig(multipart_threshold=6 * MiB, range_size=4 * MiB)
    final = tmp_path / "d" / "big.bin"
    require_user_xattrs(tmp_path)
    await download_object(store, digest, final, Hasher(), cfg, size_hint=len(data))
    assert final.read_bytes() == data
    assert RESUME_ATTR not in os.listxattr(final)


@pytest.mark.parametrize("how", ["second-name", "another-owner"])
async def test_a_partial_download_someone_else_can_write_is_not_taken_over(
        tmp_path: Path, how: str) -> None:
    """A partial file with a second name (a hard link), or owned by another user (a
    shared directory), could be written through after its bytes are verified: it is not
    taken over (the object is downloaded afresh), and what the link shows is untouched."""
    from snapdir.transfer.cache import partial_of

    part = 5 * MiB
    data = os.urandom(21 * MiB + 3)
    digest = blake3.blake3(data).hexdigest()
    left, final, cfg = await _left_by_a_dead_run(tmp_path, data, part, gate=2 * part)
    assert partial_of(left) == (digest, 2 * part)
    link = tmp_path / "elsewhere.bin"
    if how == "second-name":
        os.link(left, link)
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to give the file away")
        os.chown(left, 65534, 65534)
    before = link.read_bytes() if how == "second-name" else b""
    remove_stale_temps(final.parent, resumable={digest})
    again = await GatedStore.holding(data)
    await download_object(again, digest, final, Hasher(), cfg, size_hint=len(data))
    assert final.read_bytes() == data
    assert sorted(again.ranges) == list(range(0, len(data), part))  # all of it afresh
    assert os.lstat(final).st_uid == os.geteuid()
    assert os.lstat(final).st_nlink == 1
    if how == "second-name":
        assert link.read_bytes() == before
    assert os.listdir(final.parent) == ["big.bin"]


async def test_a_taken_over_download_stopped_again_is_kept_again(tmp_path: Path) -> None:
    """Stopped a second time before any new range is in, the partial file taken over keeps
    what it had (it was deleted: the first run's bytes were lost)."""
    from snapdir.transfer.cache import partial_of

    part = 5 * MiB
    data = os.urandom(26 * MiB)
    digest = blake3.blake3(data).hexdigest()
    _, final, cfg = await _left_by_a_dead_run(tmp_path, data, part, gate=2 * part)
    remove_stale_temps(final.parent, resumable={digest})
    stuck = await GatedStore.holding(data, serving=False)  # no range comes this time
    # stopped once its ranges are asked for (and held at the gate)
    await _stop_download_once(stuck, data, final, cfg, lambda: bool(stuck.ranges))
    (kept,) = final.parent.iterdir()
    assert partial_of(kept) == (digest, 2 * part)
    assert kept.read_bytes()[:2 * part] == data[:2 * part]


class ShortStore(MemoryStore):
    """Every GET of a range ends early, without an error (a proxy cutting replies short)."""

    async def get(self, key: str, start: int = 0, end: int | None = None
                  ) -> AsyncIterator[bytes]:
        stop = start + 1000 if end is not None else None
        async for chunk in super().get(key, start, stop):
            yield chunk


async def test_a_range_cut_short_every_time_fails_without_saying_retrying(tmp_path: Path
                                                                         ) -> None:
    """The message is the final one, once the retries are used up: it said "; retrying"."""
    data = os.urandom(7 * MiB)
    digest = blake3.blake3(data).hexdigest()
    store = ShortStore()
    await store.put_bytes(object_key(digest), data)
    cfg = TransferConfig(multipart_threshold=6 * MiB, range_size=5 * MiB, retries=2,
                         backoff_base=0.001, backoff_cap=0.01)
    with pytest.raises(StoreUnavailable) as caught:
        await download_object(store, digest, tmp_path / "big.bin", Hasher(), cfg,
                              size_hint=len(data))
    message = str(caught.value)
    assert "truncated body" in message
    assert "retrying" not in message
    assert message.endswith("run the command again")

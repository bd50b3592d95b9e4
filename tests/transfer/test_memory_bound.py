"""Objects below the multipart threshold are held whole while they are sent: push and sync
hold those above the small-object limit within a budget of bytes, not one per job."""

from __future__ import annotations

import os
from collections.abc import AsyncIterable
from pathlib import Path

import anyio
import pytest

from snapdir.stores.base import Chunk
from snapdir.stores.memory import MemoryStore
from snapdir.transfer.config import TransferConfig
from snapdir.transfer.push import push
from snapdir.transfer.sync import sync

pytestmark = pytest.mark.anyio
MiB = 1024 * 1024
#: 8 jobs, whole objects above 1 MiB share 8 MiB: two 3 MiB objects at a time, not 8
CFG = TransferConfig(jobs=8, small_object_limit=MiB, multipart_threshold=64 * MiB)


class HeldStore(MemoryStore):
    """Records the most object bytes being written at once."""

    def __init__(self) -> None:
        super().__init__()
        self.held = 0
        self.most = 0

    async def _hold(self, n: int) -> None:
        self.held += n
        self.most = max(self.most, self.held)
        await anyio.sleep(0.02)
        self.held -= n

    async def put_bytes(self, key: str, data: bytes) -> None:
        if key.startswith(".objects/"):
            await self._hold(len(data))
        await super().put_bytes(key, data)

    async def put(self, key: str, chunks: AsyncIterable[Chunk], size: int) -> None:
        await self._hold(size)
        await super().put(key, chunks, size)


def _files(root: Path, n: int, size: int) -> None:
    root.mkdir()
    for i in range(n):
        (root / f"f{i}").write_bytes(os.urandom(size))


async def test_push_holds_objects_below_the_threshold_within_a_budget(tmp_path: Path
                                                                     ) -> None:
    _files(tmp_path / "src", 12, 3 * MiB)
    store = HeldStore()
    r = await push(tmp_path / "src", store, config=CFG, progress="off")
    assert r.objects_sent == 12
    assert store.most <= 8 * MiB  # it was 8 x 3 MiB, one object per job


async def test_sync_holds_objects_below_the_threshold_within_a_budget(tmp_path: Path
                                                                     ) -> None:
    _files(tmp_path / "src", 12, 3 * MiB)
    src = MemoryStore()
    sid = (await push(tmp_path / "src", src, config=CFG, progress="off")).id
    dst = HeldStore()
    r = await sync(sid, src, dst, config=CFG, progress="off")
    assert r.objects_sent == 12
    assert dst.most <= 8 * MiB


class WholeReads(MemoryStore):
    """Records the largest object read whole (``get_bytes``; ``get_small`` reads at most
    its limit, as S3's does)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    async def get_bytes(self, key: str) -> bytes:
        data = await super().get_bytes(key)
        if key.startswith(".objects/"):
            self.largest = max(self.largest, len(data))
        return data

    async def get_small(self, key: str, limit: int) -> bytes | None:
        data = await super().get_bytes(key)
        return data if len(data) <= limit else None


async def test_sync_streams_a_followed_symlinks_large_object(tmp_path: Path) -> None:
    # the manifest gives a followed symlink the link's own size (a few bytes): its
    # object, 3 MiB here, was read whole into memory, however large it was
    _files(tmp_path / "big", 1, 3 * MiB)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "link").symlink_to(tmp_path / "big" / "f0")
    src = WholeReads()
    sid = (await push(tmp_path / "src", src, config=CFG, progress="off")).id
    dst = MemoryStore()
    r = await sync(sid, src, dst, config=CFG, progress="off")
    assert (r.objects_sent, r.bytes_sent) == (1, 3 * MiB)
    assert src.largest <= CFG.small_object_limit
    assert dst.objects == src.objects

"""FileStore: atomic puts, ranges, listing, errors."""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from snapdir.errors import AccessDenied, ObjectNotFound, StoreError, UsageError
from snapdir.stores import open_store
from snapdir.stores.base import Store, object_key
from snapdir.stores.file import TMP_PREFIX, FileStore

pytestmark = pytest.mark.anyio

KEY = object_key("49dc870df1de7fd60794cebce449f5ccdae575affaa67a24b62acb03e039db92")


async def chunks_of(data: bytes, step: int = 1000, fail_after: int | None = None
                    ) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        if fail_after is not None and i >= fail_after:
            raise RuntimeError("source changed")
        yield data[i:i + step]


def temps(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TMP_PREFIX)]


async def test_round_trip(tmp_path: Path) -> None:
    st = FileStore(tmp_path / "st")
    assert isinstance(st, Store)
    assert await st.head(KEY) is None
    await st.put_bytes(KEY, b"foo\n")
    assert st.path_of(KEY).read_bytes() == b"foo\n"
    assert await st.head(KEY) == 4
    assert await st.get_bytes(KEY) == b"foo\n"
    assert b"".join([c async for c in st.get(KEY)]) == b"foo\n"
    await st.delete(KEY)
    assert await st.head(KEY) is None
    await st.delete(KEY)
    await st.aclose()


async def test_streamed_put_and_ranges(tmp_path: Path) -> None:
    st = FileStore(tmp_path, fsync=True)
    data = os.urandom(3 * 1024 * 1024 + 5)
    await st.put(KEY, chunks_of(data, 100_000), len(data))
    assert await st.get_bytes(KEY) == data
    assert b"".join([c async for c in st.get(KEY, 10, 2_000_000)]) == data[10:2_000_000]
    assert b"".join([c async for c in st.get(KEY, 3_000_000)]) == data[3_000_000:]
    assert [c async for c in st.get(KEY, 7, 7)] == []
    assert temps(tmp_path) == []


async def test_failed_put_leaves_nothing(tmp_path: Path) -> None:
    st = FileStore(tmp_path)
    data = os.urandom(10_000)
    with pytest.raises(RuntimeError, match="source changed"):
        await st.put(KEY, chunks_of(data, fail_after=5000), len(data))
    with pytest.raises(StoreError, match="source changed"):
        await st.put(KEY, chunks_of(data), len(data) + 1)
    assert not st.path_of(KEY).exists()
    assert temps(tmp_path) == []


async def test_cancelled_put_leaves_nothing(tmp_path: Path) -> None:
    st = FileStore(tmp_path)

    async def slow() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 1000
            await anyio.sleep(0.01)

    with anyio.move_on_after(0.1):
        await st.put(KEY, slow(), 10**9)
    assert not st.path_of(KEY).exists()
    assert temps(tmp_path) == []


async def test_put_replaces_atomically(tmp_path: Path) -> None:
    st = FileStore(tmp_path)
    await st.put_bytes(KEY, b"old")
    await st.put(KEY, chunks_of(b"new!"), 4)
    assert await st.get_bytes(KEY) == b"new!"


async def test_list(tmp_path: Path) -> None:
    st = FileStore(tmp_path, list_chunk=2)
    keys = [object_key(f"{i:03d}" + "a" * 61) for i in range(5)]
    for k in [*keys, ".manifests/abc/def/ghi/x"]:
        await st.put_bytes(k, b"x")
    (st.path_of(keys[0]).parent / f"{TMP_PREFIX}junk").write_bytes(b"partial")
    got = [k async for chunk in st.list(".objects/") for k in chunk]
    assert sorted(got) == keys
    assert [k async for chunk in st.list(".objects/001") for k in chunk] == [keys[1]]
    assert [c async for c in st.list("nothing/")] == []
    assert len([k async for chunk in st.list("") for k in chunk]) == 6


async def test_missing_key(tmp_path: Path) -> None:
    st = FileStore(tmp_path)
    with pytest.raises(ObjectNotFound) as info:
        await st.get_bytes(KEY)
    assert info.value.key == KEY
    assert KEY in str(info.value)
    with pytest.raises(ObjectNotFound):
        async for _ in st.get(KEY):
            pass


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file modes")
async def test_permission_denied(tmp_path: Path) -> None:
    st = FileStore(tmp_path)
    await st.put_bytes(KEY, b"x")
    st.path_of(KEY).chmod(0)
    try:
        with pytest.raises(AccessDenied):
            await st.get_bytes(KEY)
    finally:
        st.path_of(KEY).chmod(0o644)


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "./a"])
def test_bad_keys(tmp_path: Path, key: str) -> None:
    with pytest.raises(StoreError):
        FileStore(tmp_path).path_of(key)


def test_open_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    st = open_store("rel/dir")
    assert isinstance(st, FileStore)
    assert st.root == tmp_path / "rel/dir"
    st2 = open_store(f"file://{tmp_path}/x")
    assert isinstance(st2, FileStore)
    assert st2.root == tmp_path / "x"
    assert st2.uri == f"file://{tmp_path}/x"
    with pytest.raises(UsageError, match=r"unknown store scheme 'gs' in 'gs://x': use s3://"):
        open_store("gs://x")
    with pytest.raises(UsageError):
        open_store("file://host/x")
    with pytest.raises(UsageError):
        open_store("s3://")


def test_permission_error_maps_to_access_denied(tmp_path: Path) -> None:
    err = FileStore(tmp_path)._error(PermissionError(13, "Permission denied"), KEY)
    assert isinstance(err, AccessDenied)
    assert err.key == KEY
    assert KEY in str(err)


@pytest.mark.parametrize(("code", "advice"), [
    (errno.ENOSPC, "free space on the store's filesystem"),
    (errno.EDQUOT, "free space on the store's filesystem"),
    (errno.EROFS, "the store must be a writable directory")])
def test_a_full_or_read_only_store_says_what_to_do(tmp_path: Path, code: int,
                                                  advice: str) -> None:
    """`snapdir push --store DIR` on a full disk or a read-only mount: the message names
    the key and says what to do (it was "cannot access KEY in URI: No space left on
    device", and nothing more)."""
    err = FileStore(tmp_path)._error(OSError(code, os.strerror(code)), KEY)
    assert str(err).startswith(f"cannot write {KEY} in {FileStore(tmp_path).uri}: "
                               f"{os.strerror(code)}; {advice}")
    assert err.key == KEY
    assert not err.retryable


async def test_get_small_reads_whole_small_objects_only(tmp_path: Path) -> None:
    st = FileStore(tmp_path / "s")
    await st.put_bytes("k/a", b"x" * 100)
    await st.put_bytes("k/big", b"y" * (2 * 1024 * 1024))
    assert await st.get_small("k/a", 100) == b"x" * 100
    assert await st.get_small("k/a", 99) is None
    assert await st.get_small("k/big", 4 * 1024 * 1024) is None  # above the batched size
    with pytest.raises(ObjectNotFound):
        await st.get_small("k/missing", 100)

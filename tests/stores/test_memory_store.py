"""MemoryStore: the fake the pipeline tests drive."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from snapdir.errors import ObjectNotFound, StoreError, StoreUnavailable
from snapdir.stores.base import Store
from snapdir.stores.memory import MemoryStore

pytestmark = pytest.mark.anyio


async def chunks_of(data: bytes, fail: bool = False) -> AsyncIterator[bytes]:
    yield data[:3]
    if fail:
        raise RuntimeError("source changed")
    yield data[3:]


async def test_round_trip_and_counters() -> None:
    st = MemoryStore()
    assert isinstance(st, Store)
    assert await st.head("k") is None
    await st.put_bytes("k", b"hello")
    await st.put("a/b", chunks_of(b"streamed"), 8)
    assert await st.head("k") == 5
    assert await st.get_bytes("a/b") == b"streamed"
    assert b"".join([c async for c in st.get("a/b", 2, 5)]) == b"rea"
    assert [k async for c in st.list("a/") for k in c] == ["a/b"]
    await st.delete("k")
    assert st.objects == {"a/b": b"streamed"}
    assert st.bytes_put == 13
    assert st.requests == {"head": 2, "put": 2, "get": 2, "list": 1, "delete": 1}
    await st.aclose()
    assert st.closed


async def test_failed_put_stores_nothing() -> None:
    st = MemoryStore()
    with pytest.raises(RuntimeError):
        await st.put("k", chunks_of(b"abcdef", fail=True), 6)
    with pytest.raises(StoreError, match="source changed"):
        await st.put("k", chunks_of(b"abcdef"), 7)
    assert st.objects == {}
    assert st.open_puts == 0


async def test_missing() -> None:
    st = MemoryStore()
    with pytest.raises(ObjectNotFound):
        await st.get_bytes("k")
    with pytest.raises(ObjectNotFound):
        async for _ in st.get("k"):
            pass


async def test_scripted_faults_and_slowness() -> None:
    seen: list[tuple[str, str]] = []

    async def fault(op: str, key: str) -> None:
        seen.append((op, key))
        if op == "put" and key == "bad":
            raise StoreUnavailable("scripted", key=key)
        if op == "get":
            await anyio.sleep(10)

    st = MemoryStore(fault=fault)
    await st.put_bytes("good", b"x")
    with pytest.raises(StoreUnavailable):
        await st.put_bytes("bad", b"x")
    with anyio.move_on_after(0.05) as scope:
        await st.get_bytes("good")
    assert scope.cancelled_caught
    assert seen == [("put", "good"), ("put", "bad"), ("get", "good")]
    assert "bad" not in st.objects


async def test_sync_fault_and_cancelled_put() -> None:
    def fault(op: str, key: str) -> None:
        if op == "head":
            raise StoreUnavailable("down", key=key)

    st = MemoryStore(fault=fault)
    with pytest.raises(StoreUnavailable):
        await st.head("k")

    async def slow() -> AsyncIterator[bytes]:
        yield b"x"
        await anyio.sleep(10)
        yield b"y"

    with anyio.move_on_after(0.05):
        await st.put("k", slow(), 2)
    assert st.open_puts == 0
    assert st.objects == {}

"""An in-process store for tests: a dict, request counters and scripted faults.

``fault(op, key)`` runs before every request (``op`` is ``head``, ``get``, ``put``,
``list`` or ``delete``; ``put_bytes``/``get_bytes`` count as ``put``/``get``). It may raise
a ``StoreError`` to fail the request, or be async and sleep to make it slow::

    async def flaky(op: str, key: str) -> None:
        if op == "put" and key.endswith("ff"):
            raise StoreUnavailable("scripted", key=key)
        await anyio.sleep(0.01)

    store = MemoryStore(fault=flaky)
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

from ..errors import ObjectNotFound, StoreError
from .base import Chunk

Fault = Callable[[str, str], Awaitable[None] | None]


class MemoryStore:
    """A ``Store`` held in a dict; ``objects`` maps key -> bytes."""

    def __init__(self, uri: str = "memory://", *, fault: Fault | None = None,
                 list_chunk: int = 1000) -> None:
        self.uri = uri
        self.objects: dict[str, bytes] = {}
        self.fault = fault
        self.list_chunk = list_chunk
        #: requests started, per op
        self.requests: Counter[str] = Counter()
        #: bytes of completed puts
        self.bytes_put = 0
        #: puts started and not yet finished (0 again after any cancellation)
        self.open_puts = 0
        self.closed = False

    async def _enter(self, op: str, key: str) -> None:
        self.requests[op] += 1
        if self.fault is not None:
            result = self.fault(op, key)
            if inspect.isawaitable(result):
                await result

    def _missing(self, key: str) -> ObjectNotFound:
        return ObjectNotFound(f"{key} is not in {self.uri}", key=key)

    async def head(self, key: str) -> int | None:
        await self._enter("head", key)
        data = self.objects.get(key)
        return None if data is None else len(data)

    async def get(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[Chunk]:
        await self._enter("get", key)
        data = self.objects.get(key)
        if data is None:
            raise self._missing(key)
        body = data[start:end]
        step = 64 * 1024
        for i in range(0, len(body), step):
            yield body[i:i + step]

    async def get_bytes(self, key: str) -> bytes:
        await self._enter("get", key)
        data = self.objects.get(key)
        if data is None:
            raise self._missing(key)
        return data

    async def get_small(self, key: str, limit: int) -> bytes | None:
        data = await self.get_bytes(key)
        return data if len(data) <= limit else None

    async def put(self, key: str, chunks: AsyncIterable[Chunk], size: int) -> None:
        self.open_puts += 1
        try:
            await self._enter("put", key)
            buf = bytearray()
            async for chunk in chunks:
                buf += chunk
            if len(buf) != size:
                raise StoreError(f"put of {key} to {self.uri} got {len(buf)} bytes, expected "
                                 f"{size}: the source changed while it was read", key=key)
            self._store(key, bytes(buf))
        finally:
            self.open_puts -= 1

    async def put_bytes(self, key: str, data: bytes) -> None:
        await self._enter("put", key)
        self._store(key, bytes(data))

    def _store(self, key: str, data: bytes) -> None:
        self.objects[key] = data
        self.bytes_put += len(data)

    async def list(self, prefix: str) -> AsyncIterator[list[str]]:
        await self._enter("list", prefix)
        keys = sorted(k for k in self.objects if k.startswith(prefix))
        for i in range(0, len(keys), self.list_chunk):
            yield keys[i:i + self.list_chunk]

    async def delete(self, key: str) -> None:
        await self._enter("delete", key)
        self.objects.pop(key, None)

    async def aclose(self) -> None:
        self.closed = True

"""The bounded stage every transfer verb runs: N workers over a stream of items."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sized
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

_T = TypeVar("_T")


async def for_each(items: Iterable[_T] | AsyncIterable[_T],
                   fn: Callable[[_T], Awaitable[None]], workers: int) -> None:
    """Await ``fn(item)`` for every item, at most ``workers`` at a time.

    Items are taken from ``items`` only as workers free up (a stream of capacity
    ``workers``: backpressure, so a lazy source stays lazy); the first exception cancels
    the other workers and propagates.
    """
    if isinstance(items, Sized):
        workers = min(workers, len(items))
    workers = max(1, workers)
    send, recv = anyio.create_memory_object_stream[_T](workers)

    async def worker(stream: MemoryObjectReceiveStream[_T]) -> None:
        async with stream:
            async for item in stream:
                await fn(item)

    async with anyio.create_task_group() as tg:
        for _ in range(workers):
            tg.start_soon(worker, recv.clone())
        recv.close()
        async with send:
            if isinstance(items, AsyncIterable):
                async for item in items:
                    await send.send(item)
            else:
                for item in items:
                    await send.send(item)

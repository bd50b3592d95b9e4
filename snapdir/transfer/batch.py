"""Small blocking calls gathered into one worker-thread hop per batch.

A push or pull of small files makes one blocking call per file (read and verify; write and
rename). Handing each to a thread separately makes the event loop and the worker threads
trade the GIL a hundred times per file: a 20,000 x 1 KiB pull spent more time in the kernel
(futex) than anything else. ``Batcher.call`` queues the call; whichever caller finds no
batch running becomes the runner and executes everything queued, up to ``size`` calls per
hop, then hands each caller its own result or exception. If the runner is cancelled, the
next waiter takes over: no call is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .threads import run_sync

_R = TypeVar("_R")


def _run_all(fn: Callable[..., Any], batch: list[tuple[Any, ...]]) -> list[Any]:
    out: list[Any] = []
    for args in batch:
        try:
            out.append(fn(*args))
        except Exception as exc:  # noqa: BLE001 - handed to the caller that made this call
            out.append(_Failed(exc))
    return out


class _Failed:
    __slots__ = ("exc",)

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


class Batcher(Generic[_R]):
    def __init__(self, fn: Callable[..., _R], size: int = 64) -> None:
        self._fn = fn
        self._size = size
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[_R]]] = []
        self._busy = False
        self._idle = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def call(self, *args: Any) -> _R:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or reused under a new event loop
            self._loop, self._queue, self._busy = loop, [], False
            self._idle = asyncio.Event()
        fut: asyncio.Future[_R] = loop.create_future()
        self._queue.append((args, fut))
        while not fut.done():
            if self._busy:
                self._idle.clear()
                await self._idle.wait()
                continue
            self._busy = True
            try:
                while self._queue:
                    batch, self._queue = self._queue[:self._size], self._queue[self._size:]
                    results = await run_sync(_run_all, self._fn, [a for a, _ in batch])
                    for (_, f), r in zip(batch, results, strict=True):
                        if f.done():
                            continue
                        if isinstance(r, _Failed):
                            f.set_exception(r.exc)
                        else:
                            f.set_result(r)
            finally:
                self._busy = False
                self._idle.set()
        return fut.result()

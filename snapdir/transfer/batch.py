"""Small blocking calls gathered into one worker-thread hop per batch.

A push or pull of small files makes one blocking call per file (read and verify; write and
rename). Handing each to a thread separately makes the event loop and the worker threads
trade the GIL a hundred times per file: a 20,000 x 1 KiB pull spent more time in the kernel
(futex) than anything else. ``Batcher.call`` queues the call; whichever caller finds no
batch running becomes the runner and executes what is queued, up to ``size`` calls per
hop, handing each caller its own result or exception as its batch ends (each caller
waits on its own result, so it goes on at once). The runner runs batches until its own
call is done; if calls are still queued then, or it is cancelled, it hands the runner's
part to the first of them: no call is lost, and no caller is held back running the
others' calls (before, every caller waited for the queue to run dry, so under a steady
flow of calls finished objects waited on later ones).
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


#: the result handed to a queued caller whose turn it is to run the queue (its own call
#: was taken out of the queue for it, so no other runner skips it meanwhile)
_TURN: Any = object()


class Batcher(Generic[_R]):
    def __init__(self, fn: Callable[..., _R], size: int = 64) -> None:
        self._fn = fn
        self._size = size
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._busy = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def call(self, *args: Any) -> _R:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # first use, or reused under a new event loop
            self._loop, self._queue, self._busy = loop, [], False
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.append((args, fut))
        while True:
            if not self._busy:
                await self._run(fut)
            try:
                result = await fut  # the call's own exception, if it raised
            except BaseException:
                if _holds_turn(fut):  # cancelled as its turn came: the next one's
                    self._hand_over()
                raise
            if result is not _TURN:
                return result  # type: ignore[no-any-return]
            fut = loop.create_future()
            self._queue.insert(0, (args, fut))  # our call, back first in line

    async def _run(self, mine: asyncio.Future[Any]) -> None:
        """Run queued batches until ``mine`` is done; then hand over to the next caller."""
        self._busy = True
        try:
            while self._queue and not mine.done():
                batch, self._queue = self._queue[:self._size], self._queue[self._size:]
                results = await run_sync(_run_all, self._fn, [a for a, _ in batch])
                for (_, f), r in zip(batch, results, strict=True):
                    if f.done():
                        continue  # its caller was cancelled
                    if isinstance(r, _Failed):
                        f.set_exception(r.exc)
                    else:
                        f.set_result(r)
        finally:
            self._busy = False
            self._hand_over()

    def _hand_over(self) -> None:
        """Give the turn to run the queue to the first queued caller still waiting (the
        calls of callers cancelled meanwhile are dropped, not run)."""
        while self._queue:
            _, f = self._queue.pop(0)
            if not f.done():
                f.set_result(_TURN)
                return


def _holds_turn(fut: asyncio.Future[Any]) -> bool:
    return (fut.done() and not fut.cancelled() and fut.exception() is None
            and fut.result() is _TURN)

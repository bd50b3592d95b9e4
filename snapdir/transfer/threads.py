"""Blocking calls (file reads and writes, hashing) handed to worker threads, cheaply.

``anyio.to_thread.run_sync`` costs ~70 µs of event-loop time per call on this machine
(backend detection, run vars, a limiter, a cancel scope per call); a push or pull of small
files makes one or two such calls per file, and with 32 in flight the event loop, not the
disk or the network, was the bottleneck (py-spy: a 20,000-file push to a file store spent
most of the loop thread in that machinery). ``loop.run_in_executor`` on one shared pool
costs ~25 µs. Semantics match anyio's default: a call, once started, runs to completion;
a cancelled caller waits for it (shielded), so no thread outlives the task that started it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import anyio

from .. import settings

_T = TypeVar("_T")
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _lock:
            if _pool is None:
                # shared by every transfer: bounds concurrent blocking calls
                _pool = ThreadPoolExecutor(settings.io_threads(),
                                           thread_name_prefix="snapdir-io")
    return _pool


async def run_sync(fn: Callable[..., _T], *args: object) -> _T:
    """``fn(*args)`` in a worker thread."""
    fut = asyncio.get_running_loop().run_in_executor(_executor(), fn, *args)
    with anyio.CancelScope(shield=True):
        result = await fut
    return result


async def run_interruptible(fn: Callable[[threading.Event], _T]) -> _T:
    """``fn(stop)`` in a worker thread, for a long loop of blocking calls (a checkout of
    many files) that calls ``errors.check_stop(stop)`` between items: cancelled, the caller sets
    ``stop`` and waits for ``fn`` to be done, so the work stops after the item in hand
    (each left whole), not at the end of the loop."""
    stop = threading.Event()
    return await run_stoppable(lambda: fn(stop), stop.set)


async def run_stoppable(fn: Callable[[], _T], stop: Callable[[], None]) -> _T:
    """``fn()`` in a worker thread, for calls that block on the network: cancelled, the
    caller calls ``stop()`` (which must make ``fn`` return soon, e.g. by shutting its
    socket) and waits for ``fn`` to be done, so no thread outlives the task here either."""
    fut = asyncio.get_running_loop().run_in_executor(_executor(), fn)
    try:
        return await asyncio.shield(fut)
    except BaseException:
        if not fut.done():
            stop()
            with anyio.CancelScope(shield=True):
                await asyncio.wait([fut])
            if not fut.cancelled():
                fut.exception()  # retrieved: the caller's own exception goes on instead
        raise

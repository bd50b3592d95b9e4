"""Batcher: many small blocking calls, few thread hops, every caller gets its own result."""

from __future__ import annotations

import asyncio
import threading

import anyio
import pytest

from snapdir.transfer.batch import Batcher

pytestmark = pytest.mark.anyio


async def test_each_caller_gets_its_result_or_its_error_in_few_hops() -> None:
    threads: list[int] = []

    def square(x: int) -> int:
        threads.append(threading.get_ident())
        if x == 13:
            raise OSError(f"unlucky {x}")
        return x * x

    b: Batcher[int] = Batcher(square, size=16)
    got: dict[int, object] = {}

    async def one(x: int) -> None:
        try:
            got[x] = await b.call(x)
        except OSError as exc:
            got[x] = str(exc)

    async with anyio.create_task_group() as tg:
        for x in range(100):
            tg.start_soon(one, x)
    assert got == {x: (f"unlucky {x}" if x == 13 else x * x) for x in range(100)}
    assert threading.get_ident() not in threads  # ran in worker threads
    assert len(threads) == 100


async def test_a_cancelled_runner_hands_over_and_no_call_is_lost() -> None:
    started = threading.Event()
    release = threading.Event()
    done: list[int] = []

    def work(x: int) -> int:
        if x == 0:
            started.set()
            release.wait(5)
        done.append(x)
        return x

    b: Batcher[int] = Batcher(work, size=1)
    results: dict[int, int] = {}

    async def one(x: int) -> None:
        results[x] = await b.call(x)

    runner_scope = anyio.CancelScope()
    async with anyio.create_task_group() as outer:
        outer.start_soon(_in_scope, runner_scope, one, 0)
        await anyio.to_thread.run_sync(started.wait, 5)
        for x in (1, 2, 3):
            outer.start_soon(one, x)
        await anyio.sleep(0.05)
        runner_scope.cancel()  # the runner (caller 0) is cancelled mid-batch
        release.set()
    assert sorted(done) == [0, 1, 2, 3]
    assert {x: results[x] for x in (1, 2, 3)} == {1: 1, 2: 2, 3: 3}


async def _in_scope(scope: anyio.CancelScope, fn, x: int) -> None:  # type: ignore[no-untyped-def]
    with scope:
        await fn(x)


async def test_a_caller_goes_on_when_its_call_is_done_not_when_the_queue_is() -> None:
    """The runner returns as soon as its own call is done, handing the queue to the next
    caller: a finished object does not wait for calls queued after it (before, every
    caller waited for the queue to run dry)."""
    started, release = threading.Event(), threading.Event()
    a_returned = threading.Event()
    waited: dict[str, bool] = {}

    def work(x: str) -> str:
        if x == "a":
            started.set()
            release.wait(5)
        else:  # queued behind "a": runs only once a's caller has its result
            waited[x] = a_returned.wait(2)
        return x.upper()

    b: Batcher[str] = Batcher(work, size=1)
    got: dict[str, str] = {}

    async def one(x: str) -> None:
        got[x] = await b.call(x)
        if x == "a":
            a_returned.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "a")
        await anyio.to_thread.run_sync(started.wait, 5)
        for x in ("b", "c"):
            tg.start_soon(one, x)
        await anyio.sleep(0.05)
        release.set()
    assert got == {"a": "A", "b": "B", "c": "C"}
    assert waited == {"b": True, "c": True}


async def test_a_caller_cancelled_as_its_turn_comes_passes_it_on() -> None:
    """The next in line, cancelled just as the runner hands it the queue (before it
    could run), passes the turn on: the calls behind it still run, nothing hangs."""
    release = threading.Event()
    started = threading.Event()

    def work(x: int) -> int:
        if x == 0:
            started.set()
            release.wait(5)
        return x

    b: Batcher[int] = Batcher(work, size=1)
    results: dict[int, int] = {}
    tasks: dict[int, asyncio.Task[None]] = {}

    async def one(x: int) -> None:
        results[x] = await b.call(x)
        if x == 0:  # the runner has just handed the turn to 1, which has not run yet
            tasks[1].cancel()

    with anyio.fail_after(5):
        tasks[0] = asyncio.create_task(one(0))
        await anyio.to_thread.run_sync(started.wait, 5)
        tasks[1] = asyncio.create_task(one(1))
        await anyio.sleep(0.02)
        tasks[2] = asyncio.create_task(one(2))
        await anyio.sleep(0.02)
        release.set()
        await asyncio.wait(tasks.values())
    assert tasks[1].cancelled()
    assert results == {0: 0, 2: 2}

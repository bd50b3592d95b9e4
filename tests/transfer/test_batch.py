"""Batcher: many small blocking calls, few thread hops, every caller gets its own result."""

from __future__ import annotations

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

"""The history's own requests (records written by a push, read by ``revisions`` and
``ancestors``) are retried like every transfer request: one passing fault must not fail a
push after all its objects and its manifest are in."""

from __future__ import annotations

import pytest

from snapdir import history
from snapdir.errors import StoreUnavailable
from snapdir.stores.memory import MemoryStore

pytestmark = pytest.mark.anyio

SID = "49dc870df1de7fd60794cebce449f5ccdae575affaa67a24b62acb03e039db92"


def flaky_once() -> tuple[MemoryStore, list[tuple[str, str]]]:
    """A store whose every request fails once (a reset, a 503), then succeeds."""
    failed: list[tuple[str, str]] = []

    def fault(op: str, key: str) -> None:
        if (op, key) not in failed:
            failed.append((op, key))
            raise StoreUnavailable(f"scripted fault on {op} {key}", key=key)

    return MemoryStore(fault=fault), failed


async def test_history_requests_survive_a_passing_fault(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setenv("SNAPDIR_RETRIES", "3")
    store, failed = flaky_once()
    rev = history.new_revision(SID, "imagenet", store.uri, [], "/data/imagenet", 3, 30)
    await history.record_in_store(store, rev)
    assert len([k for k in store.objects if k.startswith(history.PREFIX)]) == 2
    assert await history.revisions_in_store(store, "imagenet") == [SID]
    [back] = await history.records_in_store(store, SID)
    assert (back.id, back.name, back.files) == (SID, "imagenet", 3)
    # every one of those requests failed once first
    assert {op for op, _ in failed} == {"put", "list", "get"}
    assert store.requests["put"] == 4


async def test_history_gives_up_after_snapdir_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPDIR_RETRIES", "1")
    store, _ = flaky_once()
    rev = history.new_revision(SID, "imagenet", store.uri, [], "/data/imagenet", 3, 30)
    with pytest.raises(StoreUnavailable):
        await history.record_in_store(store, rev)
    assert store.requests["put"] == 1

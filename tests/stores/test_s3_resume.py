"""A multipart upload left incomplete is resumed by the next put of the same key, and stale
ones are cleaned (SeaweedFS on loopback, requests seen through tests/faultproxy.py)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from snapdir.errors import StoreError
from snapdir.stores import s3
from snapdir.stores.base import object_key
from snapdir.stores.s3 import MiB, S3Store

if TYPE_CHECKING:
    from conftest import SeaweedFS

pytestmark = [pytest.mark.anyio, pytest.mark.s3]

KEY = object_key("49dc870df1de7fd60794cebce449f5ccdae575affaa67a24b62acb03e039db92")
PART = 5 * MiB


@pytest.fixture
def proxy(s3_env: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> Any:
    import importlib.util
    import sys
    from pathlib import Path

    name = "_snapdir_faultproxy"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).resolve().parent.parent / "faultproxy.py")
        assert spec is not None
        assert spec.loader is not None
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    p = sys.modules[name].FaultProxy(s3_env.endpoint, rate=0.0).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", p.endpoint)
    try:
        yield p
    finally:
        p.stop()


_made: list[S3Store] = []


@pytest.fixture(autouse=True)
async def _close_stores() -> AsyncIterator[None]:
    yield
    while _made:
        await _made.pop().aclose()  # its kept-alive connections too


def make(sw: SeaweedFS, label: str) -> S3Store:
    bucket, _, prefix = sw.unique_uri(label).removeprefix("s3://").partition("/")
    st = S3Store(bucket, prefix, multipart_threshold=PART, part_size=PART,
                 max_concurrency=2)
    _made.append(st)
    return st


async def chunks_of(data: bytes, step: int = 3 * MiB) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        yield data[i:i + step]


def client(sw: SeaweedFS) -> Any:
    from aiobotocore.session import get_session

    return get_session().create_client(
        "s3", endpoint_url=sw.endpoint, region_name=sw.region,
        aws_access_key_id=sw.access_key, aws_secret_access_key=sw.secret_key)


async def start_upload(sw: SeaweedFS, full: str, parts: dict[int, bytes]) -> str:
    """A multipart upload of ``full`` left incomplete, holding ``parts``."""
    async with client(sw) as c:
        up = (await c.create_multipart_upload(Bucket=sw.bucket, Key=full))["UploadId"]
        for n, body in parts.items():
            await c.upload_part(Bucket=sw.bucket, Key=full, UploadId=up, PartNumber=n,
                                Body=body)
        return str(up)


async def uploads_of(sw: SeaweedFS, full: str) -> list[str]:
    async with client(sw) as c:
        r = await c.list_multipart_uploads(Bucket=sw.bucket, Prefix=full)
        return [u["UploadId"] for u in r.get("Uploads", []) if u["Key"] == full]


def parts_sent(proxy: Any) -> list[int]:
    """The part numbers uploaded through the proxy, in order."""
    return [int(parse_qs(urlsplit(target).query)["partNumber"][0])
            for method, target in proxy.log
            if method == "PUT" and "partNumber=" in target]


def split(data: bytes) -> list[bytes]:
    return [data[i:i + PART] for i in range(0, len(data), PART)]


async def test_a_cut_upload_is_resumed_with_only_its_missing_parts(
        s3_env: SeaweedFS, proxy: Any) -> None:
    st = make(s3_env, "resume")
    full = f"{st.prefix}/{KEY}"
    data = os.urandom(3 * PART + 123)  # 4 parts, the last one short
    parts = split(data)
    await start_upload(s3_env, full, {1: parts[0], 2: parts[1]})  # cut after two parts
    await st.put(KEY, chunks_of(data), len(data))
    assert sorted(parts_sent(proxy)) == [3, 4]
    assert await st.get_bytes(KEY) == data
    assert await uploads_of(s3_env, full) == []


async def test_a_part_holding_other_bytes_is_uploaded_again(
        s3_env: SeaweedFS, proxy: Any) -> None:
    st = make(s3_env, "resume-wrong")
    full = f"{st.prefix}/{KEY}"
    data = os.urandom(3 * PART + 7)
    parts = split(data)
    wrong = bytes(b ^ 0xFF for b in parts[0][:16]) + parts[0][16:]  # same size, other bytes
    await start_upload(s3_env, full, {1: wrong, 2: parts[1], 3: parts[2]})
    await st.put(KEY, chunks_of(data, PART), len(data))
    assert sorted(parts_sent(proxy)) == [1, 4]
    assert await st.get_bytes(KEY) == data
    assert await uploads_of(s3_env, full) == []


async def test_a_stale_upload_of_another_part_size_is_aborted_a_young_one_kept(
        s3_env: SeaweedFS, proxy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    st = make(s3_env, "resume-stale")
    full = f"{st.prefix}/{KEY}"
    data = os.urandom(3 * PART + 11)
    other = data[:PART + MiB]  # a part of 6 MiB: another plan than 5 MiB parts
    old = await start_upload(s3_env, full, {1: other})
    await anyio.sleep(3)
    young = await start_upload(s3_env, full, {1: other})
    monkeypatch.setattr(s3, "STALE_UPLOAD", timedelta(seconds=2), raising=False)
    await st.put(KEY, chunks_of(data), len(data))
    assert sorted(parts_sent(proxy)) == [1, 2, 3, 4]  # nothing to resume: all of it
    assert await st.get_bytes(KEY) == data
    left = await uploads_of(s3_env, full)
    assert old not in left
    assert left == [young]  # perhaps another process's, uploading right now
    async with client(s3_env) as c:
        await c.abort_multipart_upload(Bucket=s3_env.bucket, Key=full, UploadId=young)


async def test_of_two_resumable_uploads_the_fuller_is_resumed_the_stale_other_aborted(
        s3_env: SeaweedFS, proxy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    st = make(s3_env, "resume-two")
    full = f"{st.prefix}/{KEY}"
    data = os.urandom(3 * PART + 11)
    parts = split(data)
    lesser = await start_upload(s3_env, full, {1: parts[0]})
    await anyio.sleep(3)
    await start_upload(s3_env, full, {1: parts[0], 2: parts[1], 3: parts[2]})
    monkeypatch.setattr(s3, "STALE_UPLOAD", timedelta(seconds=2), raising=False)
    await st.put(KEY, chunks_of(data), len(data))
    assert parts_sent(proxy) == [4]
    assert await st.get_bytes(KEY) == data
    assert lesser not in await uploads_of(s3_env, full)
    assert await uploads_of(s3_env, full) == []


async def test_a_changed_source_fails_a_resumed_upload_and_aborts_it(
        s3_env: SeaweedFS, proxy: Any) -> None:
    """Every byte, reused parts too, is read from the source: a source shorter than
    promised fails the put, nothing appears at the key, and the upload is gone."""
    st = make(s3_env, "resume-changed")
    full = f"{st.prefix}/{KEY}"
    data = os.urandom(3 * PART + 11)
    parts = split(data)
    await start_upload(s3_env, full, {1: parts[0], 2: parts[1]})
    with pytest.raises(StoreError, match="source changed"):
        await st.put(KEY, chunks_of(data[:-1]), len(data))
    assert await st.head(KEY) is None
    assert await uploads_of(s3_env, full) == []



async def test_a_resumed_upload_cut_again_fails_in_one_line_and_resumes_later(
        s3_env: SeaweedFS, proxy: Any) -> None:
    st = make(s3_env, "resume-again")
    full = f"{st.prefix}/{KEY}"
    data = os.urandom(3 * PART + 5)
    parts = split(data)
    await start_upload(s3_env, full, {1: parts[0]})
    proxy.down_after_parts = 1  # the server goes away again, after one more part
    with pytest.raises(StoreError) as info:
        await st.put(KEY, chunks_of(data), len(data))
    assert info.value.retryable  # the transfer layer tries again: it resumes
    assert "\n" not in str(info.value)
    assert st.uri in str(info.value)
    assert "Traceback" not in str(info.value)
    assert len(await uploads_of(s3_env, full)) == 1  # left to resume, not aborted
    proxy.down = False
    proxy.down_after_parts = None
    seen = len(parts_sent(proxy))
    await st.put(KEY, chunks_of(data), len(data))
    assert len(parts_sent(proxy)) - seen < 3
    assert await st.get_bytes(KEY) == data
    assert await uploads_of(s3_env, full) == []


async def test_uploads_that_may_not_be_listed_mean_a_fresh_upload(
        s3_env: SeaweedFS, proxy: Any) -> None:
    """A policy without s3:ListBucketMultipartUploads: the put starts afresh, silently."""
    st = make(s3_env, "resume-denied")
    full = f"{st.prefix}/{KEY}"
    data = os.urandom(3 * PART + 5)
    left = await start_upload(s3_env, full, {1: split(data)[0]})
    proxy.deny = lambda method, target: method == "GET" and "uploads" in target
    await st.put(KEY, chunks_of(data), len(data))
    assert sorted(parts_sent(proxy)) == [1, 2, 3, 4]
    assert await st.get_bytes(KEY) == data
    assert await uploads_of(s3_env, full) == [left]  # not ours to know of, nor to abort
    async with client(s3_env) as c:
        await c.abort_multipart_upload(Bucket=s3_env.bucket, Key=full, UploadId=left)


async def test_a_fresh_large_put_asks_one_plain_get_and_makes_no_boto_client(
        s3_env: SeaweedFS, proxy: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No upload to resume (the usual case): one signed GET says so, without the
    aiobotocore client (0.4 s of imports the first time) the resume path needs."""
    made: list[int] = []
    real = s3._Boto._new

    async def counted(self: Any) -> Any:
        made.append(1)
        return await real(self)

    monkeypatch.setattr(s3._Boto, "_new", counted)
    st = make(s3_env, "resume-none")
    full = f"{st.prefix}/{KEY}"
    data = os.urandom(2 * PART + 5)
    await st.put(KEY, chunks_of(data), len(data))
    assert await st.get_bytes(KEY) == data
    assert made == []
    listings = [t for m, t in proxy.log if m == "GET" and "uploads" in parse_qs(
        urlsplit(t).query, keep_blank_values=True)]
    assert len(listings) == 1
    # and with an upload of that key left over, the same GET finds it
    writer = await st.range_writer()
    assert writer is not None
    assert await anyio.to_thread.run_sync(writer.uploads_of, KEY) is False
    await start_upload(s3_env, full, {1: data[:PART]})
    assert await anyio.to_thread.run_sync(writer.uploads_of, KEY) is True
    assert await anyio.to_thread.run_sync(writer.uploads_of, KEY + "0") is False
    await st.aclose()


async def test_a_put_whose_upload_another_process_resumed_and_completed_succeeds(
        s3_env: SeaweedFS, proxy: Any) -> None:
    """Two pushes of one dataset at once: the second resumes the first's upload (it cannot
    tell it from one left by a crash) and completes it first. The first's next part then
    gets NoSuchUpload: the object is there, whole, so its put succeeds too, and it aborts
    nobody's upload (one begun since it started may be a third process's, at work)."""
    a = make(s3_env, "resume-race")
    b = S3Store(a.bucket, a.prefix, multipart_threshold=PART, part_size=PART,
                max_concurrency=2)
    _made.append(b)
    full = f"{a.prefix}/{KEY}"
    data = os.urandom(3 * PART + 5)
    parts = split(data)
    asked, go_on = anyio.Event(), anyio.Event()

    async def slow() -> AsyncIterator[bytes]:
        for n, part in enumerate(parts):
            if n == 2:  # a's upload has begun, its first two parts are on their way
                asked.set()
                await go_on.wait()
            yield part

    async def first() -> None:
        await a.put(KEY, slow(), len(data))

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        with anyio.fail_after(30):
            await asked.wait()
        assert len(await uploads_of(s3_env, full)) == 1
        await b.put(KEY, chunks_of(data), len(data))  # resumes a's upload, completes it
        other = await start_upload(s3_env, full, {1: parts[0]})  # a third process's
        go_on.set()
    assert await a.get_bytes(KEY) == data
    assert await uploads_of(s3_env, full) == [other]
    async with client(s3_env) as c:
        await c.abort_multipart_upload(Bucket=s3_env.bucket, Key=full, UploadId=other)

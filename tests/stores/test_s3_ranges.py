"""Ranged GETs on plain sockets (stores/s3ranges.py): signing, errors, faults, stopping."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import blake3
import pytest
from faultproxy import FaultProxy

from snapdir.core.manifest import Hasher
from snapdir.errors import (
    AccessDenied,
    IntegrityError,
    ObjectNotFound,
    StoreError,
    StoreUnavailable,
)
from snapdir.stores.base import object_key
from snapdir.stores.s3 import MiB, S3Store
from snapdir.stores.s3ranges import Connections, RangeWriter, Signer
from snapdir.transfer.config import TransferConfig
from snapdir.transfer.download import download_object
from snapdir.transfer.threads import run_stoppable

if TYPE_CHECKING:
    from conftest import SeaweedFS

pytestmark = [pytest.mark.anyio, pytest.mark.s3]


def make(sw: SeaweedFS, label: str, endpoint: str | None = None) -> S3Store:
    bucket, _, prefix = sw.unique_uri(label).removeprefix("s3://").partition("/")
    return S3Store(bucket, prefix, endpoint=endpoint)


def test_signature_matches_the_aws_documented_example() -> None:
    # "Example: GET Object" in the Amazon S3 Signature Version 4 documentation
    headers = Signer("us-east-1").sign(
        "GET", "examplebucket.s3.amazonaws.com", "/test.txt", {"range": "bytes=0-9"},
        {"access_key_id": "AKIAIOSFODNN7EXAMPLE",
         "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
         "token": None, "expires_at": None},
        datetime(2013, 5, 24, tzinfo=UTC),
        payload="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def test_the_signer_signs_a_query_as_botocore_does() -> None:
    """``uploads_of`` signs a ListMultipartUploads GET itself: the same Authorization as
    botocore's own SigV4 signer gives the same request."""
    from datetime import UTC, datetime
    from unittest import mock

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from snapdir.stores.s3ranges import canonical_query

    when = datetime(2026, 11, 29, 12, 34, 56, tzinfo=UTC)
    query = canonical_query({"uploads": "", "prefix": "p q/.objects/ab~c+d"})
    ours = Signer("eu-west-3").sign(
        "GET", "127.0.0.1:9000", "/bucket", {},
        {"access_key_id": "AKID", "secret_access_key": "SECRET", "token": "TOKEN",
         "expires_at": None}, when, payload=hashlib.sha256(b"").hexdigest(), query=query)
    req = AWSRequest(method="GET", url=f"http://127.0.0.1:9000/bucket?{query}")
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        S3SigV4Auth(Credentials("AKID", "SECRET", "TOKEN"), "s3", "eu-west-3").add_auth(req)
    assert req.headers["X-Amz-Date"] == ours["x-amz-date"]
    assert ours["authorization"] == req.headers["Authorization"]


def _fetch(writer: RangeWriter, key: str, start: int, end: int, path: Path) -> int:
    got = [0]

    def written(n: int) -> None:
        got[0] += n

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        writer.call(key, start, end, fd, written).run()
    finally:
        os.close(fd)
    return got[0]


async def test_ranges_land_at_their_offsets(s3_env: SeaweedFS, tmp_path: Path) -> None:
    st = make(s3_env, "ranges")
    data = os.urandom(3 * MiB + 123)
    await st.put_bytes("blob", data)
    writer = await st.range_writer()
    assert writer is not None
    out = tmp_path / "out"
    # out of order, on the same kept-alive connections
    for start, end in ((MiB, 3 * MiB + 123), (0, MiB), (5, 6)):
        assert await anyio.to_thread.run_sync(_fetch, writer, "blob", start, end, out) \
            == end - start
    assert out.read_bytes() == data
    await st.aclose()


async def test_a_failed_local_write_is_not_blamed_on_the_store(s3_env: SeaweedFS,
                                                               tmp_path: Path) -> None:
    st = make(s3_env, "localfail")
    await st.put_bytes("blob", os.urandom(MiB))
    writer = await st.range_writer()
    assert writer is not None
    (tmp_path / "ro").write_bytes(b"")
    fd = os.open(tmp_path / "ro", os.O_RDONLY)
    try:
        call = writer.call("blob", 0, MiB, fd, lambda n: None)
        with pytest.raises(OSError, match="Bad file descriptor") as raised:  # not retried
            await anyio.to_thread.run_sync(call.run)
        assert not isinstance(raised.value, StoreError)
    finally:
        os.close(fd)
        await st.aclose()


async def test_missing_object_and_bad_keys_are_named(s3_env: SeaweedFS, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    st = make(s3_env, "missing")
    await st.put_bytes("there", b"x" * 100)
    writer = await st.range_writer()
    assert writer is not None
    with pytest.raises(ObjectNotFound, match="nothere"):
        await anyio.to_thread.run_sync(_fetch, writer, "nothere", 0, 10, tmp_path / "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    wrong = await st.range_writer()
    assert wrong is not None
    with pytest.raises(AccessDenied) as denied:
        await anyio.to_thread.run_sync(_fetch, wrong, "there", 0, 10, tmp_path / "b")
    assert "there" in str(denied.value)
    assert "not-the-secret" not in str(denied.value)
    await st.aclose()


async def test_ranged_download_survives_a_third_of_its_ranges_failing(
        s3_env: SeaweedFS, seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    data = os.urandom(12 * MiB + 4321)
    digest = blake3.blake3(data).hexdigest()
    direct = make(s3_env, "faulty")
    await direct.put_bytes(object_key(digest), data)
    kinds = ("slowdown", "reset_before", "reset_mid_body", "truncate")
    with FaultProxy(seaweedfs.endpoint, rate=0.33, seed=7, kinds=kinds) as proxy:
        st = S3Store(direct.bucket, direct.prefix, endpoint=proxy.endpoint)
        st.head = direct.head  # type: ignore[method-assign]  # faults for the ranges only
        cfg = TransferConfig(multipart_threshold=4 * MiB, range_size=MiB, retries=12,
                             backoff_base=0.001, backoff_cap=0.01)
        final = tmp_path / "out"
        size = await download_object(st, digest, final, Hasher(), cfg, size_hint=len(data))
        await st.aclose()
    assert size == len(data)
    assert final.read_bytes() == data
    # cut-off bodies resume where they stopped
    assert sum(proxy.counts[k] for k in ("reset_mid_body", "truncate")) > 0, proxy.summary()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


async def test_a_flipped_byte_in_a_range_is_refused(s3_env: SeaweedFS, seaweedfs: SeaweedFS,
                                                    tmp_path: Path) -> None:
    data = os.urandom(6 * MiB)
    digest = blake3.blake3(data).hexdigest()
    direct = make(s3_env, "flip")
    await direct.put_bytes(object_key(digest), data)
    with FaultProxy(seaweedfs.endpoint, rate=1.0, kinds=("flip",)) as proxy:
        st = S3Store(direct.bucket, direct.prefix, endpoint=proxy.endpoint)
        st.head = direct.head  # type: ignore[method-assign]
        cfg = TransferConfig(multipart_threshold=4 * MiB, range_size=MiB, retries=1)
        with pytest.raises(IntegrityError, match=digest):
            await download_object(st, digest, tmp_path / "out", Hasher(), cfg,
                                  size_hint=len(data))
        await st.aclose()
    assert proxy.counts["flip"] == 6
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


@contextmanager
def fake_s3(serve: Callable[[socket.socket, int], None]) -> Iterator[tuple[str, list[int]]]:
    """A loopback HTTP server; ``serve(conn, n)`` talks to its n-th connection. On the way
    out every connection is shut down and its thread finished before the next test."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []
    conns: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def serving(conn: socket.socket, n: int) -> None:
        with contextlib.suppress(OSError):  # the test is over and shut the connection
            serve(conn, n)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conns.append(conn)
            accepted.append(len(accepted))
            t = threading.Thread(target=serving, args=(conn, len(accepted) - 1), daemon=True)
            threads.append(t)
            t.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        acceptor.join(5)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for t in threads:
            t.join(5)
        for conn in conns:
            conn.close()


def _request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            return b""
        data += more
    return data


def _writer(endpoint: str, read_timeout: float = 30) -> RangeWriter:
    creds = {"access_key_id": "k", "secret_access_key": "s", "token": None,
             "expires_at": None}
    return RangeWriter(Connections(endpoint, 5, read_timeout), Signer("us-east-1"), "b", "p",
                       creds,  # type: ignore[arg-type]
                       lambda exc, key: StoreUnavailable(f"{key}: {exc}", key))


def test_a_connection_the_server_closed_while_idle_is_replaced(tmp_path: Path) -> None:
    body = b"0123456789"

    def serve(conn: socket.socket, n: int) -> None:
        if _request(conn):  # answer once, keep-alive, then hang up
            conn.sendall(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n"
                         b"Content-Range: bytes 0-9/10\r\n\r\n" + body)
        time.sleep(0.1)
        conn.close()

    with fake_s3(serve) as (endpoint, accepted):
        writer = _writer(endpoint)
        assert _fetch(writer, "k", 0, 10, tmp_path / "a") == 10
        time.sleep(0.3)  # the server has closed the pooled connection by now
        assert _fetch(writer, "k", 0, 10, tmp_path / "b") == 10
        writer.pool.close()
    assert (tmp_path / "b").read_bytes() == body
    assert len(accepted) == 2


def test_a_reply_longer_than_its_body_is_not_reused(tmp_path: Path) -> None:
    def serve(conn: socket.socket, n: int) -> None:
        while _request(conn):  # 5 stray bytes after each body
            conn.sendall(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n"
                         b"Content-Range: bytes 0-9/10\r\n\r\n0123456789stray")

    with fake_s3(serve) as (endpoint, accepted):
        writer = _writer(endpoint)
        for name in ("a", "b"):
            assert _fetch(writer, "k", 0, 10, tmp_path / name) == 10
            assert (tmp_path / name).read_bytes() == b"0123456789"
        writer.pool.close()
    assert len(accepted) == 2  # the second GET did not read the first one's stray bytes


async def test_stopping_a_stalled_range_returns_at_once(tmp_path: Path) -> None:
    release = threading.Event()

    def serve(conn: socket.socket, n: int) -> None:
        _request(conn)
        conn.sendall(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 1000\r\n"
                     b"Content-Range: bytes 0-999/1000\r\n\r\n" + b"x" * 10)
        release.wait(30)  # then nothing more: a stalled body

    with fake_s3(serve) as (endpoint, _):
        writer = _writer(endpoint, read_timeout=30)
        fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT, 0o644)
        got = [0]
        call = writer.call("k", 0, 1000, fd, lambda n: got.__setitem__(0, got[0] + n))
        t0 = time.monotonic()
        with anyio.move_on_after(0.5) as scope:
            await run_stoppable(call.run, call.stop)
        took = time.monotonic() - t0
        release.set()
        os.close(fd)
        writer.pool.close()
    assert scope.cancelled_caught
    assert took < 3, took  # not the 30 s read timeout
    assert got[0] == 10


async def test_progress_counts_ranged_bytes_as_they_arrive(s3_env: SeaweedFS,
                                                           tmp_path: Path) -> None:
    """From S3 the bytes of a large object count as the sockets receive them: counted once
    hashed in file order, a slow link showed nothing for the first ranges (128 MiB with
    the defaults) and then jumps of whole ranges."""
    data = os.urandom(20 * MiB + 99)
    digest = blake3.blake3(data).hexdigest()
    st = make(s3_env, "progress")
    await st.put_bytes(object_key(digest), data)
    assert await st.range_writer() is not None  # the sockets path
    heard: list[int] = []
    cfg = TransferConfig(multipart_threshold=4 * MiB, range_size=8 * MiB)
    size = await download_object(st, digest, tmp_path / "out", Hasher(), cfg,
                                 size_hint=len(data), on_bytes=heard.append)
    await st.aclose()
    assert size == len(data)
    assert sum(heard) == len(data)  # every byte once
    assert heard[0] < cfg.range_size  # before a whole range was in
    assert len(heard) > 3 * len(data) // cfg.range_size


def test_writes_into_one_file_wait_for_its_lock(tmp_path: Path) -> None:
    """The ranges of one file write one at a time, under the lock the download shares
    between them: the kernel would otherwise have the waiting writers spin on the file's
    own lock, taking CPU from the server (see ``fileio``)."""
    def serve(conn: socket.socket, n: int) -> None:
        while _request(conn):
            conn.sendall(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n"
                         b"Content-Range: bytes 0-9/10\r\n\r\n0123456789")

    lock = threading.Lock()
    with fake_s3(serve) as (endpoint, _):
        writer = _writer(endpoint)
        fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT, 0o644)
        got = [0]
        call = writer.call("k", 0, 10, fd, lambda n: got.__setitem__(0, got[0] + n), lock)
        with lock:  # another range of the file is writing
            t = threading.Thread(target=call.run)
            t.start()
            time.sleep(0.3)
            assert got[0] == 0
            assert os.fstat(fd).st_size == 0
        t.join(10)
        assert not t.is_alive()
        os.close(fd)
        writer.pool.close()
    assert got[0] == 10
    assert (tmp_path / "out").read_bytes() == b"0123456789"


async def test_a_large_put_is_stopped_at_once_while_a_silent_server_lists_uploads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before a large upload, one GET asks for uploads of the key left over; a server that
    takes the request and never answers must not hold Ctrl-C up for the read timeout."""
    release = threading.Event()

    def serve(conn: socket.socket, n: int) -> None:
        _request(conn)
        release.wait(30)  # never answers

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    with fake_s3(serve) as (endpoint, accepted):
        st = S3Store("b", "p", endpoint=endpoint, multipart_threshold=5 * MiB,
                     part_size=5 * MiB, read_timeout=timedelta(seconds=20))

        async def chunks() -> AsyncIterator[bytes]:
            yield b"x" * (6 * MiB)

        t0 = time.monotonic()
        with anyio.move_on_after(0.5) as scope:
            await st.put("k", chunks(), 6 * MiB)
        took = time.monotonic() - t0
        release.set()
        await st.aclose()
    assert scope.cancelled_caught
    assert accepted  # the listing was sent
    assert took < 3, took  # not the 20 s read timeout

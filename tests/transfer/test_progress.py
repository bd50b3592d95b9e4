"""Progress for long work: hashing a large file and sending one show their bytes as they
go, and a count whose total is not known yet shows no total and no ETA."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import blake3
import pytest

from snapdir.core.manifest import Hasher
from snapdir.hashing import hash_file
from snapdir.snapshot import HashStats, build_manifest
from snapdir.stores.memory import MemoryStore
from snapdir.transfer import push as push_mod
from snapdir.transfer.config import TransferConfig
from snapdir.transfer.progress import Progress

MiB = 1024 * 1024


def test_a_large_file_reports_its_bytes_as_it_is_hashed(tmp_path: Path) -> None:
    data = os.urandom(40 * MiB + 3)
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    st = f.stat()
    heard: list[int] = []
    cs = hash_file(str(f), len(data), st.st_mtime_ns, Hasher(), on_bytes=heard.append)
    assert cs == blake3.blake3(data).hexdigest()
    assert len(heard) >= 3
    assert sum(heard) == len(data)


def test_hash_stats_count_every_byte_once(tmp_path: Path) -> None:
    sizes = {"big.bin": 20 * MiB + 1, "small.bin": 1000, "mid.bin": 3 * MiB}
    for name, size in sizes.items():
        (tmp_path / "src").mkdir(exist_ok=True)
        (tmp_path / "src" / name).write_bytes(os.urandom(size))
    stats = HashStats()
    build_manifest(tmp_path / "src", stats=stats)
    assert (stats.files, stats.hashed_files) == (3, 3)
    assert stats.bytes == sum(sizes.values())


def test_a_line_without_a_known_total() -> None:
    p = Progress("hash", "off", poll=lambda: (3, 10, 5 * MiB))
    line = p.line()
    assert line.startswith("hash: 3/10 files, 5.0 MiB, ")
    assert "ETA" not in line
    assert "/0 B" not in line


@pytest.mark.parametrize(("done", "eta"), [
    (1000 * MiB - 1, "ETA 1s"),  # a byte left: not "0s"
    (700 * MiB, "ETA 3s"),  # 300 MiB left at 100 MiB/s
    (350 * MiB, "ETA 7s"),  # 6.5 s
])
def test_eta_rounds_up(done: int, eta: str, monkeypatch: pytest.MonkeyPatch) -> None:
    p = Progress("pull", "off", files_total=1, bytes_total=1000 * MiB)
    p.add(0, done)
    monkeypatch.setattr(p, "started", 0.0)
    monkeypatch.setattr("snapdir.transfer.progress.time.monotonic", lambda: done / (100 * MiB))
    assert p.line().endswith(eta)


def test_no_eta_from_the_first_moments(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rate measured over set-up and the first requests is wild (a 5 s job showed
    "ETA 5h09m"): the ETA waits for a second of work."""
    p = Progress("push", "off", files_total=100, bytes_total=1000 * MiB, started=0.0)
    p.add(1, 64 * 1024)
    monkeypatch.setattr("snapdir.transfer.progress.time.monotonic", lambda: 0.2)
    assert "ETA" not in p.line()
    monkeypatch.setattr("snapdir.transfer.progress.time.monotonic", lambda: 1.0)
    assert "ETA" in p.line()


def test_bytes_done_never_exceed_the_total_shown() -> None:
    p = Progress("verify", "off", files_total=5, bytes_total=50, started=0.0)
    p.add(2, 115)  # objects larger than their manifest lines said
    assert "115 B/115 B" in p.line()


def test_long_etas_read_as_minutes_and_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    p = Progress("push", "off", files_total=1, bytes_total=10 ** 13)  # 10 TB
    p.add(0, 10 ** 9)
    monkeypatch.setattr(p, "started", 0.0)
    monkeypatch.setattr("snapdir.transfer.progress.time.monotonic", lambda: 10.0)  # 100 MB/s
    assert p.line().endswith("ETA 27h46m")  # 9.999e12 B / 1e8 B/s = 99,990 s
    p = Progress("push", "off", files_total=1, bytes_total=3 * 10 ** 10, started=0.0)
    p.add(0, 10 ** 9)
    assert p.line().endswith("ETA 4m50s")  # 2.9e10 / 1e8 = 290 s


@pytest.mark.anyio
async def test_push_shows_hashing_then_a_large_upload_part_by_part(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []

    class Watched(Progress):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.seen: list[tuple[int, int]] = []
            made.append(self)

        def add(self, files: int = 0, nbytes: int = 0) -> None:
            super().add(files, nbytes)
            self.seen.append((self.files_done, self.bytes_done))

    monkeypatch.setattr(push_mod, "Progress", Watched)
    src = tmp_path / "src"
    src.mkdir()
    big = os.urandom(17 * MiB + 9)
    (src / "big.bin").write_bytes(big)
    (src / "small.txt").write_bytes(b"small")
    cfg = TransferConfig(multipart_threshold=6 * MiB, part_size=5 * MiB)
    r = await push_mod.push(src, MemoryStore(), config=cfg, progress="off")
    assert r.objects_sent == 2
    hashing, sending = made
    assert hashing.label == "hash"
    assert hashing.poll() == (2, 2, len(big) + 5)
    assert sending.label == "push"
    # the large file's parts count before it is done; every byte counts once
    assert [s for s in sending.seen if s[1] not in (0, 5, len(big), len(big) + 5)]
    assert sending.seen[-1] == (2, len(big) + 5)


@pytest.mark.anyio
async def test_a_retried_large_upload_counts_its_bytes_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A multipart upload that fails after some parts starts over; its parts were counted
    again on top of the failed attempt's (the bytes shown went past the total)."""
    from collections.abc import AsyncIterable

    from snapdir.errors import StoreUnavailable
    from snapdir.stores.base import Chunk

    seen: list[int] = []

    class Watched(Progress):
        def add(self, files: int = 0, nbytes: int = 0) -> None:
            super().add(files, nbytes)
            if self.label in ("push", "sync"):
                seen.append(self.bytes_done)

    class FailsOnce(MemoryStore):
        failed = False

        async def put(self, key: str, chunks: AsyncIterable[Chunk], size: int) -> None:
            if not self.failed:
                self.failed = True
                n = 0
                async for _ in chunks:
                    n += 1
                    if n == 2:
                        raise StoreUnavailable("scripted: connection reset", key=key)
            await super().put(key, chunks, size)

    from snapdir.transfer import sync as sync_mod

    monkeypatch.setattr(push_mod, "Progress", Watched)
    src = tmp_path / "src"
    src.mkdir()
    big = os.urandom(17 * MiB + 9)
    (src / "big.bin").write_bytes(big)
    cfg = TransferConfig(multipart_threshold=6 * MiB, part_size=5 * MiB,
                         backoff_base=0.001, backoff_cap=0.01)
    store = FailsOnce()
    r = await push_mod.push(src, store, config=cfg, progress="off")
    assert store.failed
    assert r.objects_sent == 1
    assert all(0 <= b <= len(big) for b in seen), seen
    assert seen[-1] == len(big)
    # sync counts the same way
    seen.clear()
    monkeypatch.setattr(sync_mod, "Progress", Watched)
    other = FailsOnce()
    s = await sync_mod.sync(r.id, store, other, config=cfg, progress="off")
    assert other.failed
    assert s.objects_sent == 1
    assert all(0 <= b <= len(big) for b in seen), seen
    assert seen[-1] == len(big)


def test_id_shows_hashing_on_a_terminal_and_only_the_id_on_stdout(tmp_path: Path) -> None:
    import pty
    import subprocess
    import sys
    import threading

    src = tmp_path / "src"
    for i in range(3000):
        d = src / f"d{i % 30}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(os.urandom(300))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPDIR_")}
    env.update(SNAPDIR_PROGRESS_INTERVAL="0.001", SNAPDIR_NO_STAT_CACHE="1",
               SNAPDIR_CACHE_DIR=str(tmp_path / "cache"))
    leader, follower = pty.openpty()
    got: list[bytes] = []

    def drain() -> None:  # read while it runs: a terminal's buffer is small
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other end is closed and everything was read
                return
            if not chunk:
                return
            got.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        p = subprocess.run([sys.executable, "-m", "snapdir", "id", str(src)], env=env,
                           stdout=subprocess.PIPE, stderr=follower, timeout=120, check=True)
    finally:
        os.close(follower)
        reader.join(timeout=30)
        os.close(leader)
    err = b"".join(got)
    sid = p.stdout.decode().strip()
    assert len(sid) == 64
    assert b"hash: " in err
    assert b"3000/3000 files" in err  # the last line: all of them

    # and not on a pipe: stderr stays empty for scripts
    q = subprocess.run([sys.executable, "-m", "snapdir", "id", str(src)], env=env,
                       capture_output=True, timeout=120, check=True)
    assert (q.stdout.decode().strip(), q.stderr) == (sid, b"")


class _GoneStderr:
    """A stderr whose reader has gone: every write fails with EPIPE."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def isatty(self) -> bool:
        return False


@pytest.mark.anyio
async def test_a_failed_progress_write_stops_progress_not_the_work(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio

    gone = _GoneStderr()
    monkeypatch.setattr("sys.stderr", gone)
    monkeypatch.setenv("SNAPDIR_PROGRESS_INTERVAL", "0.001")
    async with Progress("push", "plain", files_total=3) as p:
        await anyio.sleep(0.05)  # many intervals
        p.add(3, 30)
    assert gone.writes == 1  # the first failed write ends progress: no retries
    async with Progress("pull", "plain", files_total=1):  # nor from the next stage
        await anyio.sleep(0.01)
    assert gone.writes == 1


def test_a_failed_progress_write_stops_the_rendering_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``snapdir id`` on a terminal renders from a thread: the same."""
    gone = _GoneStderr()
    monkeypatch.setattr("sys.stderr", gone)
    monkeypatch.setenv("SNAPDIR_PROGRESS_INTERVAL", "0.001")
    with Progress("hash", "plain", poll=lambda: (1, 1, 1)).in_thread():
        time.sleep(0.05)
    assert gone.writes == 1


class _Terminal:
    """A stderr that says it is a terminal and keeps what is written to it."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True


@pytest.mark.anyio
async def test_work_that_fails_under_progress_raises_its_own_error_after_a_whole_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The error is the work's own (typed, not an ExceptionGroup of the render task's
    group), and the live line is ended first: the CLI's error line is not glued to it."""
    import anyio

    from snapdir.errors import IntegrityError

    term = _Terminal()
    monkeypatch.setattr("sys.stderr", term)
    monkeypatch.setenv("SNAPDIR_PROGRESS_INTERVAL", "0.001")
    bad = IntegrityError("object x is corrupt")

    async def work() -> None:
        async with Progress("pull", "auto", files_total=2, bytes_total=10) as p:
            await anyio.sleep(0.01)
            p.add(1, 5)
            raise bad

    with pytest.raises(IntegrityError) as raised:
        await work()
    assert raised.value is bad
    last = term.text.rsplit("\r\x1b[2K", 1)[-1]
    assert last.startswith("pull: 1/2 files, 5 B/10 B, ")
    assert last.endswith("\n")

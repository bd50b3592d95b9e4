"""The stat cache: a warm run reads no file contents, and is never stale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from coreutil import F, b3, build_tree, model_manifest, ours, write_file

import snapdir.hashing
import snapdir.snapshot
from snapdir.errors import FileChanged

N_FILES = 24
FILE_SIZE = 128 * 1024
TOTAL = N_FILES * FILE_SIZE
RACY_S = 2.0  # FORMAT/statcache: files whose mtime or ctime is within 2 s are not cached


def _rchar() -> int:
    with open("/proc/self/io") as fh:
        for line in fh:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def bytes_read_by(fn: Callable[[], object]) -> int:
    """Bytes this process read() (all threads) while running ``fn``."""
    if not os.path.exists("/proc/self/io"):
        pytest.skip("needs /proc/self/io")
    before = _rchar()
    fn()
    return _rchar() - before


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths hash_file produced a checksum for (wherever it is looked up from)."""
    calls: list[str] = []
    real = snapdir.hashing.hash_file

    def counting(path: str, *args: object, **kw: object) -> object:
        out = real(path, *args, **kw)  # type: ignore[arg-type]
        if out is not None:  # None: "not hashed, try again elsewhere" (page-cache probe)
            calls.append(path)
        return out

    monkeypatch.setattr(snapdir.hashing, "hash_file", counting)
    if hasattr(snapdir.snapshot, "hash_file"):
        monkeypatch.setattr(snapdir.snapshot, "hash_file", counting)
    return calls


def _files() -> dict[str, F]:
    out = {f"d{i % 3}/f{i:02d}": F(0o644, bytes([i]) * FILE_SIZE) for i in range(N_FILES)}
    out["small"] = F(0o644, b"small")
    return out


DIRS = {"": 0o755, "d0": 0o755, "d1": 0o755, "d2": 0o755}


@pytest.fixture(scope="module")
def old_tree_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory in which trees are created once, then aged past the racy window.

    ctime cannot be set back, so waiting is the only honest way to get non-racy files.
    """
    base = tmp_path_factory.mktemp("aged")
    for name in ("warm", "modified", "bypass", "envbypass", "procs", "rename", "subproc"):
        build_tree(base / name, _files(), DIRS)
    time.sleep(RACY_S + 0.3)
    return base


def test_second_run_reads_no_file_contents(old_tree_base: Path, hash_calls: list[str]) -> None:
    root = old_tree_base / "warm"
    expected = model_manifest(_files(), DIRS)
    out: list[str] = []
    first = bytes_read_by(lambda: out.append(ours(root)))
    assert len(set(hash_calls)) == N_FILES + 1
    assert first >= TOTAL
    hash_calls.clear()
    second = bytes_read_by(lambda: out.append(ours(root)))
    assert hash_calls == []
    assert second < FILE_SIZE  # not even one file's worth (only the cache itself)
    assert out == [expected, expected]


def test_second_run_in_a_new_process_reads_nothing(old_tree_base: Path, cache_dir: Path) -> None:
    """Measured from outside: a fresh process, rchar around build_manifest only."""
    root = old_tree_base / "subproc"
    script = (
        "import json, sys\n"
        "from snapdir.snapshot import build_manifest\n"
        "def rchar():\n"
        "    return int([l for l in open('/proc/self/io') if l.startswith('rchar')][0]"
        ".split()[1])\n"
        "b = rchar(); text = build_manifest(sys.argv[1]).text(); a = rchar()\n"
        "print(json.dumps({'read': a - b, 'text': text}))\n"
    )
    runs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", script, str(root)], capture_output=True,
                              text=True, timeout=60, check=True, env=dict(os.environ))
        runs.append(json.loads(proc.stdout))
    assert runs[0]["text"] == runs[1]["text"] == model_manifest(_files(), DIRS)
    assert runs[0]["read"] >= TOTAL
    assert runs[1]["read"] < FILE_SIZE
    assert any(cache_dir.iterdir())  # the cache lives where SNAPDIR_CACHE_DIR says


def test_modified_same_size_same_mtime_is_rehashed(old_tree_base: Path,
                                                   hash_calls: list[str]) -> None:
    root = old_tree_base / "modified"
    files = _files()
    assert ours(root) == model_manifest(files, DIRS)
    target = root / "d1" / "f01"
    st = os.stat(target)
    new = b"\xee" * FILE_SIZE  # same size
    with open(target, "r+b") as fh:
        fh.write(new)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back: only ctime moved
    assert os.stat(target).st_mtime_ns == st.st_mtime_ns
    assert os.stat(target).st_size == st.st_size
    hash_calls.clear()
    files["d1/f01"] = F(0o644, new)
    text = ours(root)
    assert text == model_manifest(files, DIRS)
    assert b3(new) in text
    assert [os.path.basename(p) for p in hash_calls] == ["f01"]


def test_replaced_by_rename_is_rehashed(old_tree_base: Path) -> None:
    root = old_tree_base / "rename"
    files = _files()
    assert ours(root) == model_manifest(files, DIRS)
    target = root / "d2" / "f02"
    st = os.stat(target)
    new = b"\x01" * FILE_SIZE
    write_file(root / "tmp", new)
    os.utime(root / "tmp", ns=(st.st_atime_ns, st.st_mtime_ns))
    os.rename(root / "tmp", target)
    files["d2/f02"] = F(0o644, new)
    assert ours(root) == model_manifest(files, DIRS)


def test_chmod_only_changes_the_mode(old_tree_base: Path, tmp_path: Path) -> None:
    root = tmp_path / "t"
    files = {"x": F(0o644, b"x")}
    build_tree(root, files, {"": 0o755})
    ours(root)
    os.chmod(root / "x", 0o600)
    assert ours(root) == model_manifest({"x": F(0o600, b"x")}, {"": 0o755})


def test_racy_files_are_not_cached(tmp_path: Path, hash_calls: list[str]) -> None:
    root = tmp_path / "fresh"
    build_tree(root, _files(), DIRS)  # just written: mtime/ctime within the racy window
    expected = model_manifest(_files(), DIRS)
    assert ours(root) == expected
    assert len(set(hash_calls)) == N_FILES + 1
    hash_calls.clear()
    read = bytes_read_by(lambda: ours(root))
    assert len(set(hash_calls)) == N_FILES + 1  # hashed again: nothing was cached
    assert read >= TOTAL


def test_racy_write_after_first_run_is_seen(tmp_path: Path) -> None:
    """The racy-git case: a same-size write right after a run, mtime forced back."""
    root = tmp_path / "t"
    build_tree(root, {"f": F(0o644, b"aaaa")}, {"": 0o755})
    st = os.stat(root / "f")
    assert b3(b"aaaa") in ours(root)
    with open(root / "f", "r+b") as fh:
        fh.write(b"bbbb")
    os.utime(root / "f", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ours(root) == model_manifest({"f": F(0o644, b"bbbb")}, {"": 0o755})


def test_no_stat_cache_option_bypasses(old_tree_base: Path, hash_calls: list[str]) -> None:
    root = old_tree_base / "bypass"
    ours(root)
    hash_calls.clear()
    ours(root)
    assert hash_calls == []  # warm
    read = bytes_read_by(lambda: ours(root, stat_cache=False))
    assert len(set(hash_calls)) == N_FILES + 1
    assert read >= TOTAL


def test_env_no_stat_cache_bypasses(old_tree_base: Path, hash_calls: list[str],
                                    monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    root = old_tree_base / "envbypass"
    monkeypatch.setenv("SNAPDIR_NO_STAT_CACHE", "1")
    ours(root)
    assert not cache_dir.exists() or not any(cache_dir.iterdir())  # nothing written
    hash_calls.clear()
    read = bytes_read_by(lambda: ours(root))
    assert len(set(hash_calls)) == N_FILES + 1
    assert read >= TOTAL
    # and with the cache back on, a warm cache is still honoured
    monkeypatch.delenv("SNAPDIR_NO_STAT_CACHE")
    ours(root)
    hash_calls.clear()
    ours(root)
    assert hash_calls == []


def test_two_processes_share_the_cache(old_tree_base: Path, cache_dir: Path) -> None:
    root = old_tree_base / "procs"
    expected = model_manifest(_files(), DIRS)
    script = ("import sys\nfrom snapdir.snapshot import build_manifest\n"
              "for _ in range(5):\n    sys.stdout.write(build_manifest(sys.argv[1]).text())\n")
    for _round in range(2):  # cold cache, then warm
        procs = [subprocess.Popen([sys.executable, "-c", script, str(root)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            assert out == expected * 5
            assert "warning" not in err, err
    assert any(cache_dir.iterdir())


def _appender(path: Path, stop: threading.Event, limit: int) -> None:
    with open(path, "ab") as fh:
        written = 0
        while not stop.is_set() and written < limit:
            fh.write(b"x" * 4096)
            fh.flush()
            written += 4096


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size", [256 * 1024, 5 * 1024 * 1024, 12 * 1024 * 1024],
                         ids=["small", "chunked", "mmap"])
def test_file_growing_while_hashed_is_file_changed(tmp_path: Path, size: int) -> None:
    """A log-like file appended to all along: FileChanged, promptly (never a hang)."""
    root = tmp_path / "t"
    root.mkdir()
    grow = root / "growing"
    write_file(grow, b"\0" * size)
    for attempt in range(3):
        stop = threading.Event()
        th = threading.Thread(target=_appender, args=(grow, stop, 64 * 1024 * 1024))
        th.start()
        try:
            time.sleep(0.01)
            with pytest.raises(FileChanged) as ei:
                ours(root, stat_cache=False)
        finally:
            stop.set()
            th.join()
        assert "growing" in ei.value.format_message()
        assert "\n" not in ei.value.format_message()
        os.truncate(grow, size)
        del attempt


def test_a_save_killed_midway_leaves_no_temp_file_behind(tmp_path: Path,
                                                         cache_dir: Path) -> None:
    """A process killed while writing the index (kill -9) leaves its temp file; the next
    save of that index removes it. A live process's temp file is left alone."""
    root = tmp_path / "tree"
    build_tree(root, _files(), DIRS)
    time.sleep(RACY_S + 0.3)
    ours(root)
    (index,) = (cache_dir / "stat").glob("*.idx")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = index.with_name(f"{index.name}.{dead}.1795999999000000000.tmp")
    left.write_bytes(b"\0" * 4096)  # what a save killed mid-write leaves
    live = index.with_name(f"{index.name}.{os.getpid()}.1795999999000000001.tmp")
    live.write_bytes(b"being written")
    other = index.with_name(f"{index.name}.tmp.notes")  # not one of ours
    other.write_bytes(b"x")
    write_file(root / "small", b"changed")  # so the next run saves the index
    time.sleep(RACY_S + 0.3)
    ours(root)
    assert not left.exists()
    assert live.exists()
    assert other.exists()

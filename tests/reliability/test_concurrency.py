"""Several snapdir processes on one store or one cache at the same time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from relutil import Cli, b3, check_content_addressed, check_store_manifests_complete, small_tree


def start(cli: Cli, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "snapdir", *args], env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p: subprocess.Popen[str]) -> str:
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, f"{p.args} failed ({p.returncode}): {err}"
    return out.strip()


@pytest.mark.parametrize("kind", ["file", pytest.param("s3", marks=pytest.mark.s3)])
def test_two_overlapping_pushes_at_once(request: pytest.FixtureRequest, kind: str,
                                        tmp_path: Path) -> None:
    if kind == "s3":
        sw = request.getfixturevalue("s3_env")
        store = sw.unique_uri("overlap")
    else:
        store = str(tmp_path / "store")
    cli = request.getfixturevalue("cli")
    # 250 files each, 180 of them identical in both trees (same paths and bytes)
    a = small_tree(tmp_path / "a", 250, seed=1, shared=180)
    b = small_tree(tmp_path / "b", 250, seed=2, shared=180)
    want_a, want_b = cli("id", str(a)).out.strip(), cli("id", str(b)).out.strip()
    assert want_a != want_b
    pa = start(cli.machine("ma"), "push", "-q", "--store", store, str(a))
    pb = start(cli.machine("mb"), "push", "-q", "--store", store, str(b))
    assert (finish(pa), finish(pb)) == (want_a, want_b)
    if kind == "file":
        assert check_store_manifests_complete(tmp_path / "store") == 2
        check_content_addressed(tmp_path / "store")
    for sid, name in ((want_a, "ra"), (want_b, "rb")):
        dest = tmp_path / name
        cli.machine(f"pull-{name}")("pull", "-q", "--store", store, "--id", sid, str(dest))
        assert cli("id", str(dest)).out.strip() == sid


@pytest.mark.s3
@pytest.mark.slow
@pytest.mark.parametrize("shared_cache", [True, False], ids=["shared-cache", "own-caches"])
def test_eight_pulls_of_one_id(s3_env, cli: Cli, tmp_path: Path,
                               shared_cache: bool) -> None:
    src = small_tree(tmp_path / "src", 150, seed=3, size=(0, 20000))
    uri = s3_env.unique_uri("eight")
    sid = cli("push", "-q", "--store", uri, str(src)).out.strip()
    shared = cli.machine("shared")
    procs = []
    for i in range(8):
        m = shared if shared_cache else cli.machine(f"m{i}")
        procs.append(start(m, "pull", "-q", "--store", uri, "--id", sid,
                           str(tmp_path / f"dest{i}")))
    for p in procs:
        finish(p)
    ids = {cli("id", str(tmp_path / f"dest{i}")).out.strip() for i in range(8)}
    assert ids == {sid}
    if shared_cache:
        assert check_content_addressed(Path(shared.env["SNAPDIR_CACHE_DIR"]) / "store") > 0


@pytest.mark.parametrize("verb", ["checkout", "pull"])
def test_a_delete_mirror_leaves_another_live_processs_temp_files(cli: Cli, tmp_path: Path,
                                                                 verb: str) -> None:
    """Two pulls (or checkouts) with --delete into one destination at once: the mirror of
    the first to finish must not remove the temp files the other is about to rename into
    place (it failed with 'cannot write ./f there (No such file or directory)'). Those of
    a dead process go, as before."""
    src = small_tree(tmp_path / "src", 20, seed=5)
    store = str(tmp_path / "store")
    sid = cli("push", "-q", "--store", store, str(src)).out.strip()
    cli("fetch", "-q", "--store", store, "--id", sid)
    dest = tmp_path / "dest"
    dest.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True).stdout.strip()
        live = dest / f".snapdir-tmp-f0-{other.pid}-0123abcd"
        gone = dest / f".snapdir-tmp-f0-{dead}-0123abcd"
        live.write_bytes(b"half of a file")
        gone.write_bytes(b"half of a file")
        (dest / "extra").write_bytes(b"not in the snapshot")
        if verb == "pull":
            cli("pull", "-q", "--delete", "--store", store, "--id", sid, str(dest))
        else:
            cli("checkout", "--delete", "--id", sid, str(dest))
        assert live.exists()
        assert not gone.exists()
        assert not (dest / "extra").exists()
    finally:
        other.kill()
        other.wait()
    live.unlink()
    assert cli("id", str(dest)).out.strip() == sid


def test_a_directory_another_pull_makes_meanwhile_is_taken(tmp_path: Path, monkeypatch) -> None:
    """Two pulls into one new destination make the same directories: the one whose mkdir
    came second failed with 'a/b: File exists' (seen with 6 pulls of 3,000 directories)."""
    from snapdir.core.manifest import parse
    from snapdir.transfer import checkout

    obj = tmp_path / "obj"
    obj.write_bytes(b"hello")
    dest = tmp_path / "dest"
    real_mkdir = os.mkdir

    def raced(path, mode=0o777, *, dir_fd=None):
        if Path(path).name == "a" and not os.path.exists(path):
            real_mkdir(path, 0o700)  # the other pull's mkdir, just before ours
        real_mkdir(path, mode)

    monkeypatch.setattr(checkout.os, "mkdir", raced)
    empty, hello = b3(b""), b3(b"hello")
    manifest = f"D 755 {empty} 5 ./\nD 755 {empty} 5 ./a/\nF 644 {hello} 5 ./a/f\n"
    checkout.checkout_manifest(parse(manifest.encode()), dest, lambda _: obj)
    assert (dest / "a" / "f").read_bytes() == b"hello"


def test_a_delete_mirror_takes_what_another_removed_meanwhile_as_removed(
        tmp_path: Path, monkeypatch) -> None:
    """Two pulls with --delete into one destination remove the same stray files: the one
    that came second failed with 'extra: cannot remove it (No such file or directory)'."""
    from snapdir.core.manifest import parse
    from snapdir.transfer import checkout

    obj = tmp_path / "obj"
    obj.write_bytes(b"hello")
    dest = tmp_path / "dest"
    (dest / "extra" / "deep").mkdir(parents=True)
    (dest / "extra" / "deep" / "f").write_bytes(b"stray")
    (dest / "stray").write_bytes(b"stray")
    real_unlink, real_rmdir = os.unlink, os.rmdir

    def raced(real):
        def remove(path, *, dir_fd=None):
            real(path, dir_fd=dir_fd)  # the other pull's, just before ours
            real(path, dir_fd=dir_fd)
        return remove

    monkeypatch.setattr(checkout.os, "unlink", raced(real_unlink))
    monkeypatch.setattr(checkout.os, "rmdir", raced(real_rmdir))
    hello = b3(b"hello")
    manifest = f"D 755 {b3(b'')} 5 ./\nF 644 {hello} 5 ./f\n"
    result = checkout.checkout_manifest(parse(manifest.encode()), dest, lambda _: obj,
                                        delete=True)
    monkeypatch.undo()
    assert sorted(os.listdir(dest)) == ["f"]
    assert result.deleted == 2

"""Hostile stores: manifests and objects written straight into a file store.

Each manifest is stored under the key of its real BLAKE3, so the id check passes and the
manifest's content is what gets judged. Every pull must be refused with one stderr line and
a non-zero exit, and write nothing outside the destination (a sibling sentinel directory
stays empty); links already in the destination are never followed out of it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from relutil import Cli, Run, b3

from snapdir.stores.base import manifest_key, object_key

HELLO = b"hello"
H = b3(HELLO)
EMPTY_DIR = b3(b"")


def put(store: Path, key: str, data: bytes) -> None:
    p = store / key
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def put_manifest(store: Path, data: bytes) -> str:
    sid = b3(data)
    put(store, manifest_key(sid), data)
    return sid


def root(size: int = 5) -> bytes:
    return f"D 755 {EMPTY_DIR} {size} ./\n".encode()


def f(path: str | bytes, size: int | str = 5, checksum: str = H, mode: str = "644") -> bytes:
    p = path if isinstance(path, bytes) else path.encode()
    return f"F {mode} {checksum} {size} ".encode() + p + b"\n"


def d(path: str, size: int = 5) -> bytes:
    return f"D 755 {EMPTY_DIR} {size} {path}\n".encode()


def cases(sentinel: Path) -> dict[str, bytes]:
    return {
        "dotdot": root() + f("./../sentinel/escape.txt"),
        "dotdot-inner": root() + d("./a/") + f("./a/../../sentinel/escape.txt"),
        "dotdot-dir": root() + d("./../sentinel/") + f("./../sentinel/escape.txt"),
        "absolute": root() + f(str(sentinel / "abs.txt")),
        "absolute-dir": d("/") + f(str(sentinel / "abs.txt")),
        "double-slash": root() + f(".//" + str(sentinel / "abs.txt").lstrip("/")),
        "dot-component": root() + f("././a.txt"),
        "duplicate": root() + f("./a.txt") + f("./a.txt"),
        "duplicate-file-and-dir": root() + f("./a") + d("./a/"),
        "file-under-file": root() + f("./a") + f("./a/b"),
        "missing-parent": root() + f("./nodir/a.txt"),
        "no-root": f("./a.txt"),
        "file-root": f("./"),
        "bad-hex-upper": root() + f("./a.txt", checksum=H.upper()),
        "bad-hex-chars": root() + f("./a.txt", checksum="z" * 64),
        "bad-hex-short": root() + f("./a.txt", checksum="abc"),
        "negative-size": root() + f("./a.txt", size=-5),
        "absurd-size": root() + f("./a.txt", size="9" * 30),
        "size-over-int64": root() + f("./a.txt", size=2**63),
        "plus-size": root() + f("./a.txt", size="+5"),
        "bad-mode": root() + f("./a.txt", mode="999"),
        "non-utf8": root() + f(b"./\xff\xfe.txt"),
        "nul": root() + f(b"./a\x00b.txt"),
        "overlong-line": root() + f("./" + "x" * 70_000),
        "unknown-type": root() + b"L 777 " + H.encode() + b" 5 ./a.txt\n",
        "too-few-fields": root() + b"F 644 " + H.encode() + b" 5\n",
        "binary-garbage": bytes(range(256)) * 4,
    }


NO_CACHE_CASES = {"dotdot", "dotdot-dir", "absolute", "double-slash", "file-under-file",
                  "duplicate-file-and-dir"}


def refused(r: Run) -> None:
    assert r.rc != 0, f"accepted: {r.out!r} {r.err!r}"
    err = r.err.strip()
    assert err, "no message"
    assert "\n" not in err, f"more than one stderr line: {r.err!r}"
    assert "Traceback" not in err, err
    assert "internal error" not in err, err


@pytest.fixture
def env(cli: Cli, tmp_path: Path) -> tuple[Cli, Path, Path, Path]:
    store = tmp_path / "store"
    put(store, object_key(H), HELLO)
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    return cli, store, tmp_path / "dest", sentinel


@pytest.mark.parametrize("no_cache", [False, True], ids=["cache", "no-cache"])
def test_hostile_manifests_are_refused(env, no_cache: bool) -> None:
    cli, store, dest, sentinel = env
    extra = ["--no-cache"] if no_cache else []
    for name, data in cases(sentinel).items():
        if no_cache and name not in NO_CACHE_CASES:
            continue  # the manifest is parsed the same way before either mode
        sid = put_manifest(store, data)
        r = cli("pull", "-q", *extra, "--store", str(store), "--id", sid, str(dest),
                check=False)
        try:
            refused(r)
        except AssertionError as exc:
            raise AssertionError(f"case {name}: {exc}") from None
        assert "manifest" in r.err, f"case {name}: {r.err}"
        assert list(sentinel.iterdir()) == [], f"case {name} wrote outside the destination"
        assert not dest.exists() or list(dest.iterdir()) == [], f"case {name} wrote files"
    assert sorted(p.name for p in sentinel.parent.iterdir()) == sorted(
        ["store", "sentinel", "home"] + (["dest"] if dest.exists() else []))


def test_manifest_not_matching_its_id(env) -> None:
    cli, store, dest, sentinel = env
    good = root() + f("./a.txt")
    wrong_id = b3(b"something else")
    put(store, manifest_key(wrong_id), good)
    r = cli("pull", "-q", "--store", str(store), "--id", wrong_id, str(dest), check=False)
    refused(r)
    assert "does not hash to its id" in r.err
    assert not dest.exists() or list(dest.iterdir()) == []
    assert list(sentinel.iterdir()) == []


@pytest.mark.parametrize("no_cache", [False, True], ids=["cache", "no-cache"])
def test_object_not_matching_its_key(env, no_cache: bool) -> None:
    cli, store, dest, sentinel = env
    put(store, object_key(H), b"HELLO")  # right size, wrong bytes
    sid = put_manifest(store, root() + f("./a.txt"))
    extra = ["--no-cache"] if no_cache else []
    r = cli("pull", "-q", *extra, "--store", str(store), "--id", sid, str(dest), check=False)
    refused(r)
    assert "corrupt" in r.err
    assert not (dest / "a.txt").exists()
    assert [p.name for p in dest.rglob("*")] == [] if dest.exists() else True
    assert list(sentinel.iterdir()) == []
    cache = Path(cli.env["SNAPDIR_CACHE_DIR"]) / "store"
    assert not (cache / object_key(H)).exists(), "a corrupt object reached the cache"


@pytest.mark.parametrize("no_cache", [False, True], ids=["cache", "no-cache"])
def test_links_in_destination_are_not_followed(env, no_cache: bool) -> None:
    cli, store, dest, sentinel = env
    data = root(10) + f("./a.txt") + d("./sub/") + f("./sub/f.txt")
    sid = put_manifest(store, data)
    outside = sentinel
    (outside / "target.txt").write_bytes(b"original")
    dest.mkdir()
    (dest / "sub").symlink_to(outside, target_is_directory=True)
    (dest / "a.txt").symlink_to(outside / "target.txt")
    extra = ["--no-cache"] if no_cache else []
    cli("pull", "-q", *extra, "--store", str(store), "--id", sid, str(dest))
    assert sorted(p.name for p in outside.iterdir()) == ["target.txt"]
    assert (outside / "target.txt").read_bytes() == b"original"
    assert not (dest / "sub").is_symlink()
    assert (dest / "sub").is_dir()
    assert not (dest / "a.txt").is_symlink()
    assert (dest / "a.txt").read_bytes() == HELLO
    assert (dest / "sub" / "f.txt").read_bytes() == HELLO


@pytest.mark.parametrize("how", ["pull", "pull-no-cache", "checkout"])
def test_a_hard_link_out_of_the_destination_keeps_its_mode(env, how: str) -> None:
    """A file in the destination with the right bytes but another mode, hard-linked to a
    file outside it: a chmod would change the outside file too, so it is replaced."""
    cli, store, dest, sentinel = env
    sid = put_manifest(store, root() + f("./a.txt", mode="600"))
    outside = sentinel / "outside.txt"
    outside.write_bytes(HELLO)
    outside.chmod(0o644)
    dest.mkdir()
    os.link(outside, dest / "a.txt")
    if how == "checkout":
        cli("fetch", "-q", "--store", str(store), "--id", sid)
        cli("checkout", "-q", "--id", sid, str(dest))
    else:
        extra = ["--no-cache"] if how == "pull-no-cache" else []
        cli("pull", "-q", *extra, "--store", str(store), "--id", sid, str(dest))
    assert outside.stat().st_mode & 0o777 == 0o644
    assert outside.read_bytes() == HELLO
    st = (dest / "a.txt").stat()
    assert st.st_mode & 0o777 == 0o600
    assert st.st_ino != outside.stat().st_ino
    assert (dest / "a.txt").read_bytes() == HELLO


def test_size_field_is_only_a_hint(env) -> None:
    """An in-range but absurd SIZE (FORMAT.md: never use it to check an object) must not
    make a pull misbehave: it completes with the object's real bytes, or is refused cleanly."""
    cli, store, dest, sentinel = env
    sid = put_manifest(store, root(2**62) + f("./a.txt", size=2**62))
    r = cli("pull", "-q", "--store", str(store), "--id", sid, str(dest), check=False)
    if r.rc == 0:
        assert (dest / "a.txt").read_bytes() == HELLO
    else:
        refused(r)
    assert list(sentinel.iterdir()) == []


def remove_deep(top: Path) -> None:
    """Remove a tree deeper than the recursion limit (shutil.rmtree, and so pytest's own
    clean-up of tmp_path, recurse once per level)."""
    stack, dirs = [top], []
    while stack:
        p = stack.pop()
        dirs.append(p)
        with os.scandir(p) as it:
            entries = list(it)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            else:
                os.unlink(entry.path)
    for p in reversed(dirs):
        os.rmdir(p)


@pytest.fixture
def deep_env(env):
    yield env
    dest = env[2]
    if dest.exists():
        remove_deep(dest)


def test_delete_mirrors_a_snapshot_deeper_than_the_recursion_limit(deep_env) -> None:
    """A tree of 1,200 levels checks out, and so with --delete: its walks of the
    destination (the store guard, the mirror) recursed once per level (os.walk on Python
    3.11) and failed with an internal RecursionError."""
    cli, store, dest, sentinel = deep_env
    data, p = root(), "./"
    for _ in range(1200):
        p += "d/"
        data += d(p)
    sid = put_manifest(store, data + f(p + "f.txt"))
    cli("pull", "-q", "--store", str(store), "--id", sid, str(dest))
    stray = dest.joinpath(*["d"] * 600, "stray.txt")
    stray.write_bytes(b"not in the snapshot")
    cli("pull", "-q", "--delete", "--store", str(store), "--id", sid, str(dest))
    assert not stray.exists()
    assert dest.joinpath(*["d"] * 1200, "f.txt").read_bytes() == HELLO
    assert list(sentinel.iterdir()) == []


def test_delete_refuses_a_stray_tree_too_deep_to_remove_in_one_line(deep_env) -> None:
    cli, store, dest, _ = deep_env
    sid = put_manifest(store, root() + f("./a.txt"))
    deep = dest
    dest.mkdir()
    for _ in range(1200):  # (Path.mkdir(parents=True) recurses once per level too)
        deep /= "s"
        deep.mkdir()
    (deep / "x").write_bytes(b"x")
    r = cli("pull", "-q", "--delete", "--store", str(store), "--id", sid, str(dest),
            check=False)
    refused(r)
    assert "too deeply nested" in r.err
    assert str(dest / "s") in r.err
    assert (dest / "a.txt").read_bytes() == HELLO


def test_a_file_delete_cannot_remove_is_named_by_its_whole_path(tmp_path, monkeypatch) -> None:
    """shutil.rmtree's own error named only the file's last component (``s: Permission
    denied``: which ``s``?)."""
    from snapdir.errors import DestinationError
    from snapdir.transfer.checkout import remove_tree

    deep = tmp_path / "stray" / "deep"
    deep.mkdir(parents=True)
    (deep / "s").write_bytes(b"s")

    def denied(path, *, dir_fd=None):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "unlink", denied)
    with pytest.raises(DestinationError, match="stray/deep/s: cannot remove it"):
        remove_tree(tmp_path / "stray")


def test_delete_removes_read_only_directories(tmp_path, monkeypatch) -> None:
    """A snapshot's read-only (555) directories, checked out before, that the next
    version lacks: as a user other than root, ``--delete`` failed with ``cannot remove it
    (Permission denied)`` on their files. The permission check root skips is emulated."""
    from snapdir.transfer.checkout import remove_tree

    def as_owner(real):
        def call(path, *, dir_fd=None):
            where = (os.fstat(dir_fd) if dir_fd is not None
                     else os.stat(os.path.dirname(os.path.abspath(path))))
            if not where.st_mode & 0o200:
                raise PermissionError(13, "Permission denied", path)
            return real(path, dir_fd=dir_fd)
        return call

    stray = tmp_path / "dest" / "old"
    (stray / "deep").mkdir(parents=True)
    (stray / "deep" / "x").write_bytes(b"x")
    (stray / "y").write_bytes(b"y")
    (tmp_path / "outside").mkdir(mode=0o555)
    (stray / "link").symlink_to(tmp_path / "outside")
    (stray / "deep").chmod(0o555)
    stray.chmod(0o555)
    monkeypatch.setattr(os, "unlink", as_owner(os.unlink))
    monkeypatch.setattr(os, "rmdir", as_owner(os.rmdir))
    remove_tree(stray)
    assert not stray.exists()
    assert (tmp_path / "outside").stat().st_mode & 0o777 == 0o555  # links not followed


def test_a_full_disk_during_checkout_names_the_file(tmp_path, monkeypatch) -> None:
    """A copy out of the cache that fails on write (ENOSPC) carries no file name: the one
    line said only ``No space left on device`` (which file, on which disk?)."""
    import errno

    from snapdir.core.manifest import parse
    from snapdir.errors import DestinationError
    from snapdir.transfer import checkout

    obj = tmp_path / "obj"
    obj.write_bytes(HELLO)
    dest = tmp_path / "dest"

    def full(self, src, dst, mode):
        Path(dst).write_bytes(b"he")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkout._Copier, "copy", full)
    with pytest.raises(DestinationError, match=r"dest/a\.txt: cannot write \./a\.txt there "
                                               r"\(No space left on device\)"):
        checkout.checkout_manifest(parse(root() + f("./a.txt")), dest, lambda _: obj)
    assert os.listdir(dest) == []


def test_a_destination_of_another_user(tmp_path, monkeypatch) -> None:
    """A writable directory of another user (a shared ``/data``): a chmod there, even to
    the mode it has, is refused, and the checkout failed at its very end with ``dest:
    Operation not permitted``. Same mode: no chmod; another one: refused up front, in one
    line. (Ownership is emulated: the tests run as root.)"""
    from snapdir.core.manifest import parse
    from snapdir.errors import DestinationError
    from snapdir.transfer import checkout

    obj = tmp_path / "obj"
    obj.write_bytes(HELLO)
    dest = tmp_path / "dest"
    dest.mkdir()
    dest.chmod(0o777)
    real_chmod = os.chmod

    def chmod(path, mode, **kw):
        if os.stat(path).st_uid != os.geteuid():
            raise PermissionError(1, "Operation not permitted", path)
        return real_chmod(path, mode, **kw)

    monkeypatch.setattr(os, "chmod", chmod)
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(dest).st_uid + 1)
    same = parse(f"D 777 {EMPTY_DIR} 5 ./\n".encode() + f("./a.txt"))
    checkout.checkout_manifest(same, dest, lambda _: obj)
    assert (dest / "a.txt").read_bytes() == HELLO
    other = parse(root() + f("./b.txt"))
    with pytest.raises(DestinationError, match=r"dest: cannot give it the snapshot's mode "
                                               r"755 \(it has 777 and belongs to another"):
        checkout.checkout_manifest(other, dest, lambda _: obj)
    assert not (dest / "b.txt").exists()


def test_a_file_of_another_user_with_the_right_bytes_and_another_mode(tmp_path,
                                                                      monkeypatch) -> None:
    """Only its owner may chmod it: the checkout failed with ``dest/a.txt: Operation not
    permitted`` where a file with other bytes is simply replaced; now it is replaced too.
    (Ownership is emulated: the tests run as root.)"""
    from snapdir.core.manifest import parse
    from snapdir.transfer import checkout

    obj = tmp_path / "obj"
    obj.write_bytes(HELLO)
    dest = tmp_path / "dest"
    dest.mkdir()
    theirs = dest / "a.txt"
    theirs.write_bytes(HELLO)
    theirs.chmod(0o640)
    ino = theirs.stat().st_ino
    real_chmod = os.chmod

    def chmod(path, mode, **kw):
        if os.stat(path).st_ino == ino:
            raise PermissionError(1, "Operation not permitted", path)
        return real_chmod(path, mode, **kw)

    monkeypatch.setattr(os, "chmod", chmod)
    checkout.checkout_manifest(parse(root() + f("./a.txt")), dest, lambda _: obj)
    st = theirs.stat()
    assert (st.st_mode & 0o777, theirs.read_bytes()) == (0o644, HELLO)
    assert st.st_ino != ino

"""Walking real trees: the expected manifests come from coreutil.model_manifest (FORMAT.md)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from coreutil import (
    EMPTY_B3,
    F,
    b3,
    b3k,
    build_tree,
    make_dir,
    md5,
    model_manifest,
    ours,
    ours_manifest,
    sha256,
    write_file,
)

from snapdir.errors import (
    SnapdirError,
    SourceError,
    SymlinkCycle,
    UnsupportedName,
    UsageError,
)

RICH_FILES = {
    "a.txt": F(0o644, b"alpha\n"),
    "a/b": F(0o644, b"in a dir named like a file's prefix\n"),
    "a-b": F(0o644, b"dash\n"),
    "dup1": F(0o644, b"same bytes"),
    "sub/dup2": F(0o600, b"same bytes"),
    "sub/deeper/dup3": F(0o640, b"same bytes"),
    "empty": F(0o644, b""),
    "sub/empty2": F(0o400, b""),
    "setuid": F(0o4755, b"#!/bin/sh\necho hi\n"),
    "setgid-file": F(0o2755, b"sgid\n"),
    "sticky/x": F(0o666, b"in sticky\n"),
    "sgid/y": F(0o644, b"in setgid dir\n"),
    "with space.txt": F(0o644, b"spaces\n"),
    " lead": F(0o644, b"lead\n"),
    "trail ": F(0o644, b"trail\n"),
    "two  spaces": F(0o644, b"two\n"),
    "-dash": F(0o644, b"-\n"),
    "--": F(0o644, b"--\n"),
    "#hash": F(0o644, b"#\n"),
    "sub/#x y": F(0o644, b"# and space\n"),
    "é.txt": F(0o644, "é\n".encode()),
    "日本語/ファイル": F(0o644, "にほんご\n".encode()),
    "emoji😀": F(0o755, b"\xf0\x9f\x98\x80\n"),
    "zero-mode": F(0o000, b"no permissions at all\n"),
    "tab\tname": F(0o644, b"tab\n"),
}
RICH_DIRS = {
    "": 0o755,
    "a": 0o755,
    "sub": 0o750,
    "sub/deeper": 0o700,
    "empty_dir": 0o755,
    "nested": 0o755,
    "nested/empty": 0o555,
    "sticky": 0o1777,
    "sgid": 0o2755,
    "日本語": 0o755,
}


def test_rich_tree(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        files = {k: v for k, v in RICH_FILES.items() if v.mode & 0o400}
    else:
        files = RICH_FILES
    root = tmp_path / "t"
    build_tree(root, files, RICH_DIRS)
    assert ours(root) == model_manifest(files, RICH_DIRS)


def _tmpfs_dir() -> Path | None:
    """A writable directory on tmpfs (``/dev/shm`` on Linux), if there is one."""
    try:
        with open("/proc/mounts") as f:
            mounts = [line.split()[1:3] for line in f]
    except OSError:
        return None
    for where, kind in mounts:
        if kind == "tmpfs" and where == "/dev/shm" and os.access(where, os.W_OK):
            return Path(where)
    return None


def test_tree_on_tmpfs(tmp_path: Path) -> None:
    """tmpfs answers RWF_NOWAIT reads with EOPNOTSUPP: its files are still read and hashed
    (they used to fail with "cannot read it (Operation not supported)")."""
    shm = _tmpfs_dir()
    if shm is None:
        pytest.skip("no tmpfs at /dev/shm on this machine")
    files = {k: v for k, v in RICH_FILES.items() if v.mode & 0o400 or os.geteuid() == 0}
    files.update({f"many/{i:03}": F(0o644, os.urandom(i * 97)) for i in range(40)})
    files["mid.bin"] = F(0o644, os.urandom(3 * 1024 * 1024))
    dirs = {**RICH_DIRS, "many": 0o755}
    root = Path(tempfile.mkdtemp(dir=shm, prefix="snapdir-test-"))
    try:
        build_tree(root / "t", files, dirs)
        on_disk = tmp_path / "t"
        build_tree(on_disk, files, dirs)
        assert ours(root / "t") == ours(on_disk) == model_manifest(files, dirs)
    finally:
        for d, _, _ in os.walk(root):
            os.chmod(d, 0o700)
        shutil.rmtree(root)


def test_root_spelled_differently(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"f": F(0o644, b"x"), "d/g": F(0o644, b"y")}
    dirs = {"": 0o755, "d": 0o755}
    root = tmp_path / "t"
    build_tree(root, files, dirs)
    expected = model_manifest(files, dirs)
    monkeypatch.chdir(root / "d")
    for spelled in [str(root), str(root) + "/", "..", "../", "./..", "../../t", str(root) + "/."]:
        assert ours(spelled) == expected, spelled
    monkeypatch.chdir(root)
    assert ours(".") == expected


def test_sizes_add_up(tmp_path: Path) -> None:
    files = {"x/y/z": F(0o644, b"1234567"), "x/w": F(0o644, b"abc"), "v": F(0o644, b"")}
    dirs = {"": 0o755, "x": 0o755, "x/y": 0o755}
    root = tmp_path / "t"
    build_tree(root, files, dirs)
    text = ours(root)
    sizes = {ln.split(" ", 4)[4]: int(ln.split(" ", 4)[3]) for ln in text.splitlines()}
    assert sizes == {"./": 10, "./v": 0, "./x/": 10, "./x/w": 3, "./x/y/": 7, "./x/y/z": 7}
    assert text == model_manifest(files, dirs)


def test_dir_checksum_dedups_direct_children_only(tmp_path: Path) -> None:
    # a/ and b/ hold the same single file: their checksums are equal and collapse in ./
    root = tmp_path / "t"
    files = {"a/f": F(0o644, b"x"), "b/f": F(0o644, b"x")}
    dirs = {"": 0o755, "a": 0o755, "b": 0o755}
    build_tree(root, files, dirs)
    sub = b3(b3(b"x").encode())
    top = b3(sub.encode())
    assert ours(root).splitlines()[0] == f"D 755 {top} 2 ./"


# --- symlinks -----------------------------------------------------------------------------


def _link_tree(root: Path) -> dict[str, str]:
    make_dir(root, 0o755)
    make_dir(root / "real", 0o755)
    write_file(root / "real" / "f.txt", b"hello world", 0o644)
    make_dir(root / "real" / "inner", 0o700)
    write_file(root / "real" / "inner" / "g", b"gee", 0o600)
    make_dir(root / "outside-dir", 0o711)
    targets = {
        "link-f": "real/f.txt",
        "link-abs": str(root / "real" / "f.txt"),
        "link-chain": "link-f",
        "link-d": "real",
        "link-d-abs": str(root / "real"),
        "real/up-file": "../real/f.txt",
        "dangling": "does-not-exist",
        "dangling-dir": "nowhere/",
        "link-empty-dir": "outside-dir",
    }
    for name, target in targets.items():
        os.symlink(target, root / name)
    return targets


def test_followed_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "t"
    t = _link_tree(root)
    hello = b"hello world"
    files = {
        "real/f.txt": F(0o644, hello),
        "real/inner/g": F(0o600, b"gee"),
        "real/up-file": F(0o777, hello, len(t["real/up-file"])),
        "link-f": F(0o777, hello, len("real/f.txt")),
        "link-abs": F(0o777, hello, len(t["link-abs"])),
        "link-chain": F(0o777, hello, len("link-f")),
        "link-d/f.txt": F(0o644, hello),
        "link-d/inner/g": F(0o600, b"gee"),
        "link-d/up-file": F(0o777, hello, len(t["real/up-file"])),
        "link-d-abs/f.txt": F(0o644, hello),
        "link-d-abs/inner/g": F(0o600, b"gee"),
        "link-d-abs/up-file": F(0o777, hello, len(t["real/up-file"])),
    }
    dirs = {"": 0o755, "real": 0o755, "real/inner": 0o700, "link-d": 0o777,
            "link-d/inner": 0o700, "link-d-abs": 0o777, "link-d-abs/inner": 0o700,
            "outside-dir": 0o711, "link-empty-dir": 0o777}
    assert ours(root) == model_manifest(files, dirs)


def test_no_follow_leaves_links_out(tmp_path: Path) -> None:
    root = tmp_path / "t"
    _link_tree(root)
    files = {"real/f.txt": F(0o644, b"hello world"), "real/inner/g": F(0o600, b"gee")}
    dirs = {"": 0o755, "real": 0o755, "real/inner": 0o700, "outside-dir": 0o711}
    assert ours(root, follow=False) == model_manifest(files, dirs)


def test_only_dangling_links(tmp_path: Path) -> None:
    root = tmp_path / "t"
    make_dir(root, 0o755)
    os.symlink("nope", root / "d1")
    os.symlink("/nonexistent/path/x", root / "d2")
    os.symlink("d1", root / "d3")
    assert ours(root) == f"D 755 {EMPTY_B3} 0 ./\n"


def test_fifos_sockets_devices_left_out(tmp_path: Path) -> None:
    root = tmp_path / "t"
    make_dir(root, 0o755)
    write_file(root / "keep", b"k", 0o644)
    os.mkfifo(root / "fifo", 0o644)
    os.symlink("fifo", root / "link-to-fifo")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.getcwd()
    os.chdir(root)  # unix socket paths are limited to ~108 bytes
    try:
        sock.bind("sock")
    finally:
        os.chdir(old)
    try:
        assert stat.S_ISSOCK(os.lstat(root / "sock").st_mode)
        try:
            os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except (PermissionError, OSError):
            pass  # not allowed here: the FIFO and the socket still count
        os.symlink("/dev/null", root / "link-to-dev-null")
        expected = model_manifest({"keep": F(0o644, b"k")}, {"": 0o755})
        assert ours(root) == expected
        assert ours(root, follow=False) == expected
    finally:
        sock.close()


# --- exclude ------------------------------------------------------------------------------


def _exclude_tree(root: Path) -> None:
    files = {"keep.txt": F(0o644, b"k"), "drop.log": F(0o644, b"d"),
             "sub/inner.txt": F(0o644, b"i"), "sub/deep/x.log": F(0o644, b"x"),
             "file1": F(0o644, b"1"), "file22": F(0o644, b"22"), "fileX": F(0o644, b"X"),
             "subway": F(0o644, b"w")}
    build_tree(root, files, {"": 0o755, "sub": 0o755, "sub/deep": 0o755})


@pytest.mark.parametrize(("patterns", "gone"), [
    ([r"\.log$"], {"./drop.log", "./sub/deep/x.log"}),
    ([r"/sub$"], {"./sub/", "./sub/inner.txt", "./sub/deep/", "./sub/deep/x.log"}),
    ([r"/deep$", r"keep"], {"./keep.txt", "./sub/deep/", "./sub/deep/x.log"}),
    ([r"/file[[:digit:]]+$"], {"./file1", "./file22"}),
    ([r"/sub/"], {"./sub/inner.txt", "./sub/deep/", "./sub/deep/x.log"}),
    ([r"^/nothing-matches"], set()),
])
def test_exclude(tmp_path: Path, patterns: list[str], gone: set[str]) -> None:
    root = tmp_path / "t"
    _exclude_tree(root)
    full = ours(root)
    got = ours(root, exclude=tuple(patterns))
    full_paths = [ln.split(" ", 4)[4] for ln in full.splitlines()]
    got_paths = [ln.split(" ", 4)[4] for ln in got.splitlines()]
    assert got_paths == [p for p in full_paths if p not in gone]
    # the kept files keep their lines; the directories are re-summed from what is left
    kept_files = {ln for ln in full.splitlines() if ln.startswith("F ")
                  and ln.split(" ", 4)[4] not in gone}
    assert {ln for ln in got.splitlines() if ln.startswith("F ")} == kept_files


_SUB = {"./sub/", "./sub/inner.txt", "./sub/deep/", "./sub/deep/x.log"}


@pytest.mark.parametrize(("patterns", "gone"), [
    # leading inline flags, alone and with other patterns (they were an internal error)
    ([r"(?i)/KEEP\.TXT$"], {"./keep.txt"}),
    ([r"\.log$", r"(?i)/FILEX$"], {"./drop.log", "./sub/deep/x.log", "./fileX"}),
    ([r"(?x) /file \d+ $"], {"./file1", "./file22"}),
    # Rust regex spellings Python reads differently
    ([r"/file[[:^digit:]]$"], {"./fileX"}),
    ([r"/\<sub\>"], _SUB),  # word boundaries: not ./subway
    ([r"\.log\z"], {"./drop.log", "./sub/deep/x.log"}),
    # '[:alnum:]' outside brackets is the set {: a l n u m}, as in Rust regex
    ([r"/s[:alnum:]b"], _SUB | {"./subway"}),
], ids=["flags", "flags-second", "verbose", "negated-posix", "word-bounds", "z", "bare-posix"])
def test_exclude_rust_regex_syntax(tmp_path: Path, patterns: list[str], gone: set[str]
                                   ) -> None:
    """--exclude reads regexes as snapdir 1.x (Rust regex) does."""
    root = tmp_path / "t"
    _exclude_tree(root)
    full_paths = [ln.split(" ", 4)[4] for ln in ours(root).splitlines()]
    got_paths = [ln.split(" ", 4)[4] for ln in ours(root, exclude=tuple(patterns)).splitlines()]
    assert got_paths == [p for p in full_paths if p not in gone]


@pytest.mark.parametrize("pattern", [r"[[a]]", r"[a-z&&[^aeiou]]", r"[a-c--b]", r"[[:foo:]]",
                                     r"[a[:^digit:]]", r"(unclosed"])
def test_exclude_python_would_misread_is_refused(tmp_path: Path, pattern: str) -> None:
    """Nested classes and set operations mean something else to Python's re: refused with
    one line naming the pattern, never a silently different manifest (or a warning)."""
    root = tmp_path / "t"
    _exclude_tree(root)
    with pytest.raises(UsageError) as ei:
        ours(root, exclude=(pattern,))
    assert pattern in _one_line(ei.value)


def test_exclude_searches_absolute_path_root_never_excluded(tmp_path: Path) -> None:
    root = tmp_path / "t"
    _exclude_tree(root)
    # every entry's absolute path starts with the root's: everything goes but the root
    pat = "^" + re.escape(str(root.resolve())) + "/"
    assert ours(root, exclude=(pat,)) == f"D 755 {EMPTY_B3} 0 ./\n"
    # a pattern matching the root itself (no trailing slash) only
    assert ours(root, exclude=(re.escape(str(root.resolve())) + "$",)) == ours(root)
    # the relative './' form is not what is searched
    assert ours(root, exclude=(r"^\./",)) == ours(root)


def test_exclude_absolute_path_keeps_dotdot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    base = tmp_path.resolve()
    make_dir(base / "a" / "b", 0o755)
    root = base / "a" / "t"
    _exclude_tree(root)
    monkeypatch.chdir(base / "a" / "b")
    full = ours("./../t/.")
    assert full == ours(root)
    # searched: <cwd>/../t/<rel>  ('.' parts dropped, '..' kept, not resolved)
    got = ours("./../t/.", exclude=(r"/a/b/\.\./t/keep\.txt$",))
    assert "./keep.txt" not in got
    assert got.count("\n") == full.count("\n") - 1
    assert ours("./../t/.", exclude=(r"/a/t/keep\.txt$",)) == full  # resolved form: no match
    assert ours("./../t/.", exclude=(r"/\./",)) == full  # '.' components are gone
    assert ours("./../t/.", exclude=(r"/t/\.",)) == full


def test_exclude_applies_to_link_path_not_target(tmp_path: Path) -> None:
    root = tmp_path / "t"
    _link_tree(root)
    got = ours(root, exclude=(r"/link-f$", r"/link-d$"))
    paths = [ln.split(" ", 4)[4] for ln in got.splitlines()]
    assert "./link-f" not in paths
    assert not any(p.startswith("./link-d/") for p in paths)
    assert "./real/f.txt" in paths
    assert "./link-chain" in paths  # its own path does not match


def test_exclude_skips_unsupported_names(tmp_path: Path) -> None:
    root = tmp_path / "t"
    make_dir(root, 0o755)
    make_dir(root / "bad", 0o755)
    write_file(root / "bad" / "x\ny", b"z")
    write_file(root / "ok", b"o")
    assert ours(root, exclude=(r"/bad$",)) == model_manifest({"ok": F(0o644, b"o")}, {"": 0o755})
    assert ours(root, exclude=(r"/bad/x",)) == model_manifest(
        {"ok": F(0o644, b"o")}, {"": 0o755, "bad": 0o755})


# --- other checksums ----------------------------------------------------------------------

# Above the 8 MiB threshold where large files are hashed differently, and across two
# boundaries of the 16 MiB map window that path slides over the file.
BIG = 33 * 1024 * 1024


def _checksum_tree(root: Path) -> tuple[dict[str, F], dict[str, int]]:
    big = bytes(range(256)) * (BIG // 256) + b"tail"
    files = {"a.txt": F(0o644, b"hello"), "d/b": F(0o600, b"hello"), "d/e": F(0o644, b""),
             "big.bin": F(0o644, big)}
    dirs = {"": 0o755, "d": 0o755, "d/empty": 0o755}
    build_tree(root, files, dirs)
    return files, dirs


@pytest.mark.parametrize(("algo", "fn"), [("b3sum", b3), ("md5sum", md5),
                                          ("sha256sum", sha256)])
def test_checksum_bin(tmp_path: Path, algo: str, fn: object) -> None:
    root = tmp_path / "t"
    files, dirs = _checksum_tree(root)
    m = ours_manifest(root, checksum_bin=algo)
    assert m.text() == model_manifest(files, dirs, fn)  # type: ignore[arg-type]
    assert m.id == b3(m.encode())  # the id is always plain BLAKE3


def test_keyed_blake3_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "t"
    files, dirs = _checksum_tree(root)
    ctx = "snapdir tests 2024-01-01 keyed manifest"
    m = ours_manifest(root, context=ctx)
    expected = model_manifest(files, dirs, b3k(ctx))
    assert m.text() == expected
    assert m.id == b3(expected.encode())
    assert m.text() != model_manifest(files, dirs, b3)
    monkeypatch.setenv("SNAPDIR_MANIFEST_CONTEXT", ctx)
    assert ours(root) == expected  # the environment variable is the default
    monkeypatch.setenv("SNAPDIR_MANIFEST_CONTEXT", "another context")
    assert ours(root) == model_manifest(files, dirs, b3k("another context"))


# --- refusals -----------------------------------------------------------------------------


def _one_line(exc: SnapdirError) -> str:
    msg = exc.format_message()
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("where", ["file", "dir", "link", "nested"])
def test_newline_in_name_is_refused(tmp_path: Path, where: str) -> None:
    root = tmp_path / "t"
    make_dir(root, 0o755)
    write_file(root / "fine", b"f")
    name = "bad\nname"
    if where == "file":
        write_file(root / name, b"x")
    elif where == "dir":
        make_dir(root / name)
    elif where == "link":
        os.symlink("fine", root / name)
    else:
        make_dir(root / "deep" / "er")
        write_file(root / "deep" / "er" / name, b"x")
    with pytest.raises(UnsupportedName) as ei:
        ours(root)
    msg = _one_line(ei.value)
    assert "bad" in msg
    assert "name" in msg
    assert ei.value.path is not None
    assert "bad\nname" in ei.value.path or "bad\\nname" in ei.value.path


@pytest.mark.parametrize("where", ["file", "dir"])
def test_non_utf8_name_is_refused(tmp_path: Path, where: str) -> None:
    root = tmp_path / "t"
    make_dir(root, 0o755)
    raw = os.fsencode(root) + b"/caf\xe9-latin1"
    if where == "file":
        fd = os.open(raw, os.O_CREAT | os.O_WRONLY, 0o644)
        os.close(fd)
    else:
        os.mkdir(raw, 0o755)
    with pytest.raises(UnsupportedName) as ei:
        ours(root)
    msg = _one_line(ei.value)
    assert "caf" in msg
    assert "latin1" in msg
    with pytest.raises(UnsupportedName):
        ours(root, follow=False)


@pytest.mark.parametrize("name", ["new\nline", "caf\udce9-latin1"], ids=["newline", "non-utf8"])
def test_absolute_root_that_cannot_be_written_is_refused(tmp_path: Path, name: str) -> None:
    """With --absolute every path starts with the root's: a root holding a newline or
    bytes that are not UTF-8 is refused (1.x wrote a manifest it could not read back)."""
    root = tmp_path / name
    make_dir(root, 0o755)
    write_file(root / "f", b"f")
    assert ours(root).startswith("D 755 ")  # relative paths never show the root's name
    with pytest.raises(UnsupportedName) as ei:
        ours(root, absolute=True)
    assert "--absolute" in _one_line(ei.value)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("link", "target"), [
    ("self", "."),
    ("up", ".."),
    ("a/b/c/top", "../../.."),
    ("a/b/c/abs", "<root>/a"),
])
def test_symlink_cycle(tmp_path: Path, link: str, target: str) -> None:
    root = tmp_path / "t"
    make_dir(root / "a" / "b" / "c", 0o755)
    os.chmod(root, 0o755)
    write_file(root / "a" / "f", b"f")
    if link == "up":
        root = root / "a"  # a link to the parent of the root is a cycle too
        link = "b/up"
        target = "../.."
    os.symlink(target.replace("<root>", str(root)), root / link)
    start = time.monotonic()
    with pytest.raises(SymlinkCycle) as ei:
        ours(root)
    assert time.monotonic() - start < 5
    _one_line(ei.value)
    assert link.rsplit("/", 1)[-1] in str(ei.value)
    ours(root, follow=False)  # not followed: no cycle


def test_two_links_to_one_dir_are_not_a_cycle(tmp_path: Path) -> None:
    root = tmp_path / "t"
    make_dir(root / "real", 0o755)
    os.chmod(root, 0o755)
    write_file(root / "real" / "f", b"f")
    os.symlink("real", root / "l1")
    os.symlink("real", root / "l2")
    os.symlink("real", root / "l3")
    text = ours(root)
    assert "./l1/f" in text
    assert "./l2/f" in text


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as ei:
        ours(tmp_path / "missing")
    assert "missing" in _one_line(ei.value)


def test_root_is_a_file(tmp_path: Path) -> None:
    write_file(tmp_path / "f", b"x")
    with pytest.raises(SourceError) as ei:
        ours(tmp_path / "f")
    _one_line(ei.value)


def test_root_is_a_dangling_link(tmp_path: Path) -> None:
    os.symlink("nowhere", tmp_path / "l")
    with pytest.raises(SourceError):
        ours(tmp_path / "l")


_NO_DAC = r"""
import ctypes, json, os, sys
if os.geteuid() == 0:  # drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: chmod 000 then bites
    libc = ctypes.CDLL(None, use_errno=True)
    class Hdr(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
    class Data(ctypes.Structure):
        _fields_ = [("e", ctypes.c_uint32), ("p", ctypes.c_uint32), ("i", ctypes.c_uint32)]
    hdr, data = Hdr(0x20080522, 0), (Data * 2)()
    if libc.capget(ctypes.byref(hdr), data) != 0:
        raise SystemExit("capget failed")
    data[0].e &= ~6
    data[0].p &= ~6
    if libc.capset(ctypes.byref(hdr), data) != 0:
        raise SystemExit("capset failed")
from snapdir.snapshot import ManifestOptions, build_manifest
try:
    out = {"ok": build_manifest(sys.argv[1], ManifestOptions(stat_cache=False)).text()}
except Exception as exc:
    out = {"error": [c.__name__ for c in type(exc).__mro__], "msg": str(exc),
           "path": getattr(exc, "path", None)}
print(json.dumps(out))
"""


def _without_dac(root: Path) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", _NO_DAC, str(root)], capture_output=True,
                          text=True, timeout=60, check=False, cwd="/")
    if proc.returncode != 0 and "cap" in proc.stderr + proc.stdout:
        pytest.skip(f"cannot drop capabilities here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


@pytest.mark.parametrize("what", ["file", "dir"])
def test_unreadable_is_a_source_error(tmp_path: Path, what: str) -> None:
    root = tmp_path / "t"
    make_dir(root, 0o755)
    write_file(root / "ok", b"ok")
    if what == "file":
        write_file(root / "secret", b"s", 0o000)
    else:
        make_dir(root / "secret", 0o000)
    try:
        out = _without_dac(root)
        assert "ok" not in out, out
        assert "SourceError" in out["error"]  # type: ignore[operator]
        assert "UnsupportedName" not in out["error"]  # type: ignore[operator]
        assert "secret" in str(out["msg"])
        assert "\n" not in str(out["msg"])
        assert "secret" in str(out["path"])
    finally:
        os.chmod(root / "secret", 0o755)


def test_manifest_of_names_scan_accepts_is_parseable(tmp_path: Path) -> None:
    """Whatever the walk accepts, our own strict parser must read back (push/pull/id)."""
    root = tmp_path / "t"
    make_dir(root, 0o755)
    for name in ["tab\tname", "bell\x07", "esc\x1b[0m", "sep\x1e", "nel\u0085", "ls\u2028"]:
        write_file(root / name, name.encode())
    from coreutil import manifest_mod

    m = ours_manifest(root)
    assert manifest_mod.parse(m.encode()) == m


def test_carriage_return_name_round_trips(tmp_path: Path) -> None:
    """snapdir 1.12 accepts '\\r' in names; whatever the walk accepts, parse() must too."""
    root = tmp_path / "t"
    make_dir(root, 0o755)
    write_file(root / "c\rr", b"cr")
    from coreutil import manifest_mod

    m = ours_manifest(root)
    assert m.text() == model_manifest({"c\rr": F(0o644, b"cr")}, {"": 0o755})
    assert manifest_mod.parse(m.encode()) == m


# --- upload sources -------------------------------------------------------------------------


@pytest.mark.parametrize("absolute", [False, True])
@pytest.mark.parametrize("spelling", ["{root}", "{root}/", "{rel}/"])
def test_sources_name_a_readable_file_with_the_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     absolute: bool, spelling: str) -> None:
    import blake3

    from snapdir.snapshot import ManifestOptions, Sources, build_manifest

    root = tmp_path / "t"
    (root / "d").mkdir(parents=True)
    write_file(root / "a.txt", b"alpha")
    write_file(root / "d" / "b.bin", b"b" * 5000)
    write_file(tmp_path / "outside.bin", b"o" * 3)  # a followed link, size 3 != link size
    os.symlink(tmp_path / "outside.bin", root / "d" / "link")
    monkeypatch.chdir(tmp_path)
    sources = Sources()
    m = build_manifest(spelling.format(root=root, rel="t"),
                       ManifestOptions(absolute=absolute, stat_cache=False), sources=sources)
    assert set(sources) == {e.checksum for e in m.files()}
    assert len(sources) == 3
    for digest in sources:
        path, size = sources[digest]
        data = Path(path).read_bytes()
        assert (blake3.blake3(data).hexdigest(), len(data)) == (digest, size)

"""Our manifests and ids equal those of the reference snapdir 1.12, run as a subprocess."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from coreutil import RICH_DIRS_FOR_REF, RICH_FILES_FOR_REF, build_tree, ours_manifest, write_file
from reference import ref_id, ref_manifest, require_reference


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every case the reference supports, in one tree."""
    require_reference()
    root = tmp_path_factory.mktemp("xcheck") / "rich"
    build_tree(root, RICH_FILES_FOR_REF, RICH_DIRS_FOR_REF)
    os.chmod(root, 0o700)
    write_file(root / "c\rr", b"carriage return in the name")
    os.makedirs(root / "real" / "inner")
    write_file(root / "real" / "f.txt", b"hello world")
    write_file(root / "real" / "inner" / "g", b"gee", 0o600)
    for name, target in {
        "link-f": "real/f.txt", "link-abs": str(root / "real" / "f.txt"),
        "link-chain": "link-f", "link-d": "real", "link-d-abs": str(root / "real"),
        "real/up-file": "../real/f.txt", "dangling": "nope", "dangling-dir": "nowhere/",
        "link-empty": "empty_dir", "link-fifo": "fifo", "sub/link with space": "../a.txt",
    }.items():
        os.symlink(target, root / name)
    os.mkfifo(root / "fifo")
    old = os.getcwd()
    os.chdir(root)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind("sock")
    finally:
        os.chdir(old)
    sock.close()  # the socket file stays
    for d in ("real", "real/inner"):
        os.chmod(root / d, 0o755)
    os.chmod(root, 0o755)
    return root


def _ours(root: str | Path, **opts: object) -> tuple[str, str]:
    m = ours_manifest(root, **opts)
    return m.text(), m.id


def _check(root: str | Path, *, no_follow: bool = False, absolute: bool = False,
           exclude: tuple[str, ...] = ()) -> str:
    text, sid = _ours(root, follow=not no_follow, absolute=absolute, exclude=exclude)
    ref = ref_manifest(root, no_follow=no_follow, absolute=absolute, exclude=exclude)
    assert text == ref
    assert sid == ref_id(root, no_follow=no_follow, absolute=absolute, exclude=exclude)
    return text


def test_rich_tree_followed(rich: Path) -> None:
    text = _check(rich)
    assert "./link-d/inner/g" in text  # the tree really is rich
    assert "./c\rr" in text


def test_rich_tree_no_follow(rich: Path) -> None:
    text = _check(rich, no_follow=True)
    assert "link" not in text


def test_rich_tree_absolute(rich: Path) -> None:
    text = _check(rich, absolute=True)
    assert f" {rich}/\n" in text


@pytest.mark.parametrize("exclude", [
    (r"\.txt$",),
    (r"/sub$",),
    (r"/sub/",),
    (r"/link-d$", r"emoji"),
    (r"/file[[:digit:]]+$", r"/[[:space:]]"),
    (r"^/",),
    (r"/real$",),  # the links into it still show the target's content
    # Rust regex syntax that Python's re reads differently unless translated
    (r"(?i)/SUB$",),
    (r"\<sub\>", r"(?i)EMOJI"),
    (r"/file[[:^alpha:]]", r"[:space:]"),
    (r"\.txt\z",),
])
def test_rich_tree_excludes(rich: Path, exclude: tuple[str, ...]) -> None:
    _check(rich, exclude=exclude)
    _check(rich, exclude=exclude, no_follow=True)


def test_relative_root_with_dot_and_dotdot(rich: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(rich / "real" / "inner")
    spelled = "./../../../rich/."
    cwd = os.getcwd()
    for absolute, exclude in [(False, ()), (True, ()),
                              (False, (r"/inner/\.\./\.\./\.\./rich/a\.txt$",)),
                              (True, (r"/rich/sub$",))]:
        text, sid = _ours(spelled, absolute=absolute, exclude=exclude)
        assert text == ref_manifest(spelled, cwd=cwd, absolute=absolute, exclude=exclude)
        assert sid == ref_id(spelled, cwd=cwd, absolute=absolute, exclude=exclude)
        if exclude and not absolute:
            assert "./a.txt\n" not in text


def test_symlinked_root(rich: Path) -> None:
    link = rich.parent / "root-link"
    if not link.exists():
        os.symlink(rich, link)
    _check(link)
    _check(link, absolute=True)


def test_symlinked_root_trailing_slash(rich: Path) -> None:
    """'LINK/' names the link itself, as 'LINK' does: the root line has mode 777."""
    link = rich.parent / "root-link"
    if not link.exists():
        os.symlink(rich, link)
    assert _check(str(link) + "/").startswith("D 777 ")


def test_empty_and_tiny_trees(tmp_path: Path) -> None:
    require_reference()
    (tmp_path / "e").mkdir(mode=0o755)
    os.chmod(tmp_path / "e", 0o755)
    _check(tmp_path / "e")
    (tmp_path / "d").mkdir()
    os.chmod(tmp_path / "d", 0o2775)
    write_file(tmp_path / "d" / "a.txt", b"a")
    write_file(tmp_path / "d" / "a-b", b"a")
    os.makedirs(tmp_path / "d" / "a" / "b")
    _check(tmp_path / "d")


def test_large_file(tmp_path: Path) -> None:
    require_reference()
    root = tmp_path / "big"
    root.mkdir()
    write_file(root / "big.bin", os.urandom(9 * 1024 * 1024 + 7))
    write_file(root / "exact", b"\0" * (8 * 1024 * 1024))
    _check(root)

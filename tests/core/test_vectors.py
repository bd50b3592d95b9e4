"""Every vector of FORMAT.md, built as a real tree with explicit modes."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest
from coreutil import manifest_mod, ours_manifest, write_file


def _b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def test_blake3_vectors() -> None:
    assert _b3(b"") == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    assert _b3(b"foo\n") == "49dc870df1de7fd60794cebce449f5ccdae575affaa67a24b62acb03e039db92"


def _check(root: Path, text: str, snapshot_id: str) -> None:
    m = ours_manifest(root)
    assert m.text() == text
    assert m.encode() == text.encode()
    assert m.id == snapshot_id
    # the id is plain BLAKE3 of the manifest text, trailing newline included
    assert _b3(text.encode()) == snapshot_id
    assert manifest_mod.snapshot_id_of(text.encode()) == snapshot_id
    assert manifest_mod.parse(text.encode()).encode() == text.encode()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


def test_empty_dir(root: Path) -> None:
    os.chmod(root, 0o755)
    _check(root,
           "D 755 af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262 0 ./\n",
           "bb83e51d36a3ffa25011d1ea67419da2ca7609d3537b993286d9bec752519acc")


def test_hello(root: Path) -> None:
    write_file(root / "a.txt", b"hello", 0o644)
    os.chmod(root, 0o755)
    _check(root,
           "D 755 6cd17c61c7e42c50586ee5f3f54dbc4f809f71073fc176ed2ae865103dd33625 5 ./\n"
           "F 644 ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f 5 ./a.txt\n",
           "5803426341cd88149ee1b981e8fa337b728d5cff9be5b92c3c4e1e214dc9d504")


def test_two_empty_files_dedup_then_echo(root: Path) -> None:
    write_file(root / "foo.txt", b"", 0o600)
    write_file(root / "bar.txt", b"", 0o600)
    os.chmod(root, 0o700)
    empty = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    # the two equal child checksums collapse to one: the dir checksum is BLAKE3(empty hex)
    assert _b3(empty.encode()) == \
        "dba5865c0d91b17958e4d2cac98c338f85cbbda07b71a020ab16c391b5e7af4b"
    _check(root,
           "D 700 dba5865c0d91b17958e4d2cac98c338f85cbbda07b71a020ab16c391b5e7af4b 0 ./\n"
           f"F 600 {empty} 0 ./bar.txt\n"
           f"F 600 {empty} 0 ./foo.txt\n",
           "c678a299380893769bd7795628b96147229b410a9d5a5b7cae563bcae3c27857")

    # `echo foo > foo.txt`: the mode stays 600 (the file is rewritten in place)
    with open(root / "foo.txt", "wb") as fh:
        fh.write(b"foo\n")
    assert os.stat(root / "foo.txt").st_mode & 0o7777 == 0o600
    assert ours_manifest(root).id == \
        "8af03a1bec09b1838d2c4f56c6940ed35ccdad1064243d2d775e8347ba82b9be"

    with open(root / "bar.txt", "wb") as fh:
        fh.write(b"bar\n")
    assert ours_manifest(root).id == \
        "df4b3a7b6c04e5b14ebb548a28ac0dea6c645f0ecfde85df2c0911ac10d2e8a9"


def test_symlink_example(root: Path) -> None:
    (root / "real").mkdir()
    write_file(root / "real" / "f.txt", b"hello world", 0o644)
    os.symlink("real/f.txt", root / "link-f")
    os.symlink("real", root / "link-d")
    os.chmod(root / "real", 0o755)
    os.chmod(root, 0o755)
    text = (
        "D 755 6029cdd1588b8999a407289a7d59453647c4f59bab5bd875ef6606f5b23dd5c6 32 ./\n"
        "D 777 2ee12b1d72231fef5c92252a955a167ea1bdf3d1112cd1ab30b4d01f1dac010a 11 ./link-d/\n"
        "F 644 d74981efa70a0c880b8d8c1985d075dbcbf679b99a5f9914e5aaf96b831a9e24 11 "
        "./link-d/f.txt\n"
        "F 777 d74981efa70a0c880b8d8c1985d075dbcbf679b99a5f9914e5aaf96b831a9e24 10 ./link-f\n"
        "D 755 2ee12b1d72231fef5c92252a955a167ea1bdf3d1112cd1ab30b4d01f1dac010a 11 ./real/\n"
        "F 644 d74981efa70a0c880b8d8c1985d075dbcbf679b99a5f9914e5aaf96b831a9e24 11 "
        "./real/f.txt\n"
    )
    m = ours_manifest(root)
    assert m.text() == text
    assert m.id == _b3(text.encode())

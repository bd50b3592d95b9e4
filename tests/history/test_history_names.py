"""Revision names of any length, on a file store (one directory per name)."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import Cli, make_tree


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_long_names_push_and_list_on_a_file_store(cli: Cli, tmp_path: Path) -> None:
    """A directory named with 30 CJK characters (270 bytes quoted: longer than a file
    name may be) used to fail the push after its data was in ("File name too long")."""
    store = str(tmp_path / "store")
    long_dir = tmp_path / ("数据集" * 10)
    make_tree(long_dir, {"f": b"z\n"})
    pushed = cli("push", "--store", store, str(long_dir))
    sid = pushed.out.strip()
    assert pushed.rc == 0
    assert sid == cli("id", str(long_dir)).out.strip()
    assert lines(cli("revisions", "--store", store, "数据集" * 10).out) == [sid]
    # two long names with the same first 300 bytes stay apart, and a short one too
    common = "n" * 300
    ids = {}
    for suffix in ("-a", "-b"):
        src = make_tree(tmp_path / f"src{suffix}", {"w": os.urandom(64)})
        ids[suffix] = cli("push", "--store", store, "--name", common + suffix,
                          str(src)).out.strip()
    for suffix, sid_ in ids.items():
        assert lines(cli("revisions", "--store", store, common + suffix).out) == [sid_]
    assert lines(cli("revisions", "--store", store, common).out) == []
    assert lines(cli("revisions", "--store", store, "数据集").out) == []


def test_a_name_or_id_nobody_knows_is_a_note_not_silence(cli: Cli, tmp_path: Path) -> None:
    """`revisions` of a mistyped name and `locations` of an id this machine never saw
    print nothing on stdout (scripts read an empty list) and say so on stderr, exit 0."""
    store = tmp_path / "store"
    sid = cli("push", "-q", "--store", str(store), str(make_tree(tmp_path / "imagenet",
                                                               {"f": b"x\n"}))).out.strip()
    r = cli("revisions", "--store", str(store), "imagenett")
    assert (r.rc, r.out) == (0, "")
    assert r.err == f"snapdir: note: no revisions named 'imagenett' in {store.as_uri()}\n"
    assert cli("revisions", "--store", str(store), "imagenet").out.split() == [sid]
    unknown = "c" * 64
    r = cli("locations", unknown)
    assert (r.rc, r.out) == (0, "")
    assert unknown in r.err
    assert r.err.startswith("snapdir: note: ")
    assert cli("locations", sid).err == ""

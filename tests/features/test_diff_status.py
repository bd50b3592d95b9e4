"""``snapdir diff ID_A ID_B`` and ``snapdir status --id ID DIR``: manifests only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from featkit import Cli, json_lines, make_tree, sample_tree

if TYPE_CHECKING:
    from conftest import SeaweedFS

pytestmark = pytest.mark.s3

CHANGES = ["D ./meta.json", "A ./new.txt", "M ./shard-00/part-0.bin",
           "M ./shard-01/part-2.bin"]


def test_diff_and_status(s3_env: SeaweedFS, cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    sample_tree(root, shards=2)
    uri = s3_env.unique_uri("diff")
    a = cli("push", "--store", uri, str(root)).out.strip()
    os.remove(root / "meta.json")
    make_tree(root, {"new.txt": b"new", "shard-00/part-0.bin": b"rewritten"})
    os.chmod(root / "shard-01" / "part-2.bin", 0o600)  # a mode change is a modification
    b_id = cli("push", "--store", uri, str(root)).out.strip()

    other = cli.machine("other")  # knows nothing locally: manifests come from the store
    r = other("diff", "--store", uri, a, b_id)
    assert r.out.splitlines() == CHANGES
    assert other("diff", "--store", uri, "--exit-code", a, b_id, check=False).rc == 1
    same = other("diff", "--store", uri, "--exit-code", a, a, check=False)
    assert (same.rc, same.out) == (0, "")
    js = json_lines(other("diff", "--json", "--store", uri, a, b_id).out)
    assert [(j["change"][0].upper(), j["path"]) for j in js] == [
        tuple(c.split(" ")) for c in CHANGES]
    # manifests only: no object was downloaded
    objects = other.home / "cache" / "store" / ".objects"
    assert not objects.exists() or not any(p.is_file() for p in objects.rglob("*"))

    r = other("status", "--store", uri, "--id", a, str(root))
    assert r.out.splitlines() == CHANGES
    assert other("status", "--store", uri, "--id", a, "--exit-code", str(root),
                 check=False).rc == 1
    clean = other("status", "--store", uri, "--id", b_id, "--exit-code", str(root),
                  check=False)
    assert (clean.rc, clean.out) == (0, "")
    assert json_lines(other("status", "--json", "--store", uri, "--id", b_id,
                            str(root)).out) == []
    assert not objects.exists() or not any(p.is_file() for p in objects.rglob("*"))


def test_directories_count_when_added_deleted_or_their_mode_changes(cli: Cli,
                                                                    tmp_path: Path) -> None:
    """Two different ids never diff as equal: an empty directory added or removed, or a
    directory's own mode, is a change; a directory whose contents changed is not listed
    for that alone."""
    root = make_tree(tmp_path / "ds", {"a/x": b"x", "b/y": b"y"})
    store = str(tmp_path / "store")
    a = cli("push", "--store", store, str(root)).out.strip()
    (root / "empty").mkdir()
    os.chmod(root / "b", 0o700)
    (root / "a" / "x").write_bytes(b"changed")
    b_id = cli("push", "--store", store, str(root)).out.strip()
    assert b_id != a
    want = ["M ./a/x", "A ./empty/", "M ./b/"]
    assert sorted(cli("diff", "--store", store, a, b_id).out.splitlines()) == sorted(want)
    back = cli("diff", "--store", store, b_id, a).out.splitlines()
    assert sorted(back) == sorted(["M ./a/x", "D ./empty/", "M ./b/"])
    js = json_lines(cli("diff", "--json", "--store", store, a, b_id).out)
    assert {(j["path"], j["type"]) for j in js} == {("./a/x", "F"), ("./empty/", "D"),
                                                   ("./b/", "D")}
    # only an empty directory apart: status says so, and --exit-code fails
    (root / "a" / "x").write_bytes(b"x")
    os.chmod(root / "b", 0o755)
    r = cli("status", "--store", store, "--id", a, "--exit-code", str(root), check=False)
    assert (r.rc, r.out.splitlines()) == (1, ["A ./empty/"])
    (root / "empty").rmdir()
    r = cli("status", "--store", store, "--id", a, "--exit-code", str(root), check=False)
    assert (r.rc, r.out) == (0, "")

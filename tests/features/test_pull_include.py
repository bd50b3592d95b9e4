"""``snapdir pull --include GLOB``: only the selection is downloaded, and it is verified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from featkit import Cli, blake3_hex, object_key, s3_put, sample_tree, tree_bytes

if TYPE_CHECKING:
    from conftest import SeaweedFS

pytestmark = pytest.mark.s3


def cached_objects(machine: Cli) -> set[str]:
    """Digests in the machine's local object cache."""
    root = machine.home / "cache" / "store" / ".objects"
    return {"".join(p.relative_to(root).parts) for p in root.rglob("*") if p.is_file()} \
        if root.exists() else set()


def test_include_pulls_only_the_selection(s3_env: SeaweedFS, cli: Cli, tmp_path: Path) -> None:
    files = sample_tree(tmp_path / "ds", shards=4)
    uri = s3_env.unique_uri("include")
    sid = cli("push", "--store", uri, str(tmp_path / "ds")).out.strip()

    b = cli.machine("b")
    r = json.loads(b("pull", "--json", "--store", uri, "--id", sid,
                     "--include", "shard-0[0-1]/*", str(tmp_path / "dest-b")).out)
    want = {p: d for p, d in files.items() if p.startswith(("shard-00/", "shard-01/"))}
    assert tree_bytes(tmp_path / "dest-b") == want
    assert r["files"] == r["objects_fetched"] == len(want)
    # nothing outside the selection reaches this machine, not even its cache
    assert cached_objects(b) <= {blake3_hex(d) for d in want.values()}

    # repeatable; a bare directory name selects its subtree; the rest is never fetched
    r = json.loads(b("pull", "--json", "--store", uri, "--id", sid, "--include", "shard-03",
                     "--include", "*.json", str(tmp_path / "dest-b")).out)
    assert r["objects_fetched"] == 4
    want |= {p: d for p, d in files.items() if p.startswith("shard-03/") or p == "meta.json"}
    assert tree_bytes(tmp_path / "dest-b") == want
    assert blake3_hex(files["shard-02/part-0.bin"]) not in cached_objects(b)


def test_include_verifies_what_it_selects(s3_env: SeaweedFS, cli: Cli, tmp_path: Path) -> None:
    files = sample_tree(tmp_path / "ds", shards=3)
    uri = s3_env.unique_uri("include-corrupt")
    sid = cli("push", "--store", uri, str(tmp_path / "ds")).out.strip()
    bad = blake3_hex(files["shard-02/part-1.bin"])
    s3_put(s3_env, uri, object_key(bad), b"not the bytes you are looking for")

    c = cli.machine("c")
    c.env["SNAPDIR_RETRIES"] = "1"
    r = c("pull", "--store", uri, "--id", sid, "--include", "shard-02/*", str(tmp_path / "dest-c"),
          check=False)
    assert r.rc == 1
    assert r.out == ""
    assert bad in r.err or "shard-02/part-1.bin" in r.err, r.err
    assert "Traceback" not in r.err
    assert not (tmp_path / "dest-c" / "shard-02" / "part-1.bin").exists()
    assert bad not in cached_objects(c)

    # the corrupt object is outside this selection: never downloaded, so the pull succeeds
    r = c("pull", "--json", "--store", uri, "--id", sid, "--include", "shard-00/*",
          str(tmp_path / "dest-c2"))
    assert json.loads(r.out)["objects_fetched"] == 3
    assert tree_bytes(tmp_path / "dest-c2") == {p: d for p, d in files.items()
                                           if p.startswith("shard-00/")}


def test_include_that_matches_nothing_is_refused(cli: Cli, tmp_path: Path) -> None:
    """A typo in --include used to pull nothing and exit 0 (an empty directory, no
    word on stderr): it is a usage error naming the pattern, before anything is written."""
    sample_tree(tmp_path / "ds", shards=2)
    store = str(tmp_path / "store")
    sid = cli("push", "--store", store, str(tmp_path / "ds")).out.strip()
    for verb in (["pull", "--store", store, "--id", sid, "--include", "shard-9*",
                  str(tmp_path / "dest")],
                 ["pull", "--no-cache", "--store", store, "--id", sid, "--include",
                  "shard-9*", "--include", "nomatch", str(tmp_path / "dest")]):
        r = cli(*verb, check=False)
        assert r.rc == 2, r.err
        assert "--include 'shard-9*'" in r.err
        assert "matches no file" in r.err
        assert len(r.err.strip().splitlines()) == 1
        assert not (tmp_path / "dest").exists()
    # '*' crosses '/': '*.bin' selects every shard's parts
    cli("pull", "--store", store, "--id", sid, "--include", "*.bin", str(tmp_path / "bins"))
    assert sorted(p.name for p in (tmp_path / "bins").rglob("*.bin")) == sorted(
        p.name for p in (tmp_path / "ds").rglob("*.bin"))


def test_include_globs_directories_and_refuses_each_pattern_that_matches_nothing(
        cli: Cli, tmp_path: Path) -> None:
    """A glob matching directory names selects their subtrees (it said "matches no file"),
    an empty directory can be selected, and a mistyped pattern beside a good one is refused
    (it passed silently as long as another pattern matched)."""
    files = sample_tree(tmp_path / "ds", shards=4)
    (tmp_path / "ds" / "logs").mkdir()
    store = str(tmp_path / "store")
    sid = cli("push", "-q", "--store", store, str(tmp_path / "ds")).out.strip()
    cli("pull", "-q", "--store", store, "--id", sid, "--include", "shard-0[12]",
        "--include", "logs", str(tmp_path / "sel"))
    assert tree_bytes(tmp_path / "sel") == {
        p: d for p, d in files.items() if p.startswith(("shard-01/", "shard-02/"))}
    assert (tmp_path / "sel" / "logs").is_dir()
    assert not (tmp_path / "sel" / "shard-00").exists()
    r = cli("pull", "-q", "--store", store, "--id", sid, "--include", "meta.json",
            "--include", "shard-1*", str(tmp_path / "typo"), check=False)
    assert r.rc == 2
    assert "--include 'shard-1*' matches no file or directory" in r.err
    assert "meta.json" not in r.err  # the good pattern is not blamed
    assert not (tmp_path / "typo").exists()

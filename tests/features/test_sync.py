"""``snapdir sync --id ID --from URI --to URI``: S3 → S3 and S3 → file://, verified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from featkit import Cli, blake3_hex, make_tree, object_key, s3_put, sample_tree, tree_bytes

if TYPE_CHECKING:
    from conftest import SeaweedFS

pytestmark = pytest.mark.s3


def manifest_path(store: Path, sid: str) -> Path:
    return store / ".manifests" / sid[:3] / sid[3:6] / sid[6:9] / sid[9:]


def test_sync_sends_only_what_the_destination_lacks(s3_env: SeaweedFS, cli: Cli,
                                                   tmp_path: Path) -> None:
    files = sample_tree(tmp_path / "ds", shards=2)
    src, dst = s3_env.unique_uri("sync-src"), s3_env.unique_uri("sync-dst")
    mirror = tmp_path / "mirror"
    v1 = cli("push", "--store", src, str(tmp_path / "ds")).out.strip()
    make_tree(tmp_path / "ds", {"shard-02/part-0.bin": b"one more shard"})
    v2 = cli("push", "--store", src, str(tmp_path / "ds")).out.strip()

    for to in (dst, mirror.as_uri()):
        r = json.loads(cli("sync", "--json", "--id", v1, "--from", src, "--to", to).out)
        assert (r["objects_sent"], r["bytes_sent"]) == (len(files),
                                                        sum(map(len, files.values())))
        again = json.loads(cli("sync", "--json", "--id", v1, "--from", src, "--to", to).out)
        assert again["objects_sent"] == 0
        r = json.loads(cli("sync", "--json", "--id", v2, "--from", src, "--to", to).out)
        assert (r["objects_sent"], r["bytes_sent"]) == (1, len(b"one more shard"))
        # plain output: just the id
        assert cli("sync", "--id", v2, "--from", src, "--to", to).out == v2 + "\n"

    assert manifest_path(mirror, v2).is_file()
    # what arrived is a complete, verified store: a fresh machine pulls from each
    for i, store in enumerate((dst, mirror.as_uri())):
        m = cli.machine(f"reader-{i}")
        m("verify", "--store", store, "--id", v2)
        m("pull", "--store", store, "--id", v2, str(tmp_path / f"pulled-{i}"))
        assert tree_bytes(tmp_path / f"pulled-{i}") == tree_bytes(tmp_path / "ds")


def test_sync_refuses_a_corrupt_source_object(s3_env: SeaweedFS, cli: Cli,
                                              tmp_path: Path) -> None:
    files = sample_tree(tmp_path / "ds", shards=2)
    src = s3_env.unique_uri("sync-corrupt")
    sid = cli("push", "--store", src, str(tmp_path / "ds")).out.strip()
    bad = blake3_hex(files["shard-01/part-1.bin"])
    s3_put(s3_env, src, object_key(bad), b"bit rot")
    cli.env["SNAPDIR_RETRIES"] = "1"

    mirror = tmp_path / "mirror"
    r = cli("sync", "--id", sid, "--from", src, "--to", mirror.as_uri(), check=False)
    assert r.rc == 1
    assert r.out == ""
    assert bad in r.err
    assert "Traceback" not in r.err
    assert not manifest_path(mirror, sid).exists()
    assert not (mirror / object_key(bad)).exists()

    dst = s3_env.unique_uri("sync-corrupt-dst")
    r = cli("sync", "--id", sid, "--from", src, "--to", dst, check=False)
    assert r.rc == 1
    assert bad in r.err
    v = cli("verify", "--store", dst, "--id", sid, check=False)
    assert v.rc != 0
    assert "not in" in v.err


def test_sync_brings_the_history_along(s3_env: SeaweedFS, cli: Cli, tmp_path: Path) -> None:
    """After a sync, `revisions` and `ancestors` answer at the destination from another
    machine (they printed nothing there: the records stayed in the source)."""
    sample_tree(tmp_path / "ds", shards=1)
    src, dst = s3_env.unique_uri("hist-src"), s3_env.unique_uri("hist-dst")
    v1 = cli("push", "-q", "--store", src, str(tmp_path / "ds")).out.strip()
    make_tree(tmp_path / "ds", {"extra.txt": b"v2\n"})
    v2 = cli("push", "-q", "--store", src, str(tmp_path / "ds")).out.strip()
    for sid in (v1, v2):
        r = json.loads(cli("sync", "--json", "--id", sid, "--from", src, "--to", dst).out)
        assert r["records_copied"] == 1
    again = json.loads(cli("sync", "--json", "--id", v2, "--from", src, "--to", dst).out)
    assert (again["already_present"], again["records_copied"]) == (True, 0)
    other = cli.machine("other-region")
    assert other("revisions", "--store", dst, "ds").out.split() == [v2, v1]
    r = other("ancestors", "--store", dst, v2)
    assert (r.out.split(), r.err) == ([v1], "")


def test_sync_errors_name_from_and_to_not_store(cli: Cli, tmp_path: Path) -> None:
    """A bad --from or --to is named as such: sync has no --store to check."""
    sample_tree(tmp_path / "ds", shards=1)
    src = tmp_path / "src"
    sid = cli("push", "--store", str(src), str(tmp_path / "ds")).out.strip()
    (tmp_path / "a-file").write_bytes(b"x")

    cases = [
        (["--from", str(tmp_path / "nowhere"), "--to", str(tmp_path / "d1")], "check --from"),
        (["--from", str(tmp_path / "ds"), "--to", str(tmp_path / "d2")],
         "check the id and --from"),
        (["--from", str(src), "--to", str(tmp_path / "a-file")], "give --to a directory"),
        (["--from", str(tmp_path / "a-file" / "s"), "--to", str(tmp_path / "d3")],
         "give --from a directory"),
    ]
    for args, said in cases:
        r = cli("sync", "--id", sid, *args, check=False)
        assert r.rc == 1, args
        assert said in r.err, (args, r.err)
        assert "--store" not in r.err, r.err
    # pull still points at --store
    r = cli("pull", "--store", str(tmp_path / "nowhere"), "--id", sid, str(tmp_path / "o"),
            check=False)
    assert "check --store (or SNAPDIR_STORE)" in r.err

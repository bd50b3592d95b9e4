"""``--json`` on every command that reports something: one JSON object per stdout line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from featkit import Cli, json_lines, sample_tree

if TYPE_CHECKING:
    from conftest import SeaweedFS

pytestmark = pytest.mark.s3


def one(out: str, *keys: str) -> dict[str, object]:
    objs = json_lines(out)
    assert len(objs) == 1, out
    missing = set(keys) - objs[0].keys()
    assert not missing, f"{missing} not in {objs[0]}"
    return objs[0]


def test_every_reporting_command_speaks_json(s3_env: SeaweedFS, cli: Cli,
                                             tmp_path: Path) -> None:
    files = sample_tree(tmp_path / "ds", shards=3)
    uri = s3_env.unique_uri("json")
    total = sum(len(b) for b in files.values())

    push = one(cli("push", "--json", "--store", uri, "--name", "ds", str(tmp_path / "ds")).out,
               "id", "files", "bytes", "bytes_sent", "bytes_skipped", "objects_sent",
               "objects_skipped", "seconds")
    sid = str(push["id"])
    assert (push["files"], push["bytes_sent"], push["bytes_skipped"]) == (
        len(files), total, 0)
    (tmp_path / "ds" / "meta.json").write_bytes(b'{"shards": 3, "v": 2}\n')
    again = one(cli("push", "--json", "--store", uri, "--name", "ds", "--parent", sid,
                    str(tmp_path / "ds")).out, "id", "bytes_sent", "bytes_skipped")
    sid2 = str(again["id"])
    assert again["bytes_sent"] == len(b'{"shards": 3, "v": 2}\n')
    assert again["bytes_skipped"] == total - len(files["meta.json"])

    b = cli.machine("b")
    pull = one(b("pull", "--json", "--store", uri, "--id", sid, str(tmp_path / "out")).out,
               "id", "files", "objects_fetched", "bytes_fetched", "bytes_skipped", "seconds")
    assert (pull["id"], pull["files"], pull["bytes_fetched"], pull["bytes_skipped"]) == (
        sid, len(files), total, 0)
    # pull keeps one copy (in out/, the cache only by reflink): fetch fills the cache
    b("fetch", "-q", "--store", uri, "--id", sid)
    fetch = one(b("fetch", "--json", "--store", uri, "--id", sid2).out,
                "id", "files", "objects_fetched", "bytes_fetched", "bytes_skipped", "seconds")
    assert fetch["objects_fetched"] == 1
    assert fetch["bytes_skipped"] == pull["bytes_fetched"] - \
        len(files["meta.json"])
    one(b("checkout", "--json", "--id", sid2, str(tmp_path / "co")).out,
        "files", "written", "unchanged", "deleted")
    one(b("verify", "--json", "--store", uri, "--id", sid).out, "id", "objects", "bytes", "ok")
    one(b("stage", "--json", str(tmp_path / "co")).out, "id", "files", "bytes", "seconds")
    one(b("sync", "--json", "--id", sid, "--from", uri, "--to",
          (tmp_path / "mirror").as_uri()).out, "id", "objects_sent", "bytes_sent", "seconds")

    anc = json_lines(b("ancestors", "--json", "--store", uri, sid2).out)
    assert [a["id"] for a in anc] == [sid]
    assert {"id", "depth", "store", "name", "time", "parents"} <= anc[0].keys()
    revs = json_lines(b("revisions", "--json", "--store", uri, "ds").out)
    assert [r["id"] for r in revs] == [sid2, sid]
    locs = json_lines(b("locations", "--json", sid).out)
    assert {loc["kind"] for loc in locs} >= {"pull"}
    assert all({"id", "kind", "location", "store", "time"} <= loc.keys() for loc in locs)

    changes = json_lines(b("diff", "--json", "--store", uri, sid, sid2).out)
    assert changes == [{"change": "modified", "path": "./meta.json", "type": "F"}]
    os.remove(tmp_path / "out" / "shard-00" / "part-0.bin")
    status = json_lines(b("status", "--json", "--store", uri, "--id", sid,
                          str(tmp_path / "out")).out)
    assert status == [{"change": "deleted", "path": "./shard-00/part-0.bin", "type": "F"}]

    settings = json_lines(b("defaults", "--json").out)
    assert settings
    assert all(s.keys() == {"name", "value", "source"} for s in settings)


def test_a_store_shows_one_way_whatever_way_it_was_typed(s3_env: SeaweedFS, cli: Cli,
                                                         tmp_path: Path) -> None:
    """``s3://b/p/`` and ``s3://b/p`` are one store: every --json output names it as the
    history records and the catalog do (``locations``, ``ancestors``), without the slash;
    a file store given as a path is named by its file:// URI."""
    sample_tree(tmp_path / "ds", shards=1)
    uri = s3_env.unique_uri("json-slash")
    push = one(cli("push", "--json", "--store", uri + "/", "--name", "ds",
                   str(tmp_path / "ds")).out, "store")
    sid = str(push["id"])
    assert push["store"] == uri
    for typed in (uri, uri + "/", uri + "//"):
        revs = json_lines(cli("revisions", "--json", "--store", typed, "ds").out)
        assert [r["store"] for r in revs] == [uri], typed
    shown = {str(one(cli(cmd, "--json", "--store", uri + "/", "--id", sid, *rest).out)["store"])
             for cmd, rest in (("pull", [str(tmp_path / "out")]), ("fetch", []),
                               ("verify", []))}
    assert shown == {uri}
    mirror = tmp_path / "mirror"
    sync = one(cli("sync", "--json", "--id", sid, "--from", uri + "/", "--to",
                   f"{mirror}/").out, "from", "to")
    assert (sync["from"], sync["to"]) == (uri, mirror.as_uri())
    locs = json_lines(cli("locations", "--json", sid).out)
    assert {loc["store"] for loc in locs} == {uri}


def test_push_json_counts_a_followed_links_bytes_as_its_targets(cli: Cli,
                                                                tmp_path: Path) -> None:
    """A followed link's manifest size is the link's own (as in 1.x), its object is the
    target's bytes: bytes_sent and bytes_skipped both count the object (was: the link's
    size, so bytes_skipped came out negative)."""
    (tmp_path / "ds").mkdir()
    target = tmp_path / "outside.bin"
    target.write_bytes(b"x" * 5000)
    (tmp_path / "ds" / "link").symlink_to(target)
    store = str(tmp_path / "store")
    first = one(cli("push", "--json", "--store", store, str(tmp_path / "ds")).out,
                "bytes", "bytes_sent", "bytes_skipped")
    assert (first["bytes_sent"], first["bytes_skipped"]) == (5000, 0)
    again = one(cli("push", "--json", "--store", store, str(tmp_path / "ds")).out,
                "bytes_sent", "bytes_skipped")
    assert (again["bytes_sent"], again["bytes_skipped"]) == (0, 5000)

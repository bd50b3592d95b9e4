"""The transfer engine against a real S3 server (SeaweedFS on loopback), driven as a user
would: the CLI in subprocesses, a second "machine" (fresh home, cache and data dirs)
sharing only the bucket, and the bucket inspected directly (not through snapdir)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import blake3
import pytest
from conftest import Bucket, Cli, make_tree, tree_bytes

from snapdir.stores.base import manifest_key, object_key

pytestmark = pytest.mark.s3

MiB = 1024 * 1024
HISTORY = ".snapdir-history/"


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def sample(root: Path) -> Path:
    files = {f"shard-{i:02d}/part-{j}.bin": os.urandom(500 + 131 * i + j)
             for i in range(6) for j in range(5)}
    files["dup/a.txt"] = b"same bytes"
    files["dup/b.txt"] = b"same bytes"
    files["empty.txt"] = b""
    files["name with spaces.txt"] = b"spaces"
    files["unicodé/ü.txt"] = "ü".encode()
    make_tree(root, files, {"shard-00/part-0.bin": 0o600})
    (root / "empty-dir").mkdir()
    return root


def data_keys(keys: set[str]) -> set[str]:
    """Objects and manifests (not revision records, which 1.x ignores)."""
    return {k for k in keys if not k.startswith(HISTORY)}


def cache_is_clean(cache_store: Path) -> list[str]:
    """Paths of cached objects whose bytes do not hash to their name (should be none)."""
    bad = []
    objects = cache_store / ".objects"
    if objects.is_dir():
        for p in objects.rglob("*"):
            if p.is_file() and not p.name.startswith(".snapdir-tmp-"):
                name = "".join(p.relative_to(objects).parts)
                if b3(p.read_bytes()) != name:
                    bad.append(str(p))
    return bad


def test_push_then_pull_on_another_machine(s3_cli: Cli, bucket: Bucket, tmp_path: Path) -> None:
    src = sample(tmp_path / "src")
    uri = bucket.unique_uri("roundtrip")
    sid = s3_cli("push", "-q", "--store", uri, str(src)).out.strip()
    assert sid == s3_cli("id", str(src)).out.strip()
    keys = data_keys(bucket.keys(uri))
    contents = {b3(b) for b in tree_bytes(src).values()}
    assert keys == {object_key(d) for d in contents} | {manifest_key(sid)}
    # the manifest in the bucket is the manifest of the tree, byte for byte
    assert bucket.get(uri, manifest_key(sid)) == s3_cli("manifest", str(src)).out.encode()

    other = s3_cli.machine("laptop")
    dest = tmp_path / "dest"
    r = json.loads(other("pull", "--json", "--store", uri, "--id", sid, str(dest)).out)
    assert r["id"] == sid
    assert r["objects_fetched"] == len(contents)
    assert other("id", str(dest)).out.strip() == sid
    assert tree_bytes(dest) == tree_bytes(src)
    assert (dest / "empty-dir").is_dir()
    assert (dest / "shard-00/part-0.bin").stat().st_mode & 0o777 == 0o600
    # a wrong id is a clean error, not a traceback
    bad = other("pull", "--store", uri, "--id", "0" * 64, str(tmp_path / "d2"), check=False)
    assert bad.rc != 0
    assert "0" * 64 in bad.err
    assert "Traceback" not in bad.err


def test_repush_uploads_only_the_changed_objects_and_the_manifest(
        s3_cli: Cli, bucket: Bucket, tmp_path: Path) -> None:
    src = sample(tmp_path / "src")
    uri = bucket.unique_uri("repush")
    first = json.loads(s3_cli("push", "--json", "--store", uri, str(src)).out)
    before = data_keys(bucket.keys(uri))
    assert first["objects_sent"] == len(before) - 1  # every object, then the manifest

    new = {"shard-01/part-2.bin": b"changed one", "shard-04/part-0.bin": b"changed two!",
           "added/new.bin": os.urandom(3000)}
    make_tree(src, new)
    r = json.loads(s3_cli("push", "--json", "--store", uri, str(src)).out)
    after = data_keys(bucket.keys(uri))
    sid = r["id"]
    assert sid == s3_cli("id", str(src)).out.strip()
    assert after - before == {object_key(b3(b)) for b in new.values()} | {manifest_key(sid)}
    assert before <= after  # nothing was removed
    assert r["objects_sent"] == len(new)
    assert r["bytes_sent"] == sum(len(b) for b in new.values())

    # unchanged tree: nothing is sent at all, and the bucket does not change
    again = json.loads(s3_cli("push", "--json", "--store", uri, str(src)).out)
    assert again["id"] == sid
    assert again["objects_sent"] == 0
    assert again["bytes_sent"] == 0
    assert data_keys(bucket.keys(uri)) == after

    # a colleague with a fresh cache and a copy of the tree changes one file: one object
    other = s3_cli.machine("colleague")
    copy = tmp_path / "copy"
    other("pull", "-q", "--store", uri, "--id", sid, str(copy))
    (copy / "shard-05/part-4.bin").write_bytes(b"colleague's change")
    r2 = json.loads(other("push", "--json", "--store", uri, str(copy)).out)
    assert r2["objects_sent"] == 1
    assert r2["bytes_sent"] == len(b"colleague's change")
    assert data_keys(bucket.keys(uri)) - after == {
        object_key(b3(b"colleague's change")), manifest_key(r2["id"])}


def test_repush_of_a_snapshot_the_store_has_is_one_request(
        s3_cli: Cli, bucket: Bucket, tmp_path: Path) -> None:
    from faultproxy import FaultProxy

    src = sample(tmp_path / "src")
    uri = bucket.unique_uri("one-request")
    sid = s3_cli("push", "-q", "--store", uri, str(src)).out.strip()
    with FaultProxy(bucket.endpoint, rate=0.0) as counter:
        s3_cli.env["AWS_ENDPOINT_URL"] = counter.endpoint
        before = counter.requests
        assert s3_cli("push", "-q", "--store", uri, str(src)).out.strip() == sid
        assert counter.requests - before == 1  # HEAD of the manifest, nothing else
        # another machine pushing the same bytes lists the history to record its revision
        other = s3_cli.machine("other")
        before = counter.requests
        assert other("push", "-q", "--store", uri, str(src)).out.strip() == sid
        assert counter.requests - before == 2
        assert s3_cli("revisions", "--store", uri, "src").out.split() == [sid]


def big_file(path: Path, size: int) -> bytes:
    """``size`` bytes: a unique header then a repeated random block (quick to write)."""
    block = os.urandom(4 * MiB)
    header = os.urandom(64) + str(time.time_ns()).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(header)
        left = size - len(header)
        while left > 0:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n
    return header


def fresh_machine_recording_ranges(monkeypatch: pytest.MonkeyPatch, home: Path,
                                   digest: str) -> list[tuple[int, int]]:
    """Point this process's cache and data directories at ``home`` (a fresh machine) and
    record, in the list returned, the byte ranges the S3 store asks for object ``digest``."""
    from snapdir.stores import s3ranges

    monkeypatch.setenv("SNAPDIR_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("SNAPDIR_DATA_DIR", str(home / "data"))
    ranges: list[tuple[int, int]] = []
    real_call = s3ranges.RangeWriter.call

    def recording_call(self: s3ranges.RangeWriter, key: str, start: int, end: int,
                       *args: Any) -> s3ranges.RangeCall:
        if key == object_key(digest):
            ranges.append((start, end))
        return real_call(self, key, start, end, *args)

    monkeypatch.setattr(s3ranges.RangeWriter, "call", recording_call)
    return ranges


@pytest.mark.slow
def test_large_file_goes_multipart_and_comes_back_in_ranges(
        s3_cli: Cli, bucket: Bucket, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    size = 300 * MiB + 12345
    src = tmp_path / "src"
    big_file(src / "model.bin", size)
    (src / "config.json").write_text('{"lr": 0.1}')
    uri = bucket.unique_uri("large")
    r = json.loads(s3_cli("push", "--json", "--store", uri, str(src)).out)
    sid = r["id"]
    digest = b3((src / "model.bin").read_bytes())
    assert r["bytes_sent"] == size + len('{"lr": 0.1}')
    # an S3 multipart upload's ETag is "<md5 of the part md5s>-<number of parts>"
    etag = bucket.etag(uri, object_key(digest))
    assert "-" in etag, f"not a multipart ETag: {etag}"
    parts = int(etag.rsplit("-", 1)[1])
    assert 2 <= parts <= 10_000

    # a fresh machine pulls it in-process, recording the ranged GETs the S3 store makes
    from snapdir import api

    ranges = fresh_machine_recording_ranges(monkeypatch, tmp_path / "fresh", digest)
    dest = tmp_path / "dest"
    pulled = api.pull(sid, dest, uri)
    assert pulled.fetch.bytes_fetched == size + len('{"lr": 0.1}')
    assert len(ranges) >= 2, ranges  # not one GET of the whole object
    assert all(end is not None for _, end in ranges)
    covered = sorted((a, e) for a, e in ranges if e is not None)
    assert covered[0][0] == 0
    assert covered[-1][1] == size
    assert all(covered[i][1] == covered[i + 1][0] for i in range(len(covered) - 1))
    assert s3_cli("id", str(dest)).out.strip() == sid
    assert (dest / "config.json").read_text() == '{"lr": 0.1}'
    # the same past the page cache (O_DIRECT) instead of through it, from the command line
    plain = s3_cli.machine("plain")
    plain.env["SNAPDIR_DIRECT_IO"] = "1"
    plain("pull", "-q", "--store", uri, "--id", sid, str(tmp_path / "dest2"))
    assert s3_cli("id", str(tmp_path / "dest2")).out.strip() == sid


def test_a_link_to_a_large_file_comes_back_in_ranges(
        s3_cli: Cli, bucket: Bucket, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A followed link's manifest line has the link's own size (a few bytes): the object,
    larger than that, is still fetched in ranged GETs, not in one stream."""
    size = 70 * MiB  # above the 64 MiB threshold
    big_file(tmp_path / "elsewhere" / "weights.bin", size)
    src = tmp_path / "src"
    src.mkdir()
    (src / "weights.bin").symlink_to(tmp_path / "elsewhere" / "weights.bin")
    uri = bucket.unique_uri("link-large")
    sid = s3_cli("push", "-q", "--store", uri, str(src)).out.strip()
    digest = b3((tmp_path / "elsewhere" / "weights.bin").read_bytes())

    from snapdir import api

    ranges = fresh_machine_recording_ranges(monkeypatch, tmp_path / "fresh", digest)
    api.pull(sid, tmp_path / "dest", uri)
    assert len(ranges) >= 2, ranges
    assert (tmp_path / "dest" / "weights.bin").read_bytes() == (
        tmp_path / "elsewhere" / "weights.bin").read_bytes()


@pytest.mark.parametrize("damage", ["replaced", "longer", "emptied"])
def test_corrupt_object_fails_the_pull_and_is_not_checked_out(
        s3_cli: Cli, bucket: Bucket, tmp_path: Path, damage: str) -> None:
    src = sample(tmp_path / "src")
    uri = bucket.unique_uri("corrupt")
    sid = s3_cli("push", "-q", "--store", uri, str(src)).out.strip()
    victim = "shard-02/part-3.bin"
    good = (src / victim).read_bytes()
    digest = b3(good)
    bad = {"replaced": os.urandom(len(good)),  # same size: only the hash can tell
           "longer": good + b"\n",  # the right bytes first, then more than the manifest says
           "emptied": b""}[damage]
    bucket.put(uri, object_key(digest), bad)

    s3_cli.env["SNAPDIR_RETRIES"] = "2"  # a bad object is retried: keep the test quick
    for flags, name in (((), "cached"), (("--no-cache",), "no-cache")):
        machine = s3_cli.machine(f"victim-{name}")
        dest = tmp_path / f"dest-{name}"
        r = machine("pull", "-q", *flags, "--store", uri, "--id", sid, str(dest), check=False)
        assert r.rc != 0, name
        assert digest in r.err, r.err
        assert victim in r.err, r.err
        assert "Traceback" not in r.err
        assert not (dest / victim).exists(), name
        cache_store = machine.home / "cache" / "store"
        assert not (cache_store / object_key(digest)).exists(), name
        assert cache_is_clean(cache_store) == [], name
        if dest.exists():  # whatever was written is good bytes only
            for rel, data in tree_bytes(dest).items():
                assert data == (src / rel).read_bytes(), rel

    v = s3_cli("verify", "-q", "--store", uri, "--id", sid, check=False)
    assert v.rc != 0
    assert digest in v.err
    assert victim in v.err

    # the repair the error message asks for: remove the damaged object and the snapshot's
    # manifest from the store, push again from a good copy
    assert f"delete {object_key(digest)}" in r.err
    bucket.delete(uri, object_key(digest))
    bucket.delete(uri, manifest_key(sid))
    again = json.loads(s3_cli("push", "--json", "--store", uri, str(src)).out)
    assert again["id"] == sid
    assert again["objects_sent"] == 1
    assert bucket.get(uri, object_key(digest)) == good
    assert s3_cli("verify", "-q", "--store", uri, "--id", sid).rc == 0
    fixed = s3_cli.machine("victim-cached")  # same machine as the failed pull: it resumes
    fixed("pull", "-q", "--store", uri, "--id", sid, str(tmp_path / "dest-cached"))
    assert fixed("id", str(tmp_path / "dest-cached")).out.strip() == sid


def test_push_killed_half_way_leaves_no_manifest_and_resumes(
        s3_cli: Cli, bucket: Bucket, tmp_path: Path) -> None:
    n = 2000
    src = make_tree(tmp_path / "src", {f"d{i % 30:02d}/f{i:05d}.txt": os.urandom(64) + b"%d" % i
                                       for i in range(n)})
    sid = s3_cli("id", str(src)).out.strip()
    uri = bucket.unique_uri("killed")
    proc = s3_cli.popen("push", "-q", "-j", "2", "--store", uri, str(src))  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 60
        seen = 0
        while time.monotonic() < deadline and proc.poll() is None:
            seen = len(bucket.keys(uri, ".objects"))
            if seen >= 50:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"push finished before it could be killed ({seen} objects)"
        assert seen >= 50
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    # a PUT whose body was already sent when the push died may still land: wait until
    # the server has finished them before counting what is there
    present = bucket.keys(uri, ".objects")
    settle = time.monotonic() + 15
    while time.monotonic() < settle:
        time.sleep(0.5)
        now = bucket.keys(uri, ".objects")
        if now == present:
            break
        present = now
    assert 50 <= len(present) < n
    assert bucket.keys(uri, ".manifests") == set()  # no manifest without all its objects
    assert not any(k.startswith(HISTORY) for k in bucket.keys(uri))

    r = json.loads(s3_cli("push", "--json", "--store", uri, str(src)).out)
    assert r["id"] == sid
    assert r["objects_sent"] == n - len(present)  # what was already up is not sent again
    assert bucket.keys(uri, ".manifests") == {manifest_key(sid)}
    assert len(bucket.keys(uri, ".objects")) == n
    other = s3_cli.machine("after-kill")
    other("pull", "-q", "--store", uri, "--id", sid, str(tmp_path / "dest"))
    assert other("id", str(tmp_path / "dest")).out.strip() == sid


def test_interop_with_reference_snapdir_1_12(s3_cli: Cli, bucket: Bucket,
                                             tmp_path: Path) -> None:
    from reference import ref_id, ref_pull, ref_push, require_reference

    require_reference()
    src = sample(tmp_path / "src")
    ref_env = {"HOME": str(tmp_path / "ref-home"),
               "XDG_CACHE_HOME": str(tmp_path / "ref-home/.cache"),
               "XDG_DATA_HOME": str(tmp_path / "ref-home/.local/share")}

    # the reference pushes; we pull on a fresh machine
    uri_ref = bucket.unique_uri("interop-ref")
    rid = ref_push(src, uri_ref, env=ref_env)
    assert rid == s3_cli("id", str(src)).out.strip()
    keys = bucket.keys(uri_ref)
    assert manifest_key(rid) in keys
    ours = s3_cli.machine("ours")
    dest = tmp_path / "ours-from-ref"
    ours("pull", "-q", "--store", uri_ref, "--id", rid, str(dest))
    assert ours("id", str(dest)).out.strip() == rid
    assert tree_bytes(dest) == tree_bytes(src)

    # we push; the reference pulls
    uri_ours = bucket.unique_uri("interop-ours")
    (src / "from-us.txt").write_bytes(b"pushed by the new snapdir\n")
    sid = s3_cli("push", "-q", "--store", uri_ours, str(src)).out.strip()
    ref_dest = tmp_path / "ref-from-ours"
    ref_pull(sid, uri_ours, ref_dest, env={**ref_env, "HOME": str(tmp_path / "ref-home2"),
                                           "XDG_CACHE_HOME": str(tmp_path / "ref-home2/c")})
    assert tree_bytes(ref_dest) == tree_bytes(src)
    assert s3_cli("id", str(ref_dest)).out.strip() == sid
    assert ref_id(ref_dest) == sid

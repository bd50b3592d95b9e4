"""The Python API, sync and async, against the real SeaweedFS (issue 6)."""

from __future__ import annotations

import importlib.resources
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from featkit import object_key, s3_delete, s3_put, sample_tree, tree_bytes

import snapdir

if TYPE_CHECKING:
    from conftest import SeaweedFS

pytestmark = pytest.mark.s3


def pulls_of(sid: str) -> list[Any]:
    return [loc for loc in snapdir.locations(sid) if loc.kind == "pull"]


def test_sync_api_round_trip(s3_env: SeaweedFS, tmp_path: Path) -> None:
    files = sample_tree(tmp_path / "data")
    uri = s3_env.unique_uri("api-sync")
    sid = snapdir.id(tmp_path / "data")
    assert sid == snapdir.snapshot_id(tmp_path / "data")
    m = snapdir.manifest(tmp_path / "data")
    assert isinstance(m, snapdir.Manifest)
    assert m.id == sid

    r = snapdir.push(tmp_path / "data", uri, name="ds")
    assert (r.id, r.files, r.objects_sent) == (sid, len(files), len(files))
    assert snapdir.push(tmp_path / "data", uri, name="ds").objects_sent == 0
    assert snapdir.verify(sid, uri).objects == len(files)
    assert snapdir.revisions("ds", uri) == [sid]

    p = snapdir.pull(sid, tmp_path / "out", uri)
    assert p.id == sid
    assert p.fetch.objects_fetched == len(files)
    assert tree_bytes(tmp_path / "out") == files
    # fetch fills the cache (pull keeps one copy), once; checkout from it into a new dir
    snapdir.fetch(sid, uri)
    assert snapdir.fetch(sid, uri).objects_fetched == 0
    c = snapdir.checkout(sid, tmp_path / "co")
    assert c.written == len(files)
    assert snapdir.id(tmp_path / "co") == sid

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(os.urandom(500))
    models = s3_env.unique_uri("api-models")
    model = snapdir.push(tmp_path / "model", models, parents=[sid])
    assert [a.id for a in snapdir.ancestors(model.id, models)] == [sid]


@pytest.mark.anyio
async def test_async_api_round_trip(s3_env: SeaweedFS, tmp_path: Path) -> None:
    files = sample_tree(tmp_path / "data", shards=2)
    uri = s3_env.unique_uri("api-async")
    sid = await snapdir.aid(tmp_path / "data")
    assert (await snapdir.amanifest(tmp_path / "data")).id == sid
    assert await snapdir.asnapshot_id(tmp_path / "data") == sid
    r = await snapdir.apush(tmp_path / "data", uri, name="ds-async")
    assert r.id == sid
    assert (await snapdir.averify(sid, uri)).objects == len(files)
    assert await snapdir.arevisions("ds-async", uri) == [sid]
    await snapdir.apull(sid, tmp_path / "out", uri)
    assert tree_bytes(tmp_path / "out") == files
    assert (await snapdir.afetch(sid, uri)).id == sid
    await snapdir.acheckout(sid, tmp_path / "co")
    assert tree_bytes(tmp_path / "co") == files
    assert await snapdir.aancestors(sid, uri) == []
    dest = await snapdir.aensure(sid, store=uri, dest=tmp_path / "ensured")
    assert dest == tmp_path / "ensured"
    assert tree_bytes(dest) == files


def test_ensure_returns_at_once_when_dest_matches(s3_env: SeaweedFS, tmp_path: Path) -> None:
    files = sample_tree(tmp_path / "data", shards=2)
    uri = s3_env.unique_uri("ensure")
    sid = snapdir.push(tmp_path / "data", uri).id
    dest = tmp_path / "train"
    assert snapdir.ensure(sid, store=uri, dest=dest) == dest
    assert tree_bytes(dest) == files
    assert len(pulls_of(sid)) == 1
    assert snapdir.ensure(sid, store=uri, dest=dest) == dest
    assert len(pulls_of(sid)) == 1  # matched: no second pull
    (dest / "meta.json").write_bytes(b"tampered\n")
    snapdir.ensure(sid, store=uri, dest=dest)
    assert tree_bytes(dest) == files
    assert len(pulls_of(sid)) == 2


def test_ensure_moves_dest_to_another_version(tmp_path: Path) -> None:
    """A node moving from v1 to v2 of a dataset: dest ends up exactly v2 (files only v1
    had, or that were added by hand, are gone); it used to fail with IntegrityError and
    leave both versions mixed."""
    store = str(tmp_path / "store")
    v1 = sample_tree(tmp_path / "v1", shards=1)
    v2 = {**v1, "shard-00/part-0.bin": b"v2 bytes\n", "v2-only.txt": b"new\n"}
    del v2["meta.json"]
    (tmp_path / "v2").mkdir()
    for rel, data in v2.items():
        (tmp_path / "v2" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "v2" / rel).write_bytes(data)
    id1 = snapdir.push(tmp_path / "v1", store, name="ds").id
    id2 = snapdir.push(tmp_path / "v2", store, name="ds").id
    dest = tmp_path / "train"
    snapdir.ensure(id1, store=store, dest=dest)
    assert tree_bytes(dest) == v1
    (dest / "stray.log").write_bytes(b"left by hand\n")
    snapdir.ensure(id2, store=store, dest=dest)
    assert tree_bytes(dest) == v2
    assert snapdir.id(dest) == id2
    snapdir.ensure(id1, store=store, dest=dest)  # and back
    assert tree_bytes(dest) == v1


RANK = textwrap.dedent("""
    import os, sys, time
    import snapdir
    go = sys.argv[1]
    while not os.path.exists(go):
        time.sleep(0.002)
    print(snapdir.ensure(sys.argv[2], store=sys.argv[3], dest=sys.argv[4]))
""")


def test_ensure_concurrent_ranks_pull_once(s3_env: SeaweedFS, tmp_path: Path) -> None:
    files = sample_tree(tmp_path / "data", shards=6, per_shard=5)
    uri = s3_env.unique_uri("ensure-ranks")
    sid = snapdir.push(tmp_path / "data", uri).id
    # a fresh cache, as on a node that never saw the dataset; same catalog for counting
    env = dict(os.environ, SNAPDIR_CACHE_DIR=str(tmp_path / "node-cache"))
    dest, go = tmp_path / "node" / "train", tmp_path / "go"
    dest.parent.mkdir()
    # two of the ranks reach the same directory through a symlink (/scratch -> /mnt/...)
    (tmp_path / "scratch").symlink_to(dest.parent)
    dests = [dest, dest, tmp_path / "scratch" / "train", tmp_path / "scratch" / "train"]
    ranks = [subprocess.Popen([sys.executable, "-c", RANK, str(go), sid, uri, str(d)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for d in dests]
    time.sleep(1.0)  # let every rank import snapdir and reach the barrier
    go.touch()
    outputs = [p.communicate(timeout=120) for p in ranks]
    for p, d, (out, err) in zip(ranks, dests, outputs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == str(d)
        assert err == ""  # no catalog warnings, no tracebacks
    assert len(pulls_of(sid)) == 1
    assert snapdir.id(dest) == sid
    assert tree_bytes(dest) == files


def test_errors_are_typed(s3_env: SeaweedFS, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAPDIR_RETRIES", "1")
    uri = s3_env.unique_uri("errors")
    with pytest.raises(snapdir.UsageError):
        snapdir.pull("not-an-id", tmp_path / "out", uri)
    with pytest.raises(snapdir.ObjectNotFound) as missing:
        snapdir.pull("0" * 64, tmp_path / "out", uri)
    assert isinstance(missing.value, snapdir.StoreError)
    with pytest.raises(snapdir.SourceError):
        snapdir.push(tmp_path / "no-such-dir", uri)

    sample_tree(tmp_path / "data", shards=1, per_shard=1)
    sid = snapdir.push(tmp_path / "data", uri).id
    digest = next(iter(snapdir.manifest(tmp_path / "data").files())).checksum
    s3_put(s3_env, uri, object_key(digest), b"corrupt")
    with pytest.raises(snapdir.SnapdirError) as bad:
        snapdir.verify(sid, uri)
    assert isinstance(bad.value, snapdir.IntegrityError | snapdir.TransferFailed)
    assert digest in str(bad.value)
    # a transfer's failure is the typed error itself, not a task group's ExceptionGroup
    with pytest.raises(snapdir.IntegrityError, match=digest):
        snapdir.pull(sid, tmp_path / "out-corrupt", uri)
    s3_delete(s3_env, uri, object_key(digest))
    with pytest.raises(snapdir.ObjectNotFound, match=object_key(digest)):
        snapdir.pull(sid, tmp_path / "out-missing", uri)


def test_an_empty_path_is_refused_not_taken_as_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``""`` (an unset variable) as a directory: refused, never the current directory
    (which ``delete=True`` would mirror) nor ``/`` (which the scanner would walk)."""
    files = sample_tree(tmp_path / "data", shards=1, per_shard=2)
    store = str(tmp_path / "store")
    sid = snapdir.push(tmp_path / "data", store).id
    snapdir.fetch(sid, store)
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.txt").write_bytes(b"the user's")
    monkeypatch.chdir(work)
    for call in (lambda: snapdir.pull(sid, "", store, delete=True),
                 lambda: snapdir.pull(sid, "", store, delete=True, no_cache=True),
                 lambda: snapdir.checkout(sid, "", delete=True),
                 lambda: snapdir.ensure(sid, dest="", store=store),
                 lambda: snapdir.push("", store),
                 lambda: snapdir.stage(""),
                 lambda: snapdir.id(""),
                 lambda: snapdir.manifest("")):
        with pytest.raises(snapdir.UsageError, match="empty path"):
            call()
    assert tree_bytes(work) == {"mine.txt": b"the user's"}
    assert tree_bytes(tmp_path / "data") == files


def test_an_empty_store_or_name_is_refused_not_the_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``store=""`` is not the default store (``None`` is), ``name=""`` not the
    directory's name."""
    sample_tree(tmp_path / "data", shards=1, per_shard=1)
    monkeypatch.setenv("SNAPDIR_STORE", str(tmp_path / "env-store"))
    with pytest.raises(snapdir.UsageError, match="empty store URI"):
        snapdir.push(tmp_path / "data", "")
    with pytest.raises(snapdir.UsageError, match="empty store URI"):
        snapdir.pull("0" * 64, tmp_path / "out", "")
    with pytest.raises(snapdir.UsageError, match="revision name is empty"):
        snapdir.push(tmp_path / "data", str(tmp_path / "store"), name="")
    assert not (tmp_path / "env-store").exists()
    assert not (tmp_path / "store").exists()
    assert not (tmp_path / "out").exists()
    assert snapdir.push(tmp_path / "data").id == snapdir.id(tmp_path / "data")
    assert (tmp_path / "env-store").is_dir()  # None: $SNAPDIR_STORE


def test_the_api_refuses_what_the_cli_refuses(tmp_path: Path) -> None:
    """Arguments the CLI refuses with a usage error are the same typed error in the API
    (not a ValueError, an empty answer, or a string taken as a list of ids)."""
    sample_tree(tmp_path / "data", shards=1, per_shard=1)
    store = str(tmp_path / "store")
    with pytest.raises(snapdir.UsageError, match="'xx'.*b3sum, md5sum or sha256sum"):
        snapdir.manifest(tmp_path / "data", checksum_bin="xx")
    with pytest.raises(snapdir.UsageError, match="sha1sum"):
        snapdir.ManifestOptions(checksum_bin="sha1sum")
    with pytest.raises(snapdir.UsageError, match="xx"):
        anyio.run(lambda: snapdir.amanifest(tmp_path / "data", checksum_bin="xx"))
    for bad in ("abc", "", "g" * 64):
        with pytest.raises(snapdir.UsageError, match="not a snapshot id"):
            snapdir.locations(bad)
    with pytest.raises(snapdir.UsageError, match="revision name is empty"):
        snapdir.revisions("", store)
    with pytest.raises(snapdir.UsageError, match="revision name is empty"):
        anyio.run(lambda: snapdir.arevisions("", store))
    assert not (tmp_path / "store").exists()


def test_the_api_normalises_ids_and_takes_one_parent_as_a_string(tmp_path: Path) -> None:
    sample_tree(tmp_path / "data", shards=1, per_shard=2)
    sample_tree(tmp_path / "model", shards=1, per_shard=1)
    store = str(tmp_path / "store")
    sid = snapdir.push(tmp_path / "data", store, name="ds").id
    assert [loc.kind for loc in snapdir.locations(sid.upper())] == ["push"]
    assert snapdir.locations(f" {sid.upper()}\n") == snapdir.locations(sid)
    # an id in capitals is recorded under the id itself, as the CLI's checkout records it
    snapdir.fetch(sid, store)
    snapdir.checkout(sid.upper(), tmp_path / "co")
    assert {loc.kind for loc in snapdir.locations(sid)} == {"push", "fetch", "checkout"}
    # one parent given as a str is that parent, not 64 one-character ids
    r = snapdir.push(tmp_path / "model", store, name="model", parents=sid.upper())
    assert [a.id for a in snapdir.ancestors(r.id, store)] == [sid]
    assert snapdir.push(tmp_path / "model", store, name="model2", parents=[sid]).id == r.id


def test_py_typed_is_shipped() -> None:
    assert importlib.resources.files("snapdir").joinpath("py.typed").is_file()
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert 'snapdir = ["py.typed"]' in pyproject


def test_a_pull_with_delete_prepares_the_directories_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One pass over the destination's directories (and one store guard, one catalog read
    for it) per pull, not a second one again before the checkout; the mirror is exact
    and the directories get their modes all the same."""
    from snapdir import history
    from snapdir.transfer import checkout, pull

    files = sample_tree(tmp_path / "data")
    os.chmod(tmp_path / "data", 0o750)
    store = str(tmp_path / "store")
    sid = snapdir.push(tmp_path / "data", store).id
    out = tmp_path / "out"
    (out / "stale").mkdir(parents=True)
    (out / "stale" / "x.txt").write_bytes(b"not in the snapshot")

    calls = {"prepare_dirs": 0, "catalog": 0}

    def counted(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kw: Any) -> Any:
            calls[name] += 1
            return fn(*args, **kw)
        return wrapper

    prepare = counted("prepare_dirs", checkout.prepare_dirs)
    monkeypatch.setattr(checkout, "prepare_dirs", prepare)
    monkeypatch.setattr(pull, "prepare_dirs", prepare)
    monkeypatch.setattr(history, "local_store_roots",
                        counted("catalog", history.local_store_roots))
    r = snapdir.pull(sid, out, store, delete=True)
    assert calls["prepare_dirs"] == 1
    # before any request (the manifest unknown), then with it: the top and the guard
    assert calls["catalog"] == 3
    assert r.checkout.deleted >= 1
    assert tree_bytes(out) == files
    assert snapdir.id(out) == sid
    assert oct(out.stat().st_mode & 0o777) == "0o750"


def test_the_sync_api_works_inside_a_running_event_loop(tmp_path: Path) -> None:
    """A notebook or an async training script calling the sync API: it runs (in a thread
    of its own) instead of failing with asyncio's RuntimeError, and its errors are the
    typed ones."""
    import asyncio

    files = sample_tree(tmp_path / "data", shards=1, per_shard=2)
    store = str(tmp_path / "store")

    async def main() -> None:
        sid = snapdir.push(tmp_path / "data", store).id
        assert snapdir.verify(sid, store).bad == []
        assert snapdir.pull(sid, tmp_path / "out", store).id == sid
        assert snapdir.ensure(sid, dest=tmp_path / "ens", store=store) == tmp_path / "ens"
        assert snapdir.revisions("data", store) == [sid]
        with pytest.raises(snapdir.ObjectNotFound):
            snapdir.pull("0" * 64, tmp_path / "none", store)

    asyncio.run(main())
    assert tree_bytes(tmp_path / "out") == files
    assert tree_bytes(tmp_path / "ens") == files


def test_arguments_of_the_wrong_type_are_usage_errors(tmp_path: Path) -> None:
    """``None`` from an unset ``os.environ.get``, a number, bytes: a UsageError naming the
    argument, not an AttributeError or TypeError from deep inside; one str where a list
    is expected is one item (not its letters), and a pathlib.Path is a local store."""
    files = sample_tree(tmp_path / "data", shards=2, per_shard=1)
    store = tmp_path / "store"
    sid = snapdir.push(tmp_path / "data", store, parents=None).id
    for call in (lambda: snapdir.pull(None, tmp_path / "o", store),  # type: ignore[arg-type]
                 lambda: snapdir.ensure(None, dest=tmp_path / "o"),  # type: ignore[arg-type]
                 lambda: snapdir.verify(123, store),  # type: ignore[arg-type]
                 lambda: snapdir.locations(None),  # type: ignore[arg-type]
                 lambda: snapdir.push(tmp_path / "data", store, parents=[1]),  # type: ignore[list-item]
                 lambda: snapdir.pull(sid, None, store),  # type: ignore[arg-type]
                 lambda: snapdir.ensure(sid, dest=None, store=store),  # type: ignore[arg-type]
                 lambda: snapdir.checkout(sid, None),  # type: ignore[arg-type]
                 lambda: snapdir.push(None, store),  # type: ignore[arg-type]
                 lambda: snapdir.id(None),  # type: ignore[arg-type]
                 lambda: snapdir.push(tmp_path / "data", store, name=5),  # type: ignore[arg-type]
                 lambda: snapdir.revisions(None, store),  # type: ignore[arg-type]
                 lambda: snapdir.pull(sid, tmp_path / "o", 5),  # type: ignore[arg-type]
                 lambda: snapdir.pull(sid, tmp_path / "o", store, include=5),  # type: ignore[arg-type]
                 lambda: snapdir.manifest(tmp_path / "data", exclude=[1])):  # type: ignore[list-item]
        with pytest.raises(snapdir.UsageError):
            call()
    assert not (tmp_path / "o").exists()
    r = snapdir.pull(sid, tmp_path / "part", store, include="shard-01")
    assert tree_bytes(tmp_path / "part") == {"shard-01/part-0.bin": files["shard-01/part-0.bin"]}
    whole = snapdir.manifest(tmp_path / "data")
    assert snapdir.manifest(tmp_path / "data", exclude="shard-01").entries == \
        snapdir.manifest(tmp_path / "data", exclude=["shard-01"]).entries != whole.entries
    assert r.id == snapdir.verify(sid, store).id == sid


def test_manifest_options_take_one_exclude_regex_as_a_str(tmp_path: Path) -> None:
    """``ManifestOptions(exclude="shard")`` left out every path holding an s, h, a, r or d
    (one regex per letter): the push sent an empty snapshot without a word."""
    files = sample_tree(tmp_path / "data", shards=2, per_shard=1)
    store = str(tmp_path / "store")
    one = snapdir.ManifestOptions(exclude="/shard-01")
    assert one.exclude == ("/shard-01",)
    r = snapdir.push(tmp_path / "data", store, options=one)
    assert r.files == len(files) - 1
    with pytest.raises(snapdir.UsageError, match="exclude"):
        snapdir.ManifestOptions(exclude=[1])  # type: ignore[list-item]


def test_diff_of_manifests_and_a_usage_error_for_anything_else(tmp_path: Path) -> None:
    sample_tree(tmp_path / "a", shards=1, per_shard=2)
    sample_tree(tmp_path / "b", shards=1, per_shard=2)
    (tmp_path / "b" / "meta.json").unlink()
    changes = list(snapdir.diff(snapdir.manifest(tmp_path / "a"), snapdir.manifest(tmp_path / "b")))
    assert [(c.change.value, c.path) for c in changes] == [
        ("D", "./meta.json"), ("M", "./shard-00/part-0.bin"), ("M", "./shard-00/part-1.bin")]
    sid = snapdir.id(tmp_path / "a")
    with pytest.raises(snapdir.UsageError, match="two Manifests"):
        snapdir.diff(sid, snapdir.manifest(tmp_path / "b"))  # type: ignore[arg-type]


def test_a_cancelled_aensure_stops_its_pull_and_lets_the_lock_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``aensure`` under a timeout: the pull is cancelled with it (it ran in a worker
    thread that went on pulling, holding the ranks' lock, after the caller gave up)."""
    from snapdir import api
    from snapdir.transfer import pull as pull_module

    sample_tree(tmp_path / "data", shards=1, per_shard=1)
    store = str(tmp_path / "store")
    sid = snapdir.push(tmp_path / "data", store).id
    real = pull_module.pull
    stalls = 0

    async def stalled(*args: Any, **kw: Any) -> Any:
        nonlocal stalls
        if stalls == 0:
            stalls += 1
            await anyio.sleep(5)  # a slow network
        return await real(*args, **kw)

    monkeypatch.setattr(pull_module, "pull", stalled)
    dest = tmp_path / "train"

    async def main() -> None:
        with anyio.move_on_after(0.5) as scope:
            await snapdir.aensure(sid, dest=dest, store=store)
        assert scope.cancelled_caught
        fd = api._lock_fd(str(dest))
        try:
            assert api._try_lock(fd), "the cancelled ensure still holds the lock"
        finally:
            os.close(fd)
        assert await snapdir.aensure(sid, dest=dest, store=store) == dest

    anyio.run(main)
    assert snapdir.id(dest) == sid

"""Push / pull / fetch / checkout / stage / verify through a file:// store, as a user would."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import blake3
from conftest import Cli, make_tree, object_files, tree_bytes

ID_LEN = 64


def sample(root: Path) -> Path:
    files = {f"shard-{i:02d}/part-{j}.bin": os.urandom(1000 + 37 * i + j)
             for i in range(5) for j in range(4)}
    files["dup/a.txt"] = b"same"
    files["dup/b.txt"] = b"same"
    files["empty.txt"] = b""
    files["name with spaces.txt"] = b"spaces"
    files["unicodé/ü.txt"] = "ü".encode()
    make_tree(root, files, {"shard-00/part-0.bin": 0o600})
    (root / "empty-dir").mkdir()
    return root


def test_push_pull_round_trip_gives_the_same_id(cli: Cli, tmp_path: Path) -> None:
    src = sample(tmp_path / "src")
    store = tmp_path / "store"
    pushed = cli("push", "--store", f"file://{store}", str(src))
    sid = pushed.out.strip()
    assert pushed.out == sid + "\n"
    assert len(sid) == ID_LEN
    assert sid == cli("id", str(src)).out.strip()
    dest = tmp_path / "dest"
    pulled = cli("pull", "--store", f"file://{store}", "--id", sid, str(dest))
    assert pulled.out == ""
    assert cli("id", str(dest)).out.strip() == sid
    assert tree_bytes(dest) == tree_bytes(src)
    assert (dest / "empty-dir").is_dir()
    assert (dest / "shard-00/part-0.bin").stat().st_mode & 0o777 == 0o600
    # the store holds one object per distinct content, named by its BLAKE3
    contents = {blake3.blake3(b).hexdigest() for b in tree_bytes(src).values()}
    names = {"".join(p.relative_to(store / ".objects").parts) for p in object_files(store)}
    assert names == contents


def test_plain_path_store_and_env_store(cli: Cli, tmp_path: Path) -> None:
    src = sample(tmp_path / "src")
    sid = cli("push", "--store", str(tmp_path / "st"), str(src)).out.strip()
    cli.env["SNAPDIR_STORE"] = str(tmp_path / "st")
    cli("pull", "--id", sid, str(tmp_path / "d"))
    assert cli("id", str(tmp_path / "d")).out.strip() == sid


def test_default_store_needs_no_setup(cli: Cli, tmp_path: Path) -> None:
    src = sample(tmp_path / "src")
    sid = cli("push", str(src)).out.strip()
    assert (cli.home / "data" / "store" / ".manifests").is_dir()
    cli("pull", "--id", sid, str(tmp_path / "d"))
    assert cli("id", str(tmp_path / "d")).out.strip() == sid


def test_repush_uploads_only_changed_objects(cli: Cli, tmp_path: Path) -> None:
    src = sample(tmp_path / "src")
    store = tmp_path / "store"
    uri = f"file://{store}"
    cli("push", "--store", uri, str(src))
    before = object_files(store)
    (src / "shard-01/part-2.bin").write_bytes(b"changed one")
    (src / "shard-03/part-1.bin").write_bytes(b"changed two")
    r = json.loads(cli("push", "--json", "--store", uri, str(src)).out)
    after = object_files(store)
    new = after - before
    assert len(new) == 2
    assert {p.read_bytes() for p in new} == {b"changed one", b"changed two"}
    assert r["objects_sent"] == 2
    assert r["bytes_sent"] == len(b"changed one") + len(b"changed two")
    # pushing the same tree again sends nothing
    r2 = json.loads(cli("push", "--json", "--store", uri, str(src)).out)
    assert r2["already_present"] is True
    assert r2["objects_sent"] == 0


def test_corrupted_object_fails_pull_and_is_not_checked_out(cli: Cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"good.txt": b"good", "victim.txt": b"precious bytes"})
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    digest = blake3.blake3(b"precious bytes").hexdigest()
    obj = store / ".objects" / digest[:3] / digest[3:6] / digest[6:9] / digest[9:]
    obj.write_bytes(b"precious bytez")
    dest = tmp_path / "dest"
    r = cli("pull", "--store", str(store), "--id", sid, str(dest), check=False)
    assert r.rc != 0
    assert digest in r.err
    assert "victim.txt" in r.err
    assert "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert not (dest / "victim.txt").exists()
    # nothing corrupt entered the cache either
    cached = cli.home / "cache" / "store" / ".objects" / digest[:3] / digest[3:6] / digest[6:9]
    assert not (cached / digest[9:]).exists()
    v = cli("verify", "--store", str(store), "--id", sid, check=False)
    assert v.rc != 0
    assert digest in v.err


def test_verify_names_every_bad_object(cli: Cli, tmp_path: Path) -> None:
    files = {f"f{i}.txt": f"content {i}".encode() for i in range(6)}
    src = make_tree(tmp_path / "src", files)
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    bad = ["f1.txt", "f4.txt"]
    for name in bad:
        digest = blake3.blake3(files[name]).hexdigest()
        obj = store / ".objects" / digest[:3] / digest[3:6] / digest[6:9] / digest[9:]
        obj.write_bytes(b"damaged")
    gone = blake3.blake3(files["f5.txt"]).hexdigest()
    (store / ".objects" / gone[:3] / gone[3:6] / gone[6:9] / gone[9:]).unlink()
    cli.env["SNAPDIR_RETRIES"] = "1"
    v = cli("verify", "--store", str(store), "--id", sid, check=False)
    assert v.rc != 0
    lines = v.err.strip().splitlines()
    assert len(lines) == 3, v.err  # one line per bad object, the last with the count
    assert lines[-1].startswith("snapdir: verify failed: ")
    assert "3 of 6 objects" in lines[-1]
    for name in [*bad, "f5.txt"]:
        assert sum(name in ln for ln in lines) == 1, (name, v.err)
    assert "Traceback" not in v.err


def test_a_missing_object_fails_the_pull_saying_how_to_repair(cli: Cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"keep.txt": b"kept", "lost.txt": b"lost bytes"})
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    digest = blake3.blake3(b"lost bytes").hexdigest()
    (store / ".objects" / digest[:3] / digest[3:6] / digest[6:9] / digest[9:]).unlink()
    for cmd in (["pull", "--store", str(store), "--id", sid, str(tmp_path / "d")],
                ["fetch", "--store", str(store), "--id", sid]):
        r = cli(*cmd, check=False)
        assert r.rc != 0
        assert len(r.err.strip().splitlines()) == 1, r.err
        assert "lost.txt" in r.err
        assert "snapdir push --force" in r.err
    cli("push", "--force", "--store", str(store), str(src))  # the repair it names
    cli("pull", "--store", str(store), "--id", sid, str(tmp_path / "d"))
    assert (tmp_path / "d" / "lost.txt").read_bytes() == b"lost bytes"


def test_a_failed_pull_leaves_directories_with_their_modes(cli: Cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a/x.txt": b"x", "b/c/y.txt": b"y", "bad.txt": b"b"})
    for d, mode in (("a", 0o755), ("b", 0o750), ("b/c", 0o705)):
        os.chmod(src / d, mode)
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    digest = blake3.blake3(b"b").hexdigest()
    (store / ".objects" / digest[:3] / digest[3:6] / digest[6:9] / digest[9:]).write_bytes(b"?")
    cli.env["SNAPDIR_RETRIES"] = "1"
    dest = tmp_path / "dest"
    assert cli("pull", "--store", str(store), "--id", sid, str(dest), check=False).rc != 0
    for d, mode in (("a", 0o755), ("b", 0o750), ("b/c", 0o705)):
        assert stat.S_IMODE(os.stat(dest / d).st_mode) == mode, d  # not left at 0700
    assert stat.S_IMODE(os.stat(dest).st_mode) == stat.S_IMODE(os.stat(src).st_mode)


def test_verify_passes_on_a_good_store(cli: Cli, tmp_path: Path) -> None:
    src = sample(tmp_path / "src")
    sid = cli("push", "--store", str(tmp_path / "st"), str(src)).out.strip()
    cli("verify", "--store", str(tmp_path / "st"), "--id", sid)


def test_fetch_then_checkout_and_stage(cli: Cli, tmp_path: Path) -> None:
    src = sample(tmp_path / "src")
    sid = cli("push", "--store", str(tmp_path / "st"), str(src)).out.strip()
    other = cli.machine("other")
    other("fetch", "--store", str(tmp_path / "st"), "--id", sid)
    other("checkout", "--id", sid, str(tmp_path / "co"))
    assert tree_bytes(tmp_path / "co") == tree_bytes(src)
    third = cli.machine("third")
    staged = third("stage", str(src)).out.strip()
    assert staged == sid
    third("checkout", "--id", sid, str(tmp_path / "co2"))
    assert third("id", str(tmp_path / "co2")).out.strip() == sid




def test_stage_after_push_and_pull_on_the_same_machine(cli: Cli, tmp_path: Path) -> None:
    """push and pull keep the manifest in the local cache without its objects; stage
    must still copy the objects in, so that checkout works offline."""
    src = sample(tmp_path / "src")
    sid = cli("push", "--store", str(tmp_path / "st"), str(src)).out.strip()
    cli("pull", "--store", str(tmp_path / "st"), "--id", sid, str(tmp_path / "pulled"))
    assert cli("stage", str(src)).out.strip() == sid
    (tmp_path / "st").rename(tmp_path / "gone")  # checkout must not need the store
    cli("checkout", "--id", sid, str(tmp_path / "co"))
    assert cli("id", str(tmp_path / "co")).out.strip() == sid
    assert tree_bytes(tmp_path / "co") == tree_bytes(src)
def test_checkout_leaves_matching_files_and_replaces_changed(cli: Cli, tmp_path: Path) -> None:
    src = sample(tmp_path / "src")
    sid = cli("push", "--store", str(tmp_path / "st"), str(src)).out.strip()
    dest = tmp_path / "dest"
    cli("pull", "--store", str(tmp_path / "st"), "--id", sid, str(dest))
    keep = dest / "shard-02/part-1.bin"
    ino = keep.stat().st_ino
    (dest / "shard-04/part-3.bin").write_bytes(b"local edit")
    (dest / "extra.txt").write_bytes(b"mine")
    r = json.loads(cli("pull", "--json", "--store", str(tmp_path / "st"), "--id", sid,
                       str(dest)).out)
    assert keep.stat().st_ino == ino
    assert r["written"] == 1
    assert (dest / "extra.txt").exists()
    cli("pull", "--delete", "--store", str(tmp_path / "st"), "--id", sid, str(dest))
    assert not (dest / "extra.txt").exists()
    assert cli("id", str(dest)).out.strip() == sid


def test_no_cache_pull_keeps_one_copy(cli: Cli, tmp_path: Path) -> None:
    src = sample(tmp_path / "src")
    sid = cli("push", "--store", str(tmp_path / "st"), str(src)).out.strip()
    other = cli.machine("nc")
    other("pull", "--no-cache", "--store", str(tmp_path / "st"), "--id", sid,
          str(tmp_path / "d"))
    assert other("id", str(tmp_path / "d")).out.strip() == sid
    objs = other.home / "cache" / "store" / ".objects"
    assert not objs.exists() or not any(p.is_file() for p in objs.rglob("*"))


def test_destination_symlink_is_not_followed(cli: Cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"sub/f.txt": b"inside"})
    sid = cli("push", "--store", str(tmp_path / "st"), str(src)).out.strip()
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    cli("pull", "--store", str(tmp_path / "st"), "--id", sid, str(dest))
    assert list(outside.iterdir()) == []
    assert (dest / "sub").is_dir()
    assert not (dest / "sub").is_symlink()
    assert (dest / "sub/f.txt").read_bytes() == b"inside"


def test_delete_refuses_home(cli: Cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"f.txt": b"x"})
    sid = cli("push", "--store", str(tmp_path / "st"), str(src)).out.strip()
    (cli.home / "precious").write_text("keep")
    r = cli("pull", "--delete", "--store", str(tmp_path / "st"), "--id", sid, str(cli.home),
            check=False)
    assert r.rc != 0
    assert "--delete" in r.err
    assert (cli.home / "precious").read_text() == "keep"


def test_delete_refuses_the_cache_and_stores_and_what_is_inside(cli: Cli,
                                                                tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"f.txt": b"x"})
    store = tmp_path / "st"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    assert cli("stage", str(src)).out.strip() == sid  # the local cache holds it too
    cache = Path(cli.env["SNAPDIR_CACHE_DIR"])
    default_store = Path(cli.env["SNAPDIR_DATA_DIR"]) / "store"
    cli("push", str(src))  # the default store holds it too
    before = {p: sorted(p.rglob("*")) for p in (store, cache, default_store)}
    for dest in (store, store / ".objects", store / "new", cache, cache / "store",
                 default_store / "x", tmp_path):
        r = cli("pull", "--delete", "--store", str(store), "--id", sid, str(dest), check=False)
        assert r.rc != 0, dest
        assert "refusing --delete" in r.err, r.err
        assert r.err.count("\n") == 1, r.err
    r = cli("checkout", "--delete", "--id", sid, str(cache / "store"), check=False)
    assert r.rc != 0
    assert "refusing --delete" in r.err
    assert {p: sorted(p.rglob("*")) for p in before} == before
    cli("verify", "--store", str(store), "--id", sid)
    cli("pull", "--delete", "--store", str(store), "--id", sid, str(tmp_path / "mine"))
    assert cli("id", str(tmp_path / "mine")).out.strip() == sid


def test_bad_inputs_are_one_line_errors(cli: Cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"f.txt": b"x"})
    cases = [
        ("pull", "--store", str(tmp_path / "st"), "--id", "nothex", str(tmp_path / "d")),
        ("pull", "--store", "gs://bucket/x", "--id", "a" * 64, str(tmp_path / "d")),
        ("pull", "--store", str(tmp_path / "st"), "--id", "a" * 64, str(tmp_path / "d")),
        ("push", "--store", str(tmp_path / "st"), str(tmp_path / "missing")),
        ("push", "--store", str(tmp_path / "st"), str(src / "f.txt")),
    ]
    for args in cases:
        r = cli(*args, check=False)
        assert r.rc != 0, args
        assert "Traceback" not in r.err, args
        assert len(r.err.strip().splitlines()) == 1, (args, r.err)
    sid = cli("push", "--store", str(tmp_path / "st"), str(src)).out.strip()
    r = cli("pull", "--store", str(tmp_path / "st"), "--id", sid, str(src / "f.txt"),
            check=False)
    assert r.rc != 0
    assert "not a directory" in r.err


def test_force_push_repairs_a_damaged_store(cli: Cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": b"alpha", "b.txt": b"bravo"})
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    digest = blake3.blake3(b"bravo").hexdigest()
    obj = store / ".objects" / digest[:3] / digest[3:6] / digest[6:9] / digest[9:]
    obj.write_bytes(b"brav0")
    r = cli("pull", "--store", str(store), "--id", sid, str(tmp_path / "d"), check=False)
    assert r.rc != 0
    assert "push --force" in r.err
    # a plain re-push trusts the manifest in the store and repairs nothing
    cli("push", "--store", str(store), str(src))
    assert obj.read_bytes() == b"brav0"
    cli("push", "--force", "--store", str(store), str(src))
    assert obj.read_bytes() == b"bravo"
    other = cli.machine("after-repair")
    other("pull", "--store", str(store), "--id", sid, str(tmp_path / "d2"))
    assert other("id", str(tmp_path / "d2")).out.strip() == sid


def _can_reflink(where: Path) -> bool:
    import fcntl

    a, b = where / "reflink-probe-a", where / "reflink-probe-b"
    a.write_bytes(b"x" * 4096)
    try:
        with open(a, "rb") as fi, open(b, "wb") as fo:
            fcntl.ioctl(fo.fileno(), 0x40049409, fi.fileno())
        return True
    except OSError:
        return False
    finally:
        a.unlink()
        b.unlink(missing_ok=True)


def test_pull_writes_each_byte_once_and_uses_what_the_cache_has(cli: Cli, tmp_path: Path
                                                                ) -> None:
    src = sample(tmp_path / "src")
    store = str(tmp_path / "st")
    sid = cli("push", "--store", store, str(src)).out.strip()
    node = cli.machine("node")
    r = json.loads(node("pull", "--json", "--store", store, "--id", sid,
                        str(tmp_path / "d1")).out)
    assert tree_bytes(tmp_path / "d1") == tree_bytes(src)
    distinct = len({blake3.blake3(b).hexdigest() for b in tree_bytes(src).values()})
    assert r["objects_fetched"] == distinct
    cached = object_files(node.home / "cache" / "store")
    # one copy on disk: the cache got the objects only if it could share their blocks
    if _can_reflink(tmp_path):
        assert len(cached) == distinct
    else:
        assert cached == set()
    # what `fetch` put in the cache is checked out from there, not downloaded again
    node("fetch", "-q", "--store", store, "--id", sid)
    r = json.loads(node("pull", "--json", "--store", store, "--id", sid,
                        str(tmp_path / "d2")).out)
    assert (r["objects_fetched"], r["written"]) == (0, r["files"])
    assert tree_bytes(tmp_path / "d2") == tree_bytes(src)
    # an interrupted pull resumes from the files already verified in place
    for p in list((tmp_path / "d1").rglob("part-1.bin"))[:2]:
        p.unlink()
    other = cli.machine("other")
    r = json.loads(other("pull", "--json", "--store", store, "--id", sid,
                         str(tmp_path / "d1")).out)
    assert (r["objects_fetched"], r["written"]) == (2, 2)
    assert other("id", str(tmp_path / "d1")).out.strip() == sid


def test_a_corrupt_object_in_the_local_cache_never_reaches_the_destination(
        cli: Cli, tmp_path: Path) -> None:
    payload = os.urandom(50_000)
    src = make_tree(tmp_path / "src", {"ok.txt": b"fine", "victim.bin": payload,
                                       "copy/victim.bin": payload})
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    cli("fetch", "--store", str(store), "--id", sid)
    digest = blake3.blake3(payload).hexdigest()
    cached = cli.home / "cache" / "store" / ".objects" / digest[:3] / digest[3:6] / \
        digest[6:9] / digest[9:]
    bad = bytearray(payload)
    bad[1234] ^= 0xFF  # same size, one byte flipped
    os.chmod(cached, 0o644)
    cached.write_bytes(bytes(bad))
    # checkout (cache -> dir) fails naming the object and a path, places no bad bytes
    r = cli("checkout", "--id", sid, str(tmp_path / "co"), check=False)
    assert r.rc != 0
    assert digest in r.err
    assert "victim.bin" in r.err
    assert "is corrupt" in r.err
    assert "Traceback" not in r.err
    for rel in ("victim.bin", "copy/victim.bin"):
        p = tmp_path / "co" / rel
        assert not p.exists() or p.read_bytes() == payload
    # the bad copy was dropped from the cache: fetch restores it, checkout then works
    cli("fetch", "--store", str(store), "--id", sid)
    assert cached.read_bytes() == payload
    cli("checkout", "--id", sid, str(tmp_path / "co"))
    assert cli("id", str(tmp_path / "co")).out.strip() == sid
    # pull re-hashes cached objects too: a corrupt one is downloaded again
    cached.write_bytes(bytes(bad))
    r = cli("pull", "--store", str(store), "--id", sid, str(tmp_path / "pulled"))
    assert tree_bytes(tmp_path / "pulled") == tree_bytes(src)
    assert digest in r.err
    assert "corrupt" in r.err
    # a cut-short copy is named as such, not as corrupt, and replaced
    cached.write_bytes(payload[:1000])
    r = cli("pull", "--store", str(store), "--id", sid, str(tmp_path / "pulled2"))
    assert tree_bytes(tmp_path / "pulled2") == tree_bytes(src)
    assert "the wrong size (1,000 bytes, not 50,000)" in r.err, r.err


def test_one_job_reports_the_real_error(cli: Cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {f"f{i}.txt": f"file {i}".encode() for i in range(20)})
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    digest = blake3.blake3(b"file 7").hexdigest()
    obj = store / ".objects" / digest[:3] / digest[3:6] / digest[6:9] / digest[9:]
    obj.write_bytes(b"file 8")
    r = cli("pull", "-j", "1", "--store", str(store), "--id", sid, str(tmp_path / "d"),
            check=False)
    assert r.rc == 1
    assert digest in r.err
    assert "f7.txt" in r.err
    assert "internal error" not in r.err


def test_fetch_and_pull_clear_partial_downloads_of_killed_runs(cli: Cli, tmp_path: Path
                                                                ) -> None:
    import subprocess
    import sys

    payload = os.urandom(30_000)
    src = make_tree(tmp_path / "src", {"x.bin": payload})
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    digest = blake3.blake3(payload).hexdigest()
    objdir = cli.home / "cache" / "store" / ".objects" / digest[:3] / digest[3:6] / digest[6:9]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    live = str(os.getpid())  # a process still writing: its temp file is left alone
    for verb in ("fetch", "pull"):
        objdir.mkdir(parents=True, exist_ok=True)
        for f in objdir.iterdir():
            f.unlink()
        partial = objdir / f".snapdir-tmp-{digest[9:25]}-{dead}-0badf00d"
        partial.write_bytes(payload[:1000])
        working = objdir / f".snapdir-tmp-{digest[9:25]}-{live}-0c0ffee0"
        working.write_bytes(payload[:10])
        args = ["--store", str(store), "--id", sid]
        cli(verb, *args, *([str(tmp_path / "d")] if verb == "pull" else []))
        assert not partial.exists()
        assert working.exists()


def test_fetch_replaces_a_truncated_or_misplaced_cached_object(cli: Cli, tmp_path: Path
                                                               ) -> None:
    import shutil

    payload = os.urandom(30_000)
    src = make_tree(tmp_path / "src", {"x.bin": payload, "y.txt": b"y"})
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    digest = blake3.blake3(payload).hexdigest()
    cached = cli.home / "cache" / "store" / ".objects" / digest[:3] / digest[3:6] / \
        digest[6:9] / digest[9:]
    args = ["--store", str(store), "--id", sid]
    for damage in ("truncate", "directory"):
        cli("fetch", *args)
        if damage == "truncate":
            os.chmod(cached, 0o644)
            cached.write_bytes(payload[:100])
        else:
            cached.unlink()
            (cached / "junk").mkdir(parents=True)
        if damage == "directory":  # offline checkout: named as missing, fetch then repairs
            r = cli("checkout", "--id", sid, str(tmp_path / "co"), check=False)
            assert r.rc != 0
            assert "1 object is missing" in r.err
        r = json.loads(cli("fetch", "--json", *args).out)
        assert r["objects_fetched"] == 1
        assert cached.read_bytes() == payload
        shutil.rmtree(tmp_path / "co", ignore_errors=True)
        cli("checkout", "--id", sid, str(tmp_path / "co"))
        assert cli("id", str(tmp_path / "co")).out.strip() == sid
    # stage replaces a truncated copy too (it compares sizes)
    os.chmod(cached, 0o644)
    cached.write_bytes(payload[:100])
    assert cli("stage", str(src)).out.strip() == sid
    assert cached.read_bytes() == payload

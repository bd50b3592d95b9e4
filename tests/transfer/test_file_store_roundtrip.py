"""Push / pull / fetch / checkout / stage / verify through a file:// store, as a user would."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest
from conftest import Cli, dead_pid, make_tree, object_files, require_user_xattrs, tree_bytes

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
    j = cli("verify", "--json", "--store", str(store), "--id", sid, check=False)
    assert j.rc != 0
    verdict = json.loads(j.out)  # the verdict on stdout for scripts, errors on stderr
    assert verdict["ok"] is False
    assert sorted(verdict["bad"]) == sorted(
        blake3.blake3(files[n]).hexdigest() for n in [*bad, "f5.txt"])


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


def test_followed_symlinks_fetch_once_and_check_out(cli: Cli, tmp_path: Path) -> None:
    """A followed link's manifest line has the link's own size (1.x format): it must not be
    taken for its object's size, which made every fetch download the object again and
    every checkout refuse it as missing from the cache."""
    outside = make_tree(tmp_path / "outside", {"weights.bin": b"the target's bytes"})
    src = make_tree(tmp_path / "src", {"x.txt": b"x"})
    (src / "link").symlink_to(outside / "weights.bin")  # its target is not in the tree
    store = str(tmp_path / "store")
    sid = cli("push", "--store", store, str(src)).out.strip()
    first = json.loads(cli("fetch", "--json", "--store", store, "--id", sid).out)
    assert first["objects_fetched"] == 2
    again = json.loads(cli("fetch", "--json", "--store", store, "--id", sid).out)
    assert again["objects_fetched"] == 0  # the cache holds both
    cli("checkout", "--id", sid, str(tmp_path / "co"))
    assert (tmp_path / "co" / "link").read_bytes() == b"the target's bytes"
    dest = tmp_path / "pulled"
    cli("pull", "--store", store, "--id", sid, str(dest))
    assert (dest / "link").read_bytes() == b"the target's bytes"
    repeat = json.loads(cli("pull", "--json", "--store", store, "--id", sid, str(dest)).out)
    assert repeat["objects_fetched"] == 0  # what is in place is kept, links' files too


def test_checkout_after_a_pull_says_what_to_run(cli: Cli, tmp_path: Path) -> None:
    """A pull keeps no second copy in the cache (no reflinks here): a checkout of the same
    id elsewhere needs a fetch first, and says so, naming the id."""
    src = make_tree(tmp_path / "src", {"a.txt": b"a", "b.txt": b"b"})
    store = str(tmp_path / "store")
    sid = cli("push", "--store", store, str(src)).out.strip()
    cli("pull", "--store", store, "--id", sid, str(tmp_path / "d"))
    r = cli("checkout", "--id", sid, str(tmp_path / "elsewhere"), check=False)
    if r.rc != 0:  # else the filesystem shares blocks: the pull filled the cache (reflink)
        assert len(r.err.strip().splitlines()) == 1, r.err
        # the store it came from, out of this machine's catalog
        assert f"snapdir fetch --store {Path(store).as_uri()} --id {sid}" in r.err
        cli("fetch", "--store", Path(store).as_uri(), "--id", sid)
        cli("checkout", "--id", sid, str(tmp_path / "elsewhere"))
    assert (tmp_path / "elsewhere" / "b.txt").read_bytes() == b"b"


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
    r = third("checkout", "-q", "--id", sid, str(tmp_path / "co2"))  # -q as elsewhere
    assert (r.out, r.err) == ("", "")
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


def test_a_destination_that_is_a_link_is_followed(cli: Cli, tmp_path: Path) -> None:
    """``train -> /mnt/nvme/train``: the snapshot lands where the link points and the link
    stays (it was replaced by a new, real directory on the link's disk); a link to
    nothing, or to a file, is one clear error."""
    src = make_tree(tmp_path / "src", {"sub/f.txt": b"inside", "g": b"g"})
    store = str(tmp_path / "st")
    sid = cli("push", "--store", store, str(src)).out.strip()
    cli("fetch", "--store", store, "--id", sid)
    for verb in (["pull", "--store", store], ["pull", "--delete", "--store", store],
                 ["checkout"], ["checkout", "--delete"]):
        real = tmp_path / "nvme" / "train"
        real.mkdir(parents=True, exist_ok=True)
        (real / "extra").write_bytes(b"extra")
        link = tmp_path / "train"
        link.unlink(missing_ok=True)
        link.symlink_to(real, target_is_directory=True)
        cli(*verb, "--id", sid, str(link))
        assert link.is_symlink(), verb
        want = tree_bytes(src) | ({} if "--delete" in verb else {"extra": b"extra"})
        assert tree_bytes(real) == want, verb
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    (tmp_path / "afile").write_bytes(b"")
    tofile = tmp_path / "tofile"
    tofile.symlink_to(tmp_path / "afile")
    for bad, says in ((dangling, "does not exist"), (tofile, "not a directory")):
        r = cli("pull", "--store", store, "--id", sid, str(bad), check=False)
        assert r.rc != 0
        assert says in r.err, r.err
        assert len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "nowhere").exists()
    assert (tmp_path / "afile").read_bytes() == b""


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


def _listing(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a directory)."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


def test_delete_refuses_a_store_the_command_was_not_told_of(cli: Cli, tmp_path: Path) -> None:
    big = make_tree(tmp_path / "big", {f"d{i % 7}/f{i}.bin": os.urandom(50 + i)
                                       for i in range(300)})
    other = make_tree(tmp_path / "other", {"a.txt": b"the other snapshot"})
    st_a, st_b = tmp_path / "stA", tmp_path / "stB"
    cli("push", "--store", str(st_b), str(big))
    sid = cli("push", "--store", str(st_a), str(other)).out.strip()
    before = _listing(st_b)
    assert len(object_files(st_b)) == 300
    # a machine whose catalog knows neither store: the store is recognised on disk
    fresh = cli.machine("fresh")
    for run in (cli, fresh):
        for dest in (st_b, st_b / ".objects", st_b / ".manifests" / "new"):
            r = run("pull", "--delete", "--store", str(st_a), "--id", sid, str(dest),
                    check=False)
            assert r.rc != 0, dest
            assert "refusing --delete" in r.err, r.err
            assert f"snapdir store {st_b}" in r.err, r.err
            assert r.err.count("\n") == 1, r.err
        run("fetch", "-q", "--store", str(st_a), "--id", sid)
        r = run("checkout", "--delete", "--id", sid, str(st_b), check=False)
        assert r.rc != 0
        assert f"snapdir store {st_b}" in r.err, r.err
    assert _listing(st_b) == before  # nothing deleted, nothing written
    cli("verify", "--store", str(st_b), "--id", cli("id", str(big)).out.strip())


def test_delete_refuses_to_delete_a_store_inside_the_destination(cli: Cli,
                                                                 tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": b"alpha", "st": b"a file named st"})
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    cli("fetch", "-q", "--store", str(store), "--id", sid)
    fresh = cli.machine("fresh")
    fresh("fetch", "-q", "--store", str(store), "--id", sid)
    data = make_tree(tmp_path / "data", {"x.bin": os.urandom(3000), "y.bin": b"why"})
    for layout in ("par/st", "par/deep/er/st"):  # extra directory; where the snapshot has a file
        par = tmp_path / layout.split("/")[0]
        inner = tmp_path / layout
        cli("push", "--store", str(inner), str(data))  # this machine pushed there
        (par / "junk.txt").write_bytes(b"an extra file the mirror would delete")
        before = _listing(par)
        for run in (cli, fresh):  # fresh: a catalog that does not know the store
            for verb in ("pull", "checkout"):
                args = ["--store", str(store)] if verb == "pull" else []
                r = run(verb, "--delete", *args, "--id", sid, str(par), check=False)
                assert r.rc != 0, (layout, verb)
                assert r.err == (f"snapdir: destination error: {par}: refusing --delete: it "
                                 f"would delete the snapdir store {inner}; move the store "
                                 "out or choose another directory\n"), r.err
        assert _listing(par) == before  # nothing deleted, nothing downloaded
        import shutil

        shutil.move(inner, tmp_path / "moved")
        cli("pull", "--delete", "--store", str(store), "--id", sid, str(par))
        assert tree_bytes(par) == tree_bytes(src)
        shutil.rmtree(par)
        shutil.rmtree(tmp_path / "moved")


def test_delete_refuses_a_catalogued_store_that_no_longer_looks_like_one(
        cli: Cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": b"alpha"})
    sid = cli("push", "--store", str(tmp_path / "store"), str(src)).out.strip()
    cli("fetch", "-q", "--store", str(tmp_path / "store"), "--id", sid)
    par = tmp_path / "par"
    cli("push", "--store", str(par / "st"), str(tmp_path / "src"))
    (par / "st" / ".objects").rename(par / "st" / "objects.old")
    (par / "st" / ".manifests").rename(par / "st" / "manifests.old")
    assert str(par / "st") in cli("locations", sid).out
    before = _listing(par)
    for dest in (par, par / "st", par / "st" / "sub"):
        r = cli("checkout", "--delete", "--id", sid, str(dest), check=False)
        assert r.rc != 0
        assert f"snapdir store {par / 'st'}" in r.err, r.err
    assert _listing(par) == before


def test_delete_mirrors_a_snapshot_that_holds_a_store(cli: Cli, tmp_path: Path) -> None:
    """A store inside the snapshot is no reason to refuse; extra files in it are."""
    src = tmp_path / "src"
    make_tree(tmp_path / "data", {"x.bin": b"x"})
    cli("push", "--store", str(src / "proj" / "st"), str(tmp_path / "data"))
    make_tree(src, {"proj/readme": b"a project with its own store"})
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    dest = tmp_path / "dest"
    args = ["pull", "--delete", "--store", str(store), "--id", sid, str(dest)]
    cli(*args)
    cli(*args)  # a mirror of the same snapshot: nothing to delete, no refusal
    (dest / "proj" / "notes.txt").write_bytes(b"beside the store, not in it")
    r = json.loads(cli(*args, "--json").out)
    assert r["deleted"] == 1
    assert not (dest / "proj" / "notes.txt").exists()
    extra = dest / "proj" / "st" / ".objects" / "abc" / "def" / "012" / "new-object"
    extra.parent.mkdir(parents=True)
    extra.write_bytes(b"pushed there since")
    before = _listing(dest)
    r = cli(*args, check=False)
    assert r.rc != 0
    assert (f"it would delete {dest}/proj/st/.objects/abc (not in the snapshot) in the "
            f"snapdir store {dest}/proj/st") in r.err, r.err
    assert _listing(dest) == before
    assert cli("id", str(dest)).out.strip() != sid


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


def test_delete_mirrors_a_snapshot_with_an_objects_folder_at_its_top(cli: Cli,
                                                                     tmp_path: Path) -> None:
    """A snapshot whose top holds a `.objects` folder of its own: the destination is not
    taken for a store because of it (the pull wrote files, then refused), before or after."""
    src = make_tree(tmp_path / "src", {".objects/x": b"x", "k/y": b"y"})
    store = str(tmp_path / "store")
    sid = cli("push", "--store", store, str(src)).out.strip()
    dest = tmp_path / "dest"
    cli("pull", "--delete", "--store", store, "--id", sid, str(dest))
    (dest / "extra.txt").write_bytes(b"not in the snapshot")
    cli("pull", "--delete", "--store", store, "--id", sid, str(dest))
    assert not (dest / "extra.txt").exists()
    assert cli("id", str(dest)).out.strip() == sid
    (dest / ".manifests").mkdir()  # now it does look like a store: refused, nothing deleted
    (dest / "extra.txt").write_bytes(b"kept")
    cli("fetch", "--store", store, "--id", sid)  # checkout takes objects from the cache
    r = cli("checkout", "--delete", "--id", sid, str(dest), check=False)
    assert r.rc != 0
    assert "snapdir store" in r.err
    assert (dest / "extra.txt").read_bytes() == b"kept"


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
    # the advice names the store it came from (a bare `fetch` goes to the default store)
    assert f"run `snapdir fetch --store file://{store} --id {sid}` again to restore it" \
        in r.err, r.err
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


def _store_temps(store: Path, *, written: bool = False) -> set[Path]:
    """The temp files in ``store`` (``written``: only those with bytes in them)."""
    out = set()
    for p in store.rglob(".tmp-*"):
        try:
            st = p.stat()
        except FileNotFoundError:
            continue  # renamed into place meanwhile
        if p.is_file() and (st.st_size > 0 or not written):
            out.add(p)
    return out


def test_a_push_removes_what_a_killed_push_left(cli: Cli, tmp_path: Path) -> None:
    import shutil
    import signal
    import time

    src = tmp_path / "src"
    src.mkdir()
    store = tmp_path / "store"
    size = 256 << 20
    for _attempt in range(4):  # kill -9 a push while it writes a large object
        with open(src / "big.bin", "wb") as fh:
            fh.write(os.urandom(1 << 20) * (size >> 20))
        p = cli.popen("push", "-q", "-j", "1", "--store", str(store), str(src))
        while p.poll() is None and not _store_temps(store, written=True):
            time.sleep(0.002)
        p.send_signal(signal.SIGKILL)
        p.communicate()
        if p.returncode == -signal.SIGKILL and _store_temps(store):
            break
        size *= 2  # it finished first: a larger object, written for longer
        shutil.rmtree(store, ignore_errors=True)
    else:
        raise AssertionError("no push could be killed while it wrote an object")
    assert not (store / ".manifests").exists()  # the killed push wrote no manifest
    sid = cli("push", "-q", "--store", str(store), str(src)).out.strip()
    assert _store_temps(store) == set()
    cli("pull", "-q", "--store", str(store), "--id", sid, str(tmp_path / "d"))
    assert cli("id", str(tmp_path / "d")).out.strip() == sid


def test_a_push_leaves_the_temp_files_of_live_writers(cli: Cli, tmp_path: Path) -> None:
    """Another push writing into the same store: its temp file is not removed; one whose
    writer cannot be asked (another host, an older name without a pid) only once old."""
    import subprocess
    import sys
    import time

    payload = os.urandom(40_000)
    src = make_tree(tmp_path / "src", {"x.bin": payload})
    store = tmp_path / "store"
    digest = blake3.blake3(payload).hexdigest()
    obj = store / ".objects" / digest[:3] / digest[3:6] / digest[6:9] / digest[9:]
    # temp files named by the store's own writer, in processes that exit or keep running
    writer = ("import sys; from pathlib import Path; from snapdir.stores.file import "
              "_open_temp; t = _open_temp(Path(sys.argv[1])); t.write_bytes(b'partial'); "
              "print(t, flush=True); sys.stdin.read()")
    dead = subprocess.run([sys.executable, "-c", writer, str(obj)], env=cli.env, input="",
                          capture_output=True, text=True, check=True).stdout.strip()
    old = time.time() - 7 * 3600
    with subprocess.Popen([sys.executable, "-c", writer, str(obj)], env=cli.env,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as live_p:
        assert live_p.stdout is not None
        live = Path(live_p.stdout.readline().strip())
        # (name, removed?): an older snapdir's name (no pid) and another host's are
        # removed only once untouched for hours; names not of this writer's shape never
        others = {".tmp-0123456789abcdee": True, ".tmp-0123456789abcdef": False,
                  ".tmp-1234-deadbeef-0badf00e": True, ".tmp-1234-deadbeef-0badf00f": False,
                  ".tmp-notes-e": False, ".tmp-notes-f": False}
        for name in others:
            (obj.parent / name).write_bytes(b"partial")
            if name.endswith("e"):
                os.utime(obj.parent / name, (old, old))
        cli("push", "-q", "--store", str(store), str(src))
        assert live.exists()
        live_p.communicate("")  # it exits: its file is now one of a writer that is gone
    assert obj.read_bytes() == payload
    assert not Path(dead).exists()
    assert _store_temps(store) == {live} | {obj.parent / n for n, gone in others.items()
                                             if not gone}
    obj.unlink()  # the next push writes it again, and takes the file the writer left
    cli("push", "-q", "--force", "--store", str(store), str(src))
    assert not live.exists()


def test_files_named_like_our_temps_are_pulled_and_kept(cli: Cli, tmp_path: Path) -> None:
    """A snapshot's own files named ``.snapdir-tmp-*`` (even with a dead process's pid in
    them) are data, not leftovers of a killed pull: pull, checkout and --delete keep them,
    while a real leftover beside them is cleared."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    files = {f".snapdir-tmp-x-{dead}-abcd1234": b"looks like a temp\n",
             ".snapdir-tmp-notes": b"notes\n",
             f"sub/.snapdir-tmp-part-{dead}-0123abcd": b"nested\n",
             "normal": b"b\n"}
    src = make_tree(tmp_path / "src", files)
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    cli("fetch", "--store", str(store), "--id", sid)  # for checkout
    for args in (["pull", "--store", str(store), "--id", sid],
                 ["pull", "--delete", "--store", str(store), "--id", sid],
                 ["pull", "--no-cache", "--store", str(store), "--id", sid],
                 ["checkout", "--id", sid],
                 ["checkout", "--delete", "--id", sid]):
        dest = tmp_path / "dest"
        dest.mkdir(exist_ok=True)
        leftover = dest / f".snapdir-tmp-normal-{dead}-0badf00d"
        leftover.write_bytes(b"partial")
        cli(*args, str(dest))
        assert tree_bytes(dest) == tree_bytes(src), args
        assert cli("id", str(dest)).out.strip() == sid
        assert cli("status", "--exit-code", "--id", sid, str(dest)).rc == 0


def test_user_files_only_starting_like_our_temps_survive_a_pull(cli: Cli, tmp_path: Path
                                                                ) -> None:
    """Files of the destination's own, not in the snapshot, that start with
    ``.snapdir-tmp-`` but are not shaped as our temp names are not a dead pull's
    leftovers: a pull without --delete used to remove ``.snapdir-tmp-notes-2024-01``
    (2024 taken for a dead pid) and to stop on an internal OverflowError at a huge
    "pid". A real leftover (exact shape, dead pid) is still cleared."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    src = make_tree(tmp_path / "src", {"a.txt": b"a\n"})
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    dest = tmp_path / "dest"
    dest.mkdir()
    mine = [".snapdir-tmp-notes-2024-01", ".snapdir-tmp-x-99999-y",
            ".snapdir-tmp-a-99999999999999999999-0badf00d"]
    for name in mine:
        (dest / name).write_bytes(b"precious\n")
    leftover = dest / f".snapdir-tmp-a.txt-{dead}-0badf00d"
    leftover.write_bytes(b"partial")
    cli("pull", "--store", str(store), "--id", sid, str(dest))
    assert (dest / "a.txt").read_bytes() == b"a\n"
    assert all((dest / name).read_bytes() == b"precious\n" for name in mine)
    assert not leftover.exists()


def test_a_snapshot_of_another_context_is_not_called_corrupt(cli: Cli, tmp_path: Path) -> None:
    """Pushed with SNAPDIR_MANIFEST_CONTEXT, pulled without it (or with another): every
    object fails its hash. That used to be reported as a corrupt store only, with advice to
    delete objects; it now says first to set the context it was pushed with."""
    from conftest import Cli as CliT

    src = make_tree(tmp_path / "src", {f"d/f{i}": os.urandom(100 + i) for i in range(5)})
    keyed = CliT({**cli.env, "SNAPDIR_MANIFEST_CONTEXT": "team-x 2026"}, cli.home)
    other = CliT({**cli.env, "SNAPDIR_MANIFEST_CONTEXT": "another"}, cli.home)
    store = str(tmp_path / "store")
    sid = keyed("push", "--store", store, str(src)).out.strip()
    for run in (cli, other):
        for args in (["pull", "--store", store, "--id", sid, str(tmp_path / "d1")],
                     ["pull", "--no-cache", "--store", store, "--id", sid,
                      str(tmp_path / "d2")],
                     ["fetch", "--store", store, "--id", sid],
                     ["verify", "--store", store, "--id", sid],
                     ["sync", "--id", sid, "--from", store, "--to", str(tmp_path / "st2")]):
            r = run(*args, check=False)
            assert r.rc == 1, (args, r.err)
            assert "most likely pushed with another SNAPDIR_MANIFEST_CONTEXT" in r.err, (
                args, r.err)
            assert "delete" not in r.err, (args, r.err)
            assert len(r.err.strip().splitlines()) == 1, (args, r.err)
    keyed("pull", "--store", store, "--id", sid, str(tmp_path / "ok"))
    assert tree_bytes(tmp_path / "ok") == tree_bytes(src)
    # a store that is really damaged is still called so, with or without a context
    obj = next(iter(object_files(Path(store))))
    obj.write_bytes(b"garbage")
    for run in (cli, keyed):
        plain = run("push", "--store", str(tmp_path / "plain"), str(src)).out.strip()
        obj2 = next(p for p in object_files(tmp_path / "plain"))
        obj2.write_bytes(b"garbage")
        r = run("pull", "--no-cache", "--store", str(tmp_path / "plain"), "--id", plain,
                str(tmp_path / f"bad-{id(run)}"), check=False)
        assert r.rc == 1
        assert "corrupt" in r.err, r.err
        assert "SNAPDIR_MANIFEST_CONTEXT" not in r.err, r.err
        import shutil
        shutil.rmtree(tmp_path / "plain")


def test_the_wrong_store_is_called_so_not_damaged(cli: Cli, tmp_path: Path) -> None:
    """The manifest is in the local cache (an earlier pull), the store named now is another
    one: pulling from it used to say the store lacks an object and to repair it with
    `push --force`; it says the snapshot is not in that store."""
    src = make_tree(tmp_path / "src", {"a": b"a" * 100, "b": b"b" * 200})
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    cli("pull", "--store", str(store), "--id", sid, str(tmp_path / "first"))
    wrong = tmp_path / "wrong"
    other = make_tree(tmp_path / "other", {"x": b"x"})
    cli("push", "--store", str(wrong), str(other))  # a real store, without this snapshot
    for verb in (["pull", "--store", str(wrong), "--id", sid, str(tmp_path / "d")],
                 ["fetch", "--store", str(wrong), "--id", sid]):
        r = cli(*verb, check=False)
        assert r.rc == 1, r.err
        assert f"snapshot {sid} is not in file://{wrong}" in r.err, r.err
        assert "check the id and --store" in r.err
        assert "push --force" not in r.err
        assert len(r.err.strip().splitlines()) == 1
    # a store that really lost an object still says so
    next(iter(object_files(store))).unlink()
    r = cli("pull", "--store", str(store), "--id", sid, str(tmp_path / "d2"), check=False)
    assert r.rc == 1
    assert "push --force" in r.err, r.err


def test_a_store_path_that_is_not_there_is_refused_even_with_a_warm_cache(
        cli: Cli, tmp_path: Path) -> None:
    """With the snapshot whole in the local cache, a typo in --store passed (exit 0) and
    was recorded as where the snapshot was pulled from."""
    src = make_tree(tmp_path / "src", {"a": b"a"})
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    cli("fetch", "--store", str(store), "--id", sid)
    typo = tmp_path / "stroe"
    for verb in (["pull", "--store", str(typo), "--id", sid, str(tmp_path / "d")],
                 ["fetch", "--store", str(typo), "--id", sid]):
        r = cli(*verb, check=False)
        assert r.rc == 1, (verb, r.err)
        assert f"there is no store at {typo}" in r.err
        assert len(r.err.strip().splitlines()) == 1
    assert "stroe" not in cli("locations", sid).out
    assert not (tmp_path / "d").exists()


@contextlib.contextmanager
def _immutable(path: Path) -> Iterator[None]:
    """``chattr +i path`` for the block (skips the test where that is not possible)."""
    import shutil
    import subprocess

    if shutil.which("chattr") is None or subprocess.run(
            ["chattr", "+i", str(path)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not available here (needs root and ext4/xfs/btrfs)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_file_that_cannot_be_replaced_is_named_not_our_temp(cli: Cli,
                                                               tmp_path: Path) -> None:
    """An immutable file in the way (chattr +i): the error names it, not the temp file
    the new bytes were waiting in (which is removed)."""
    src = make_tree(tmp_path / "src", {"top": b"new bytes\n"})
    store = str(tmp_path / "store")
    sid = cli("push", "--store", store, str(src)).out.strip()
    dest = make_tree(tmp_path / "dest", {"top": b"old\n"})
    with _immutable(dest / "top"):
        runs = [cli("pull", "--store", store, "--id", sid, str(dest), check=False)]
        cli("fetch", "--store", store, "--id", sid)  # into the cache: checkout copies it
        runs.append(cli("checkout", "--id", sid, str(dest), check=False))
    for r in runs:
        assert r.rc == 1
        assert f": {dest / 'top'}: " in r.err, r.err
        assert ".snapdir-tmp" not in r.err
        assert len(r.err.strip().splitlines()) == 1
    assert [p.name for p in dest.iterdir()] == ["top"]


def test_a_directory_that_refuses_new_files_is_named_not_our_temp(cli: Cli,
                                                                  tmp_path: Path) -> None:
    """A destination directory where no file can be created (immutable, read-only, full):
    the error names that directory, not the temp file the download tried to create."""
    src = make_tree(tmp_path / "src", {"sub/f": b"new bytes\n"})
    store = str(tmp_path / "store")
    sid = cli("push", "--store", store, str(src)).out.strip()
    dest = tmp_path / "dest"
    (dest / "sub").mkdir(parents=True)
    with _immutable(dest / "sub"):
        runs = [cli("pull", *flags, "--store", store, "--id", sid, str(dest), check=False)
                for flags in ([], ["--no-cache"])]
    for r in runs:
        assert r.rc == 1
        assert f": {dest / 'sub'}: cannot write ./sub/f there" in r.err, r.err
        assert ".snapdir-tmp" not in r.err
        assert len(r.err.strip().splitlines()) == 1
    assert list((dest / "sub").iterdir()) == []


def test_a_pull_leaves_no_partial_download_it_did_not_take_over(cli: Cli, tmp_path: Path
                                                                 ) -> None:
    """A killed pull's partial download of a large object is kept for the next pull to
    take over; where that pull gets the object otherwise (from the cache, or downloaded to
    another of its paths), the partial file must not stay behind once it succeeds."""
    from snapdir.transfer.cache import RESUME_ATTR

    payload = os.urandom(2 * 1024 * 1024)
    src = make_tree(tmp_path / "src", {"a/x.bin": payload, "b/x.bin": payload})
    store = tmp_path / "store"
    sid = cli("push", "--store", str(store), str(src)).out.strip()
    digest = blake3.blake3(payload).hexdigest()
    dead = dead_pid()
    require_user_xattrs(tmp_path)
    for case, flags in (("second-path", ["--no-cache"]), ("from-cache", [])):
        dest = tmp_path / case
        left = dest / "b" / f".snapdir-tmp-x.bin-{dead}-0badf00d"
        left.parent.mkdir(parents=True)
        left.write_bytes(payload[:1024 * 1024] + bytes(1024 * 1024))
        os.setxattr(left, RESUME_ATTR, f"{digest} {1024 * 1024}".encode())
        if not flags:
            cli("fetch", "--store", str(store), "--id", sid)
        cli("pull", *flags, "--store", str(store), "--id", sid, str(dest))
        assert not left.exists(), case
        assert cli("id", str(dest)).out.strip() == sid


def test_a_push_refuses_a_store_or_cache_inside_the_directory(cli: Cli, tmp_path: Path
                                                              ) -> None:
    """`cd project && snapdir push --store ./store .`: each push took the store's own
    files into the snapshot, a new id every time and the store holding a copy of itself;
    likewise snapdir's cache inside the directory. Refused unless --exclude leaves it
    out."""
    d = make_tree(tmp_path / "d", {"a": b"a\n"})
    store = d / "st"
    for _ in range(2):  # the second push used to give another id
        r = cli("push", "--store", str(store), str(d), check=False)
        assert r.rc == 2, r
        assert f"the store at {store} is inside it" in r.err
        assert len(r.err.strip().splitlines()) == 1
        assert r.out == ""
    assert not store.exists()
    one = cli("push", "--store", str(store), "--exclude", "/st$", str(d)).out
    assert cli("push", "--store", str(store), "--exclude", "/st$", str(d)).out == one
    assert one.strip() == cli("id", str(make_tree(tmp_path / "e", {"a": b"a\n"}))).out.strip()
    r = cli("push", "--store", str(d), str(d), check=False)
    assert r.rc == 2, r
    assert "is this directory itself" in r.err
    inner = Cli(dict(cli.env, SNAPDIR_CACHE_DIR=str(d / "cache")), cli.home)
    r = inner("push", "--store", str(tmp_path / "elsewhere"), str(d), check=False)
    assert r.rc == 2, r
    assert f"cache (SNAPDIR_CACHE_DIR) at {d / 'cache'} is inside" in r.err
    assert not (tmp_path / "elsewhere").exists()

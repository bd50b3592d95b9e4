"""History and lineage on a real S3 server (SeaweedFS on loopback): revision records live
in the bucket, so a machine that shares only the bucket sees the same history."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import Bucket, Cli, make_tree

pytestmark = pytest.mark.s3

HISTORY = ".snapdir-history/"


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def write_dataset(root: Path, version: int) -> Path:
    files = {f"train/{i:03d}.bin": os.urandom(200) for i in range(20)}
    files["VERSION"] = f"{version}\n".encode()
    return make_tree(root, files)


class World:
    """Dataset v1 -> v2 and an unrelated dataset in one prefix, pushed from a 'data' machine;
    a model trained on v2 pushed from a 'trainer' machine to another prefix."""

    def __init__(self, cli: Cli, bucket: Bucket, tmp: Path) -> None:
        base = bucket.unique_uri("history")
        self.datasets = f"{base}/datasets"
        self.models = f"{base}/models"
        self.data_machine = cli.machine("data-team")
        self.trainer = cli.machine("trainer")
        self.auditor = cli.machine("auditor")
        d = self.data_machine
        self.ds_dir = write_dataset(tmp / "imagenet", 1)
        self.v1 = d("push", "-q", "--store", self.datasets, str(self.ds_dir)).out.strip()
        (self.ds_dir / "VERSION").write_text("2\n")
        (self.ds_dir / "train/007.bin").write_bytes(os.urandom(300))
        self.v2 = d("push", "-q", "--store", self.datasets, str(self.ds_dir)).out.strip()
        self.other = d("push", "-q", "--store", self.datasets,
                       str(write_dataset(tmp / "cifar", 1))).out.strip()
        # the trainer pulls v2, trains, pushes the checkpoint naming v2 as its parent
        self.train_copy = tmp / "trainer-data" / "imagenet"
        self.trainer("pull", "-q", "--store", self.datasets, "--id", self.v2,
                     str(self.train_copy))
        ckpt = make_tree(tmp / "run-42", {"weights.bin": os.urandom(5000),
                                           "config.json": b'{"lr": 0.1}'})
        self.model = self.trainer("push", "-q", "--store", self.models, "--parent", self.v2,
                                  str(ckpt)).out.strip()


@pytest.fixture
def world(s3_cli: Cli, bucket: Bucket, tmp_path: Path) -> World:
    return World(s3_cli, bucket, tmp_path)


def test_ancestors_revisions_and_locations_across_machines(world: World) -> None:
    w = world
    assert len({w.v1, w.v2, w.other, w.model}) == 4
    # the auditor has never seen any of it: fresh cache, data dir and home
    anc = w.auditor("ancestors", "--store", w.models, w.model)
    assert lines(anc.out) == [w.v2, w.v1]
    assert "warning" not in anc.err.lower()
    assert "Traceback" not in anc.err
    assert lines(w.auditor("revisions", "--store", w.datasets, "imagenet").out) == [w.v2, w.v1]
    assert lines(w.auditor("revisions", "--store", w.datasets, "cifar").out) == [w.other]
    assert lines(w.auditor("revisions", "--store", w.models, "run-42").out) == [w.model]
    # v1 has no ancestors
    assert lines(w.auditor("ancestors", "--store", w.datasets, w.v1).out) == []

    # --json: one object per line, naming each ancestor's dataset and store
    out = w.auditor("ancestors", "--json", "--store", w.models, w.model).out
    objs = [json.loads(ln) for ln in lines(out)]
    assert [o["id"] for o in objs] == [w.v2, w.v1]
    assert [o["name"] for o in objs] == ["imagenet", "imagenet"]
    assert [o["store"] for o in objs] == [w.datasets, w.datasets]

    # locations: the trainer knows where its pulled copy is; the auditor knows nothing
    loc = w.trainer("locations", w.v2).out
    assert str(w.train_copy) in loc
    assert "pull" in loc
    assert w.auditor("locations", w.v2).out.strip() == ""
    loc_json = [json.loads(ln) for ln in lines(w.trainer("locations", "--json", w.v2).out)]
    assert any(o["kind"] == "pull" and o["location"] == str(w.train_copy)
               and o["store"] == w.datasets for o in loc_json)


def test_unreadable_or_newer_records_are_skipped_with_a_warning(world: World,
                                                                bucket: Bucket) -> None:
    w = world
    ids = f"{HISTORY}v1/ids"
    # a record from some future snapdir that, if believed, would add `other` as a parent
    future = {"format": 2, "id": w.v2, "name": "imagenet", "store": w.datasets,
              "parents": [{"id": w.other, "store": w.datasets}], "time": 9e9}
    bucket.put(w.datasets, f"{ids}/{w.v2}/99999999999999999999-future.json",
               json.dumps(future).encode())
    bucket.put(w.datasets, f"{ids}/{w.v2}/99999999999999999999-garbage.json",
               b"\xff\xfe\x00 this is not json {")
    bucket.put(w.models, f"{ids}/{w.model}/00000000000000000000-junk.json", b'["a list"]')
    bucket.put(w.datasets, f"{HISTORY}v1/names/imagenet/not-a-marker", b"")
    bucket.put(w.datasets, f"{HISTORY}v1/names/imagenet/99999999999999999999-nothex", b"junk")

    anc = w.auditor("ancestors", "--store", w.models, w.model)
    assert lines(anc.out) == [w.v2, w.v1]
    assert "warning" in anc.err.lower()
    for bad in ("future.json", "garbage.json", "junk.json"):  # each one named
        assert bad in anc.err, anc.err
    assert "Traceback" not in anc.err
    objs = [json.loads(ln) for ln in lines(
        w.auditor("ancestors", "--json", "--store", w.models, w.model).out)]
    assert [o["id"] for o in objs] == [w.v2, w.v1]

    rev = w.auditor("revisions", "--store", w.datasets, "imagenet")
    assert lines(rev.out) == [w.v2, w.v1]
    assert "warning" in rev.err.lower()
    assert "not-a-marker" in rev.err
    assert "nothex" in rev.err
    assert "Traceback" not in rev.err

    # and a push of a new revision still works and lands on top
    (w.ds_dir / "VERSION").write_text("3\n")
    v3 = w.data_machine("push", "-q", "--store", w.datasets, str(w.ds_dir)).out.strip()
    assert lines(w.auditor("revisions", "--store", w.datasets, "imagenet").out) == [
        v3, w.v2, w.v1]
    assert lines(w.auditor("ancestors", "--store", w.datasets, v3).out) == [w.v2, w.v1]


def test_concurrent_pushes_of_one_name_both_recorded(s3_cli: Cli, bucket: Bucket,
                                                     tmp_path: Path) -> None:
    store = bucket.unique_uri("concurrent")
    a = write_dataset(tmp_path / "a" / "shared", 1)
    b = write_dataset(tmp_path / "b" / "shared", 2)
    m1, m2 = s3_cli.machine("node-1"), s3_cli.machine("node-2")
    procs = [m.popen("push", "-q", "--store", store, str(d))  # type: ignore[attr-defined]
             for m, d in ((m1, a), (m2, b))]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(out.strip())
    assert outs[0] != outs[1]
    assert outs[0] == s3_cli("id", str(a)).out.strip()
    assert outs[1] == s3_cli("id", str(b)).out.strip()
    got = lines(s3_cli.machine("reader")("revisions", "--store", store, "shared").out)
    assert sorted(got) == sorted(outs)


def test_name_defaults_to_directory_and_can_be_overridden(s3_cli: Cli, bucket: Bucket,
                                                          tmp_path: Path) -> None:
    store = bucket.unique_uri("names")
    ckpt = make_tree(tmp_path / "checkpoints", {"w.bin": os.urandom(100)})
    sid = s3_cli("push", "-q", "--store", store, "--name", "run-7 final", str(ckpt)).out.strip()
    reader = s3_cli.machine("reader")
    assert lines(reader("revisions", "--store", store, "run-7 final").out) == [sid]
    assert lines(reader("revisions", "--store", store, "checkpoints").out) == []
    (ckpt / "w.bin").write_bytes(os.urandom(100))
    sid2 = s3_cli("push", "-q", "--store", store, str(ckpt)).out.strip()
    assert lines(reader("revisions", "--store", store, "checkpoints").out) == [sid2]
    # the directory-named revision does not inherit the other name's history
    assert lines(reader("ancestors", "--store", store, sid2).out) == []
    # a name with a slash stays one name
    sid3 = s3_cli("push", "-q", "--store", store, "--name", "team/ds", str(ckpt)).out.strip()
    assert sid3 == sid2
    assert lines(reader("revisions", "--store", store, "team/ds").out) == [sid2]
    assert lines(reader("revisions", "--store", store, "team").out) == []
    # names that are path segments of their own ("..": the S3 client refused the key)
    for odd in (".", ".."):
        (ckpt / "w.bin").write_bytes(os.urandom(100))
        got = s3_cli("push", "-q", "--store", store, "--name", odd, str(ckpt)).out.strip()
        assert lines(reader("revisions", "--store", store, odd).out) == [got]


def test_python_api(s3_env: object, s3_cli: Cli, bucket: Bucket, tmp_path: Path) -> None:
    import snapdir

    base = bucket.unique_uri("api")
    datasets, models = f"{base}/datasets", f"{base}/models"
    ds = write_dataset(tmp_path / "dir-name-not-used", 1)
    r1 = snapdir.push(ds, datasets, name="api-ds")
    assert r1.id == snapdir.snapshot_id(ds)
    (ds / "VERSION").write_text("2\n")
    r2 = snapdir.push(ds, datasets, name="api-ds")
    unrelated = snapdir.push(write_dataset(tmp_path / "x", 9), datasets, name="api-other")
    model = snapdir.push(make_tree(tmp_path / "m", {"w": b"weights"}), models,
                         name="api-model", parents=[r2.id])
    assert [a.id for a in snapdir.ancestors(model.id, models)] == [r2.id, r1.id]
    assert unrelated.id not in [a.id for a in snapdir.ancestors(model.id, models)]
    assert snapdir.revisions("api-ds", datasets) == [r2.id, r1.id]
    assert snapdir.revisions("dir-name-not-used", datasets) == []
    pushed = [loc for loc in snapdir.locations(r2.id) if loc.kind == "push"]
    assert [loc.location for loc in pushed] == [str(ds)]
    assert pushed[0].store == datasets
    # what the API recorded is what another machine's CLI reads from the bucket
    other = s3_cli.machine("cli-reader")
    assert lines(other("ancestors", "--store", models, model.id).out) == [r2.id, r1.id]
    assert lines(other("revisions", "--store", datasets, "api-ds").out) == [r2.id, r1.id]


def test_a_revert_is_a_revision_and_its_cycle_one_note(s3_cli: Cli, bucket: Bucket,
                                                       tmp_path: Path) -> None:
    """v1, v2, v1 again: v1 becomes its own ancestor. The walk ends cleanly, lists each id
    once and says so in one note (the issue: cycles end the walk with a note on stderr);
    a diamond (a model trained on v2 and on v1, v2's parent) is no cycle: no note."""
    uri = bucket.unique_uri("revert")
    ds = write_dataset(tmp_path / "ds", 1)
    v1 = s3_cli("push", "-q", "--store", uri, str(ds)).out.strip()
    (ds / "VERSION").write_bytes(b"2\n")
    v2 = s3_cli("push", "-q", "--store", uri, str(ds)).out.strip()
    (ds / "VERSION").write_bytes(b"1\n")
    again = s3_cli("push", "-q", "--store", uri, str(ds)).out.strip()
    assert again == v1
    assert lines(s3_cli("revisions", "--store", uri, "ds").out) == [v1, v2]
    auditor = s3_cli.machine("auditor")
    r = auditor("ancestors", "--store", uri, v1)
    assert lines(r.out) == [v2]
    assert r.err == (f"snapdir: note: {v1} is its own ancestor (pushed again after a later "
                     "revision, e.g. a revert); the walk lists each id once\n")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "w.bin").write_bytes(b"weights")
    models = bucket.unique_uri("revert-models")
    model = s3_cli("push", "-q", "--store", models, "--parent", v2, "--parent", v1,
                   str(ckpt)).out.strip()
    r = auditor("ancestors", "--store", models, model)
    assert sorted(lines(r.out)) == sorted([v1, v2])
    assert "note" in r.err  # the walk reaches the revert's cycle through v1 and v2
    plain = bucket.unique_uri("diamond")
    d1 = s3_cli("push", "-q", "--store", plain, str(write_dataset(tmp_path / "dm", 2))
                ).out.strip()
    (tmp_path / "dm" / "VERSION").write_bytes(b"3\n")
    d2 = s3_cli("push", "-q", "--store", plain, str(tmp_path / "dm")).out.strip()
    (ckpt / "w.bin").write_bytes(b"other weights")
    models2 = bucket.unique_uri("diamond-models")
    model2 = s3_cli("push", "-q", "--store", models2, "--parent", d2, "--parent", d1,
                    str(ckpt)).out.strip()
    r = auditor("ancestors", "--store", models2, model2)
    assert lines(r.out) == [d2, d1] or lines(r.out) == [d1, d2]
    assert r.err == ""  # v1 reached twice, but no cycle


def test_ancestors_fails_when_it_cannot_look(world: World) -> None:
    """"No ancestors" (empty, exit 0) must mean it looked: an id the store does not hold,
    a store it cannot read, and wrong credentials are errors."""
    w = world
    auditor = w.auditor
    unknown = "b" * 64
    r = auditor("ancestors", "--store", w.datasets, unknown, check=False)
    assert r.rc != 0
    assert r.out == ""
    assert unknown in r.err
    assert "check the id and --store" in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
    # the dataset exists in its own store, not in the models store
    assert auditor("ancestors", "--store", w.models, w.v1, check=False).rc != 0
    wrong = auditor.machine("wrong-secret")
    wrong.env["AWS_SECRET_ACCESS_KEY"] = "not-the-secret"
    r = wrong("ancestors", "--store", w.models, w.model, check=False)
    assert r.rc != 0
    assert r.out == ""
    assert "not-the-secret" not in r.err
    assert "Traceback" not in r.err
    # a snapshot with no recorded parents is still an empty answer, exit 0
    assert lines(auditor("ancestors", "--store", w.datasets, w.v1).out) == []

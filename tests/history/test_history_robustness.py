"""Damaged history in a file store, odd names and a damaged local catalog: a warning or one
clear line, never an internal error (exit 70)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import Cli, make_tree

IDS = ".snapdir-history/v1/ids"


def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def two_revisions(cli: Cli, tmp: Path) -> tuple[str, str, str]:
    """v1 -> v2 of one dataset in a file store; (store, v1, v2)."""
    store = str(tmp / "store")
    src = make_tree(tmp / "ds", {"f": b"1\n"})
    v1 = cli("push", "-q", "--store", store, str(src)).out.strip()
    (src / "f").write_bytes(b"2\n")
    v2 = cli("push", "-q", "--store", store, str(src)).out.strip()
    return store, v1, v2


def rewrite_record(store: str, sid: str, change: str) -> None:
    (path,) = (Path(store) / IDS / sid).iterdir()
    obj = json.loads(path.read_text())
    exec(change, {"o": obj})  # noqa: S102 - the test's own literal edits
    path.write_text(json.dumps(obj))


@pytest.mark.parametrize("change", [
    'o["time"] = None', 'o["time"] = 1e300', 'o["time"] = float("nan")',
    'o["files"] = [1]', 'o["bytes"] = float("inf")', 'o["source"] = "x"',
    'o["id"] = "f" * 64',  # a record kept under another snapshot's id
])
def test_a_malformed_record_is_skipped_with_a_warning(cli: Cli, tmp_path: Path,
                                                      change: str) -> None:
    store, v1, v2 = two_revisions(cli, tmp_path)
    rewrite_record(store, v1, change)
    auditor = cli.machine("auditor")  # no catalog to fall back on
    for args in (("ancestors", "--store", store, v2),
                 ("ancestors", "--json", "--store", store, v2)):
        r = auditor(*args, check=False)
        assert r.rc == 0, r.err
        assert "internal error" not in r.err
        assert f"skipping history record {IDS}/{v1}/" in r.err
        assert [json.loads(ln)["id"] if "--json" in args else ln
                for ln in lines(r.out)] == [v1]


@pytest.mark.parametrize("bad_store", ["notascheme://x", "s3://"])
def test_a_parent_in_a_store_that_cannot_be_one_ends_that_branch(cli: Cli, tmp_path: Path,
                                                                 bad_store: str) -> None:
    store, v1, v2 = two_revisions(cli, tmp_path)
    rewrite_record(store, v1, f'o["parents"] = [{{"id": "a" * 64, "store": "{bad_store}"}}]')
    r = cli.machine("auditor")("ancestors", "--store", store, v2, check=False)
    assert r.rc == 0, r.err
    assert lines(r.out) == [v1, "a" * 64]
    assert f"cannot read history of {'a' * 64} in {bad_store}" in r.err


def test_a_store_given_as_a_relative_path_is_read_once(cli: Cli, tmp_path: Path) -> None:
    """The records name their store as file:///abs/...; --store st is the same store: a
    damaged record is warned about once, not once per spelling."""
    store, v1, v2 = two_revisions(cli, tmp_path)
    rewrite_record(store, v1, 'o["time"] = "x"')
    rel = os.path.relpath(store, Path.cwd())  # the CLI runs in the test's directory
    r = cli.machine("auditor")("ancestors", "--store", rel, v2)
    assert lines(r.out) == [v1]
    assert r.err.count("skipping history record") == 1, r.err


def test_names_that_are_not_utf8_are_refused_before_any_work(cli: Cli,
                                                             tmp_path: Path) -> None:
    store = tmp_path / "store"
    src = make_tree(tmp_path / os.fsdecode(b"bad\xffname"), {"f": b"x\n"})
    r = cli("push", "--store", str(store), str(src), check=False)
    assert r.rc == 2, r.err
    assert lines(r.err) == [lines(r.err)[0]]
    assert "not valid UTF-8: give --name" in r.err
    assert not store.exists()
    bad = os.fsdecode(b"n\xffm")
    r = cli("push", "--store", str(store), "--name", bad, str(src), check=False)
    assert (r.rc, len(lines(r.err))) == (2, 1), r.err
    r = cli("revisions", "--store", str(store), bad, check=False)
    assert (r.rc, len(lines(r.err))) == (2, 1), r.err


def test_paths_that_are_not_utf8_are_recorded_in_the_catalog(cli: Cli,
                                                             tmp_path: Path) -> None:
    """The transfer used to succeed and the catalog write after it to end in an internal
    error (SQLite text is UTF-8)."""
    store = str(tmp_path / "store")
    src = make_tree(tmp_path / os.fsdecode(b"src\xff"), {"f": b"x\n"})
    sid = cli("push", "-q", "--store", store, "--name", "ok", str(src)).out.strip()
    dest = tmp_path / os.fsdecode(b"dest\xfe")
    cli("pull", "-q", "--store", store, "--id", sid, str(dest))
    assert (dest / "f").read_bytes() == b"x\n"
    assert cli("stage", str(src)).out.strip() == sid
    got = {ln.split("\t")[1]: ln.split("\t")[0] for ln in lines(cli("locations", sid).out)}
    assert got == {"push": f"{tmp_path}/src\\xff", "pull": f"{tmp_path}/dest\\xfe",
                   "stage": f"{tmp_path}/src\\xff"}


def test_a_catalog_that_is_not_a_database_is_one_clear_line(cli: Cli,
                                                             tmp_path: Path) -> None:
    catalog = Path(cli.env["SNAPDIR_DATA_DIR"]) / "catalog.sqlite"
    catalog.parent.mkdir(parents=True)
    catalog.write_bytes(b"garbage " * 100)
    r = cli("locations", "a" * 64, check=False)
    assert r.rc == 1, r.err
    want = (f"snapdir: error: cannot read the local catalog {catalog} (file is not a "
            "database): move it aside (a new one is started on the next transfer)")
    assert lines(r.err) == [want]

"""Malformed command-line input: one line on stderr, a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from relutil import Cli, Run, make_tree

GOOD_ID = "0" * 64


def pushed_tree(cli: Cli, tmp_path: Path) -> tuple[Path, str, str]:
    """A two-file tree pushed to a file store: (tree, store path, snapshot id)."""
    src = make_tree(tmp_path / "src", {"a.txt": b"a", "d/b.txt": b"b"})
    store = str(tmp_path / "store")
    return src, store, cli("push", "-q", "--store", store, str(src)).out.strip()


def one_line_error(r: Run, *, code: int | None = None, needle: str = "") -> None:
    assert r.rc != 0, f"succeeded: {r.out!r}"
    if code is not None:
        assert r.rc == code, (r.rc, r.err)
    err = r.err.strip()
    assert err, "no message"
    assert "\n" not in err, f"not one stderr line: {r.err!r}"
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    assert needle.lower() in err.lower(), err


@pytest.mark.parametrize("args", [
    ["pull", "--id", "abc", "DEST"],
    ["pull", "--id", "g" * 64, "DEST"],
    ["pull", "--id", "", "DEST"],
    ["pull", "--id", "0" * 65, "DEST"],
    ["fetch", "--id", "not-an-id"],
    ["checkout", "--id", "12345", "DEST"],
    ["pull", "DEST"],  # no --id at all
    ["pull", "--id", GOOD_ID, "--bogus", "DEST"],
    ["frobnicate"],
], ids=lambda a: "-".join(x[:8] or "empty" for x in a))
def test_bad_ids_and_usage(cli: Cli, tmp_path: Path, args: list[str]) -> None:
    args = [str(tmp_path / "dest") if a == "DEST" else a for a in args]
    one_line_error(cli(*args, check=False), code=2)
    assert not (tmp_path / "dest").exists()


def test_snapdir_alone_shows_the_help_laid_out(cli: Cli) -> None:
    """``snapdir`` with no command: the help as ``--help`` lays it out, on stderr (stdout
    carries only ids) with exit 2; it was one "usage error" line with the whole help
    flattened into it."""
    r = cli(check=False)
    assert (r.rc, r.out) == (2, "")
    assert r.err == cli("--help").out
    assert r.err.startswith("Usage: snapdir [OPTIONS] COMMAND [ARGS]...\n")


@pytest.mark.parametrize(("args", "help_of"), [
    (["pull", "--id"], "snapdir pull --help"),  # an option without its value
    (["push", "--store"], "snapdir push --help"),
    (["frobnicate", "--id"], "snapdir --help"),
])
def test_usage_errors_point_to_the_commands_help(cli: Cli, args: list[str],
                                                 help_of: str) -> None:
    one_line_error(cli(*args, check=False), code=2, needle=f"(see '{help_of}')")


@pytest.mark.parametrize("args", [
    ["id", ""],
    ["id", "--no-follow", ""],
    ["manifest", ""],
    ["stage", ""],
    ["push", "--store", "STORE", ""],
    ["status", "--store", "STORE", "--id", "SID", ""],
    ["checkout", "--delete", "--id", "SID", ""],
    ["pull", "--delete", "--store", "STORE", "--id", "SID", ""],
    ["pull", "--delete", "--no-cache", "--store", "STORE", "--id", "SID", ""],
], ids=lambda a: "-".join(x.strip("-") for x in a if x and not x.isupper()))
def test_an_empty_directory_argument_is_refused(cli: Cli, tmp_path: Path, args: list[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``snapdir pull --delete ... "$DIR"`` with DIR unset: the empty string is not the
    current directory (which --delete would mirror, removing the user's files)."""
    _, store, sid = pushed_tree(cli, tmp_path)
    cli("fetch", "-q", "--store", store, "--id", sid)  # so checkout would have it to write
    work = make_tree(tmp_path / "work", {"mine.txt": b"the user's", "sub/more.txt": b"more"})
    monkeypatch.chdir(work)
    cache = sorted(p for p in (cli.home / "cache").rglob("*"))
    args = [{"STORE": store, "SID": sid}.get(a, a) for a in args]
    r = cli(*args, check=False)
    one_line_error(r, code=2, needle="DIRECTORY is empty")
    assert r.out == ""
    assert sorted(str(p.relative_to(work)) for p in work.rglob("*")) == [
        "mine.txt", "sub", "sub/more.txt"]
    assert (work / "mine.txt").read_bytes() == b"the user's"
    assert sorted(p for p in (cli.home / "cache").rglob("*")) == cache  # nothing staged


@pytest.mark.parametrize(("args", "named"), [
    (["push", "--store", "", "SRC"], "--store"),
    (["pull", "--store", "", "--id", "SID", "DEST"], "--store"),
    (["fetch", "--store", "", "--id", "SID"], "--store"),
    (["verify", "--store", "", "--id", "SID"], "--store"),
    (["revisions", "--store", "", "src"], "--store"),
    (["defaults", "--store", ""], "--store"),
    (["sync", "--id", "SID", "--from", "", "--to", "DEST"], "--from"),
    (["sync", "--id", "SID", "--from", "STORE", "--to", ""], "--to"),
    (["pull", "--store", "STORE", "--id", "", "DEST"], "--id"),
    (["status", "--store", "STORE", "--id", "", "SRC"], "--id"),
    (["push", "--store", "STORE", "--name", "", "SRC"], "--name"),
    (["push", "--store", "STORE", "--parent", "", "SRC"], "--parent"),
    (["push", "--store", "STORE", "--exclude", "", "SRC"], "--exclude"),
    (["pull", "--store", "STORE", "--id", "SID", "--include", "", "DEST"], "--include"),
    (["revisions", "--store", "STORE", ""], "NAME"),
    (["diff", "--store", "STORE", "SID", ""], "ID_B"),
    (["ancestors", "--store", "STORE", ""], "ID"),
], ids=lambda a: a.strip("-") if isinstance(a, str)
   else "-".join(x.strip("-") for x in a if x.strip("-").islower()))
def test_an_empty_option_value_is_refused_not_ignored(cli: Cli, tmp_path: Path,
                                                      args: list[str], named: str) -> None:
    """``--store "$STORE"`` with STORE unset is not "the default store" (nor
    $SNAPDIR_STORE), ``--name ""`` not the directory's name, ``--include ""`` not an
    empty selection: each is a usage error naming the option."""
    src, store, sid = pushed_tree(cli, tmp_path)
    cli.env["SNAPDIR_STORE"] = str(tmp_path / "env-store")
    before = sorted((tmp_path / "store").rglob("*"))
    dest = tmp_path / "dest"
    args = [{"SRC": str(src), "STORE": store, "SID": sid, "DEST": str(dest)}.get(a, a)
            for a in args]
    r = cli(*args, check=False)
    one_line_error(r, code=2, needle=f"{named} is empty")
    assert r.out == ""
    assert not dest.exists()
    assert not (tmp_path / "env-store").exists()
    assert not (cli.home / "data" / "store").exists()  # the default store
    assert sorted((tmp_path / "store").rglob("*")) == before


def test_an_empty_snapdir_store_variable_is_unset(cli: Cli, tmp_path: Path) -> None:
    """An empty environment variable is conventionally unset: the default store."""
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    cli.env["SNAPDIR_STORE"] = ""
    sid = cli("push", "-q", str(src)).out.strip()
    assert (cli.home / "data" / "store" / ".manifests" / sid[:3]).is_dir()
    assert json.loads(cli("defaults", "--json").out.splitlines()[0]) == {
        "name": "store", "value": str(cli.home / "data" / "store"), "source": "default"}


@pytest.mark.parametrize(("store", "needle"), [
    ("ftp://host/path", "unknown store scheme"),
    ("gs://bucket/prefix", "unknown store scheme"),
    ("s3:///prefix", "no bucket"),
    ("s3://", "no bucket"),
    ("file://remotehost/x", "host"),
    ("file://relative/x", "host"),
    ("s3:/bucket/prefix", "lacks '//'"),  # a typo must not become a local directory
    ("file:/tmp/x", "lacks '//'"),
    ("s3:", "lacks '//'"),
    ("s3://my bucket/x", "not a valid bucket name"),
    ("s3://host:9000/x", "not a valid bucket name"),
    ("s3://bucket/a//b", "segment"),
    ("s3://bucket//b", "segment"),
    ("s3://bucket/a/../b", "segment"),
    ("file:///tmp/st%00ore", "NUL byte"),  # was an internal error (ValueError) on push
])
def test_bad_store_uris(cli: Cli, tmp_path: Path, store: str, needle: str,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    one_line_error(cli("push", "--store", store, str(src), check=False), code=2, needle=needle)
    one_line_error(cli("pull", "--store", store, "--id", GOOD_ID, str(tmp_path / "d"),
                       check=False), code=2, needle=needle)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["src"]


@pytest.mark.parametrize("tail", ["h#x", "h?x", "h#x?y", "h?"])
def test_a_file_uri_with_a_query_or_fragment_is_refused(cli: Cli, tmp_path: Path,
                                                        tail: str) -> None:
    """``file:///dir/h#x`` used to push to ``/dir/h`` (urlsplit drops the fragment and the
    query), silently, while the reference 1.12 writes to ``/dir/h#x``: refused instead,
    naming the escapes; written escaped, it is the directory with those characters."""
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    top = tmp_path / "st"
    top.mkdir()
    for args in (["push", "--store", f"file://{top}/{tail}", str(src)],
                 ["pull", "--store", f"file://{top}/{tail}", "--id", GOOD_ID,
                  str(tmp_path / "d")]):
        one_line_error(cli(*args, check=False), code=2, needle="%23")
    assert list(top.iterdir()) == []
    assert not (tmp_path / "d").exists()
    escaped = tail.replace("?", "%3F").replace("#", "%23")
    cli("push", "-q", "--store", f"file://{top}/{escaped}", str(src))
    assert [p.name for p in top.iterdir()] == [tail]


@pytest.mark.parametrize("bucket", ["ab", "-abc", "abc.", "a" * 256, "my%bucket"])
def test_a_bad_bucket_name_message_says_what_is_accepted(cli: Cli, tmp_path: Path,
                                                         bucket: str) -> None:
    """The message states the rule the check applies (3-255 characters, either case,
    '_' too: S3's legacy names), not S3's current 3-63 lower-case one."""
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    r = cli("push", "--store", f"s3://{bucket}/p", str(src), check=False)
    one_line_error(r, code=2, needle="not a valid bucket name")
    assert "3-63" not in r.err
    assert "3-255" in r.err
    assert "'_'" in r.err
    for good in ("abc", "a" * 255, "My_Legacy.Bucket-1", "a" * 64):  # what it says it takes
        assert "problem" not in json.loads(
            cli("defaults", "--json", "--store", f"s3://{good}/p").out.splitlines()[0])


SECRET = "SuperSecret123"
KEY_ID = "AKIAQAQATEST"


@pytest.mark.parametrize(("store", "needle"), [
    (f"s3://{KEY_ID}:{SECRET}@bkt/pfx", "user name or password"),
    (f"s3://{KEY_ID}:{SECRET}/with/slashes@bkt/pfx", "user name or password"),
    (f"s3://{KEY_ID}:{SECRET}@bkt", "user name or password"),
    (f"S3://{KEY_ID}:{SECRET}@bkt/pfx", "user name or password"),
    (f"ftp://{KEY_ID}:{SECRET}@host/pfx", "user name or password"),
    (f"file://{KEY_ID}:{SECRET}@localhost/tmp/x", "user name or password"),
    (f"s3:/{KEY_ID}:{SECRET}@bkt/pfx", "lacks '//'"),
], ids=["s3", "s3-slash-in-secret", "s3-no-prefix", "S3-upper", "ftp", "file", "s3-one-slash"])
def test_a_store_uri_with_credentials_is_refused_without_echoing_them(
        cli: Cli, tmp_path: Path, store: str, needle: str) -> None:
    src, local, sid = pushed_tree(cli, tmp_path)
    for args in (["push", "--store", store, str(src)],
                 ["pull", "--store", store, "--id", sid, str(tmp_path / "d")],
                 ["fetch", "--store", store, "--id", sid],
                 ["verify", "--store", store, "--id", sid],
                 ["sync", "--id", sid, "--from", local, "--to", store],
                 ["sync", "--id", sid, "--from", store, "--to", local]):
        r = cli(*args, check=False)
        one_line_error(r, code=2, needle=needle)
        for secret in (SECRET, KEY_ID):
            assert secret not in r.out + r.err, args
    m = cli.machine("env")
    m.env["SNAPDIR_STORE"] = store
    r = m("push", str(src), check=False)
    one_line_error(r, code=2, needle=needle)
    for secret in (SECRET, KEY_ID):
        assert secret not in r.out + r.err
    for r in (cli("defaults", "--store", store, check=False), m("defaults", check=False),
              m("defaults", "--json", check=False)):
        if "://" in store:  # refused: marked INVALID, its error on stderr
            assert r.rc == 2, r.err
            assert needle in r.err
        assert "store" in r.out
        for secret in (SECRET, KEY_ID):
            assert secret not in r.out + r.err, r
    assert not (tmp_path / "d").exists()


def test_an_endpoint_password_is_never_shown(cli: Cli, tmp_path: Path) -> None:
    """``AWS_ENDPOINT_URL=http://user:password@host``: errors and ``defaults`` show the
    endpoint as ``http://***@host``."""
    import socket

    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        cli.env.pop(var, None)
    cli.env.update(AWS_ENDPOINT_URL=f"http://user:{SECRET}@127.0.0.1:{port}",
                   AWS_ACCESS_KEY_ID="snapdir-test-key", AWS_SECRET_ACCESS_KEY="not-used",
                   AWS_REGION="us-east-1")
    for args in (["push", "-q", "--store", "s3://bkt/pfx", str(src)],
                 ["pull", "-q", "--store", "s3://bkt/pfx", "--id", GOOD_ID,
                  str(tmp_path / "d")],
                 ["fetch", "-q", "--store", "s3://bkt/pfx", "--id", GOOD_ID],
                 ["verify", "-q", "--store", "s3://bkt/pfx", "--id", GOOD_ID]):
        r = cli(*args, check=False)
        one_line_error(r, code=1, needle=f"cannot reach http://***@127.0.0.1:{port}")
        assert SECRET not in r.out + r.err
    r = cli("defaults")
    assert f"http://***@127.0.0.1:{port}" in r.out
    r = cli("defaults", "--json")
    assert f"http://***@127.0.0.1:{port}" in r.out
    # without its scheme: refused, and the password hidden there too
    cli.env["AWS_ENDPOINT_URL"] = f"user:{SECRET}@127.0.0.1:{port}"
    for args in (["push", "-q", "--store", "s3://bkt/pfx", str(src)], ["defaults"]):
        r = cli(*args, check=False)
        assert r.rc == 2, r.err
        assert SECRET not in r.out + r.err
        assert f"***@127.0.0.1:{port}" in r.out + r.err
    assert SECRET not in r.out + r.err


@pytest.mark.s3
def test_missing_bucket(s3_env, cli: Cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    r = cli("push", "-q", "--store", "s3://no-such-bucket-snapdir/p", str(src), check=False)
    one_line_error(r, needle="no-such-bucket-snapdir")


@pytest.mark.s3
@pytest.mark.parametrize("which", ["secret", "key"])
def test_wrong_credentials_never_print_the_secret(s3_env, cli: Cli, tmp_path: Path,
                                                  which: str) -> None:
    wrong = "wr0ngSecretValue-do-not-print-42"
    if which == "secret":
        cli.env["AWS_SECRET_ACCESS_KEY"] = wrong
    else:
        cli.env["AWS_ACCESS_KEY_ID"] = "AKIAWRONGKEYID0000"
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    uri = s3_env.unique_uri("creds")
    for args in (["push", "-q", "--store", uri, str(src)],
                 ["pull", "-q", "--store", uri, "--id", GOOD_ID, str(tmp_path / "d")]):
        r = cli(*args, check=False)
        one_line_error(r, needle="denied")
        for secret in (wrong, s3_env.secret_key):
            assert secret not in r.out + r.err


@pytest.mark.parametrize("endpoint", ["127.0.0.1:9000", "localhost", "ftp://127.0.0.1:9000",
                                      "http://127.0.0.1:port"])
def test_an_endpoint_that_is_not_a_url(cli: Cli, tmp_path: Path, endpoint: str) -> None:
    """Without its scheme the S3 client panicked (a Rust backtrace on stderr), then the
    message blamed the network."""
    cli.env.update(AWS_ENDPOINT_URL=endpoint, RUST_BACKTRACE="1", AWS_ACCESS_KEY_ID="k",
                   AWS_SECRET_ACCESS_KEY="s")
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    for args in (["push", "-q", "--store", "s3://bkt/p", str(src)],
                 ["pull", "-q", "--store", "s3://bkt/p", "--id", GOOD_ID, str(tmp_path / "d")]):
        r = cli(*args, check=False)
        one_line_error(r, code=2, needle="AWS_ENDPOINT_URL")
        assert "http://" in r.err
        assert "panicked" not in r.err
    assert cli("defaults", check=False).rc == 2  # shown as INVALID there too


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:99999", "http://127.0.0.1:port"])
def test_an_endpoint_with_a_bad_port_says_so(cli: Cli, tmp_path: Path, endpoint: str) -> None:
    """``http://127.0.0.1:99999`` was called 'not an http:// or https:// URL', which it is."""
    cli.env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s")
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    r = cli("push", "-q", "--store", "s3://bkt/p", str(src), check=False)
    one_line_error(r, code=2, needle="port")
    assert "not an http://" not in r.err


@pytest.mark.s3
def test_an_upper_case_endpoint_scheme_works(s3_env, cli: Cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    cli.env["AWS_ENDPOINT_URL"] = "HTTP://" + s3_env.endpoint.removeprefix("http://")
    uri = s3_env.unique_uri("upper")
    sid = cli("push", "-q", "--store", uri, str(src)).out.strip()
    cli("pull", "-q", "--store", uri, "--id", sid, str(tmp_path / "d"))
    assert (tmp_path / "d" / "a.txt").read_bytes() == b"a"


def test_source_is_a_file_or_missing(cli: Cli, tmp_path: Path) -> None:
    f = tmp_path / "file.txt"
    f.write_bytes(b"x")
    store = str(tmp_path / "store")
    one_line_error(cli("push", "--store", store, str(f), check=False), needle="not a directory")
    one_line_error(cli("push", "--store", store, str(tmp_path / "nope"), check=False),
                   needle="no such directory")
    one_line_error(cli("id", str(f), check=False))


def test_store_path_is_a_file(cli: Cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    sid = cli("push", "--store", str(tmp_path / "good"), str(src)).out.strip()
    f = tmp_path / "file.txt"
    f.write_bytes(b"x")
    other = cli.machine("other")  # nothing cached: the pull must ask the store
    for store in (f, f / "below"):
        for args in (["push", str(src)], ["pull", "--id", sid, str(tmp_path / "d")],
                     ["verify", "--id", sid]):
            r = other(args[0], "--store", str(store), *args[1:], check=False)
            one_line_error(r, needle=f"{f} is a file")
    assert f.read_bytes() == b"x"


def test_destination_is_a_file(cli: Cli, tmp_path: Path) -> None:
    _, store, sid = pushed_tree(cli, tmp_path)
    dest = tmp_path / "dest.txt"
    dest.write_bytes(b"keep me")
    one_line_error(cli("pull", "-q", "--store", store, "--id", sid, str(dest), check=False),
                   needle="not a directory")
    one_line_error(cli("checkout", "--id", sid, str(dest), check=False),
                   needle="not a directory")
    one_line_error(cli("pull", "-q", "--no-cache", "--store", store, "--id", sid, str(dest),
                       check=False), needle="not a directory")
    assert dest.read_bytes() == b"keep me"
    # a file inside the destination where the snapshot has a directory
    dest2 = tmp_path / "dest2"
    dest2.mkdir()
    (dest2 / "d").write_bytes(b"in the way")
    one_line_error(cli("pull", "-q", "--store", store, "--id", sid, str(dest2), check=False),
                   needle="not a directory")
    assert (dest2 / "d").read_bytes() == b"in the way"


def test_directory_where_the_snapshot_has_a_file(cli: Cli, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"d/f": b"file", "g": b"other"})
    store = str(tmp_path / "store")
    sid = cli("push", "-q", "--store", store, str(src)).out.strip()
    dest = tmp_path / "dest"
    (dest / "d" / "f" / "keep").mkdir(parents=True)
    for extra in ([], ["--no-cache"]):
        one_line_error(cli("pull", "-q", *extra, "--store", store, "--id", sid, str(dest),
                           check=False), needle="is a directory where the snapshot has a file")
        assert (dest / "d" / "f" / "keep").is_dir()  # nothing of the user's was removed
    cli("pull", "-q", "--delete", "--store", store, "--id", sid, str(dest))
    assert (dest / "d" / "f").read_bytes() == b"file"
    assert cli("id", str(dest)).out.strip() == sid


def test_snapshot_not_in_store(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    one_line_error(cli("pull", "-q", "--store", str(tmp_path / "store"), "--id", GOOD_ID,
                       str(tmp_path / "d"), check=False), needle="not in")
    one_line_error(cli("checkout", "--id", GOOD_ID, str(tmp_path / "d"), check=False),
                   needle="not in the local cache")


def test_checkout_of_objects_not_in_the_cache_names_the_store_to_fetch_from(
        cli: Cli, tmp_path: Path) -> None:
    """The advice to fetch first gives the store: the one this machine pushed the snapshot
    to (its catalog), else a placeholder; `snapdir fetch --id ID` alone would go to the
    default store, which is not where the snapshot is."""
    _, store, sid = pushed_tree(cli, tmp_path)  # a push leaves the manifest in the cache
    uri = Path(store).as_uri()
    r = cli("checkout", "--id", sid, str(tmp_path / "d"), check=False)
    one_line_error(r, needle=f"run `snapdir fetch --store {uri} --id {sid}` first, or "
                   f"`snapdir pull --store {uri} --id {sid} DIR`")
    (cli.home / "data" / "catalog.sqlite").unlink()  # nothing known of where it came from
    r = cli("checkout", "--id", sid, str(tmp_path / "d"), check=False)
    one_line_error(r, needle=f"run `snapdir fetch --store STORE --id {sid}` first")
    cli("fetch", "-q", "--store", uri, "--id", sid)
    cli("checkout", "--id", sid, str(tmp_path / "d"))
    other = cli.machine("other")  # nothing in its cache either
    one_line_error(other("checkout", "--id", sid, str(tmp_path / "o"), check=False),
                   needle=f"not in the local cache; run `snapdir fetch --store STORE --id {sid}`")


def test_a_store_path_that_does_not_exist(cli: Cli, tmp_path: Path) -> None:
    """A mistyped --store names the missing store, not a missing snapshot or object."""
    _src, store, sid = pushed_tree(cli, tmp_path)
    typo = str(tmp_path / "stroe")
    for args in (["pull", "-q", "--store", typo, "--id", sid, str(tmp_path / "d")],
                 ["verify", "-q", "--store", typo, "--id", sid],
                 ["revisions", "--store", typo, "src"],  # not an empty answer, exit 0
                 ["ancestors", "--store", typo, sid]):
        one_line_error(cli(*args, check=False), needle=f"there is no store at {typo}")
    one_line_error(cli("push", "--store", "  ", str(_src), check=False), code=2,
                   needle="empty store URI")  # blanks are not a directory name to make
    assert not (Path.cwd() / "  ").exists()
    cli.env["SNAPDIR_STORE"] = typo  # the manifest already in the cache: the objects fail
    cli("fetch", "--store", store, "--id", sid)  # fills the cache's manifest ...
    for p in (cli.home / "cache" / "store" / ".objects").rglob("*"):
        if p.is_file():
            p.unlink()  # ... but not its objects
    one_line_error(cli("fetch", "-q", "--id", sid, check=False),
                   needle=f"there is no store at {typo}")


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv to drop root")
def test_unreadable_source_file(cli: Cli) -> None:
    """Root ignores file modes, so the push runs as ``nobody`` (setpriv) on a tree in a
    world-writable scratch dir, with one file chmod 000."""
    base = Path(tempfile.mkdtemp(prefix="snapdir-unreadable-", dir="/tmp"))
    try:
        os.chmod(base, 0o777)
        src = make_tree(base / "src", {"ok.txt": b"ok", "secret.txt": b"nope"})
        os.chmod(src / "secret.txt", 0o000)
        for p in (base / "src",):
            os.chmod(p, 0o755)
        home = base / "home"
        home.mkdir(mode=0o777)
        os.chmod(home, 0o777)
        env = dict(cli.env, HOME=str(home), SNAPDIR_CACHE_DIR=str(home / "c"),
                   SNAPDIR_DATA_DIR=str(home / "d"), XDG_CACHE_HOME=str(home / "xc"),
                   XDG_DATA_HOME=str(home / "xd"))
        drop = [] if os.geteuid() != 0 else ["setpriv", "--reuid=65534", "--regid=65534",
                                              "--clear-groups"]
        for args in (["push", "-q", "--store", str(home / "store"), str(src)],
                     ["id", str(src)]):
            p = subprocess.run([*drop, sys.executable, "-m", "snapdir", *args], env=env,
                               capture_output=True, text=True, timeout=60, cwd=home,
                               check=False)
            one_line_error(Run(p.returncode, p.stdout, p.stderr), needle="secret.txt")
            assert "permission denied" in p.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_bad_direct_io_setting(cli: Cli, tmp_path: Path) -> None:
    env = dict(cli.env, SNAPDIR_DIRECT_IO="sometimes")
    bad = Cli(env, cli.home)
    one_line_error(bad("pull", "--id", GOOD_ID, str(tmp_path / "d"), check=False), code=2,
                   needle="SNAPDIR_DIRECT_IO")
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan", "inf", "-inf", "1e400"])
def test_bad_progress_interval_setting(cli: Cli, tmp_path: Path, value: str) -> None:
    """A progress interval that is not a number of seconds above 0 is refused, like the
    other numeric settings, not silently replaced by the default (or taken: inf)."""
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    store = tmp_path / "store"
    bad = Cli(dict(cli.env, SNAPDIR_PROGRESS_INTERVAL=value), cli.home)
    for flags in (["--progress"], []):  # on a terminal or not: the same answer
        r = bad("push", *flags, "--store", str(store), str(src), check=False)
        one_line_error(r, code=2, needle="SNAPDIR_PROGRESS_INTERVAL")
        assert "seconds" in r.err
    assert not store.exists()
    one_line_error(bad("pull", "--progress", "--id", GOOD_ID, str(tmp_path / "d"),
                       check=False), code=2, needle="SNAPDIR_PROGRESS_INTERVAL")
    assert not (tmp_path / "d").exists()
    # -q shows no progress: the interval is not read
    assert bad("push", "-q", "--store", str(store), str(src)).rc == 0
    d = {s["name"]: s for s in map(json.loads, bad("defaults", "--json",
                                                   check=False).out.splitlines())}
    assert "SNAPDIR_PROGRESS_INTERVAL" in d["progress interval"]["problem"]
    for good in ("0.5", "3", " 2 "):
        ok = Cli(dict(cli.env, SNAPDIR_PROGRESS_INTERVAL=good), cli.home)
        assert ok("push", "--progress", "--store", str(store), str(src)).rc == 0


@pytest.mark.parametrize("value", ["maybe", "2", "-1", "disabled"])
def test_bad_no_stat_cache_setting(cli: Cli, tmp_path: Path, value: str) -> None:
    """SNAPDIR_NO_STAT_CACHE takes the values SNAPDIR_DIRECT_IO takes; anything else is
    refused instead of meaning "off"."""
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    store = tmp_path / "store"
    bad = Cli(dict(cli.env, SNAPDIR_NO_STAT_CACHE=value), cli.home)
    for args in (["push", "--store", str(store)], ["id"], ["manifest"], ["stage"]):
        one_line_error(bad(*args, str(src), check=False), code=2,
                       needle="SNAPDIR_NO_STAT_CACHE")
    assert not store.exists()
    # --no-stat-cache decides without the variable
    assert bad("push", "-q", "--no-stat-cache", "--store", str(store), str(src)).rc == 0
    r = bad("defaults", check=False)
    assert r.rc == 2
    assert [ln for ln in r.out.splitlines() if "INVALID" in ln] == [
        f"stat cache off     {value}  [environment: SNAPDIR_NO_STAT_CACHE]  INVALID"]
    for good in ("1", "0", "true", "off", "YES", ""):
        ok = Cli(dict(cli.env, SNAPDIR_NO_STAT_CACHE=good), cli.home)
        assert ok("id", str(src)).rc == 0
        assert "INVALID" not in ok("defaults").out


@pytest.mark.parametrize("direct", ["1", "0"])
def test_a_write_failing_mid_download_is_one_line_naming_the_file(
        cli: Cli, tmp_path: Path, direct: str) -> None:
    """The disk fills up (here: the file size limit, EFBIG; a full disk is ENOSPC, the same
    path) while a large object arrives in ranges: one line naming the file, no temp file
    left behind, nothing under the real name."""
    import resource

    big = os.urandom(70 * 1024 * 1024)  # above the multipart/ranged threshold
    src = make_tree(tmp_path / "src", {"big.bin": big, "small.txt": b"small"})
    store = str(tmp_path / "store")
    sid = cli("push", "-q", "--store", store, str(src)).out.strip()
    dest = tmp_path / "dest"
    limit = 16 * 1024 * 1024

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    p = subprocess.run([sys.executable, "-m", "snapdir", "pull", "-q", "--store", store,
                        "--id", sid, str(dest)], env=dict(cli.env, SNAPDIR_DIRECT_IO=direct),
                       capture_output=True, text=True, timeout=300, preexec_fn=small_files,
                       check=False)
    r = Run(p.returncode, p.stdout, p.stderr)
    one_line_error(r, needle="big.bin")
    assert "destination error" in r.err
    assert not (dest / "big.bin").exists()
    assert [n for n in os.listdir(dest) if n != "small.txt"] == []  # no temp file


def test_cache_directory_that_is_a_file(cli: Cli, tmp_path: Path) -> None:
    src, store, sid = pushed_tree(cli, tmp_path)
    blocker = tmp_path / "cache-file"
    blocker.write_bytes(b"not a directory")
    m = cli.machine("m")
    m.env["SNAPDIR_CACHE_DIR"] = str(blocker)
    # hashing and pushing only use the cache to go faster: they work, with a warning at most
    assert m("id", str(src)).out.strip() == sid
    assert m("push", "-q", "--store", store, str(src)).out.strip() == sid
    m("pull", "-q", "--no-cache", "--store", store, "--id", sid, str(tmp_path / "nc"))
    assert m("id", str(tmp_path / "nc")).out.strip() == sid
    # the verbs that need the cache say which setting to fix
    for args in (["pull", "--store", store, "--id", sid, str(tmp_path / "d")],
                 ["fetch", "--store", store, "--id", sid],
                 ["checkout", "--id", sid, str(tmp_path / "d")],
                 ["stage", str(src)]):
        one_line_error(m(*args, check=False), needle="SNAPDIR_CACHE_DIR")
    # diff reads manifests only: it works without a cache
    assert m("diff", "--store", store, sid, sid).rc == 0
    assert blocker.read_bytes() == b"not a directory"


@pytest.mark.parametrize("under", [False, True], ids=["is-a-file", "under-a-file"])
def test_data_directory_that_is_a_file(cli: Cli, tmp_path: Path, under: bool) -> None:
    """SNAPDIR_DATA_DIR naming a regular file: the commands that need the data directory
    (the default store, the catalog) say which setting to fix, on one line."""
    src, store, sid = pushed_tree(cli, tmp_path)
    blocker = tmp_path / "data-file"
    blocker.write_bytes(b"not a directory")
    m = cli.machine("m")
    m.env["SNAPDIR_DATA_DIR"] = str(blocker / "sub" if under else blocker)
    for args in (["push", str(src)], ["locations", sid], ["revisions", "src"],
                 ["ancestors", sid], ["pull", "--id", sid, str(tmp_path / "d")],
                 ["fetch", "--id", sid], ["verify", "--id", sid]):
        r = m(*args, check=False)
        one_line_error(r, code=2, needle="SNAPDIR_DATA_DIR")
        assert f"{blocker} is a file, not a directory" in r.err, r.err
        assert "--store" not in r.err  # not the store's message: no --store was given
    assert not (tmp_path / "d").exists()
    # a store of its own works: only the local catalog is not updated, and it says why
    r = m("push", "--store", store, str(src))
    assert r.out.strip() == sid
    assert "SNAPDIR_DATA_DIR" in r.err
    assert r.err.count("\n") == 1
    other = make_tree(tmp_path / "other", {"c.txt": b"c"})
    r = m("push", "--store", store, "--parent", sid, str(other))  # parents: no catalog
    assert r.err.count("\n") == 1
    assert m("ancestors", "--store", store, r.out.strip()).out.split() == [sid]
    d = m("defaults", check=False)
    assert d.rc == 2
    assert [ln.split("  ")[0] for ln in d.out.splitlines() if ln.endswith("INVALID")] == [
        "store", "data directory"], d.out
    assert d.err.count("\n") == 1, d.err  # the same problem is said once
    assert "SNAPDIR_DATA_DIR" in d.err
    assert blocker.read_bytes() == b"not a directory"
    # from XDG_DATA_HOME: both variables are named
    del m.env["SNAPDIR_DATA_DIR"]
    m.env["XDG_DATA_HOME"] = str(blocker)
    r = m("locations", sid, check=False)
    one_line_error(r, code=2, needle="XDG_DATA_HOME")
    assert "SNAPDIR_DATA_DIR" in r.err


def test_corrupt_manifest_in_the_cache(cli: Cli, tmp_path: Path) -> None:
    _, store, sid = pushed_tree(cli, tmp_path)
    m = cli.machine("m")
    m("fetch", "--store", store, "--id", sid)
    cached = m.home / "cache" / "store" / ".manifests" / sid[:3] / sid[3:6] / sid[6:9] / sid[9:]
    cached.write_bytes(b"damaged")
    # offline, nothing to fall back on: a clear error naming the file
    one_line_error(m("checkout", "--id", sid, str(tmp_path / "co"), check=False),
                   needle=str(cached))
    # with the store at hand: --no-cache never reads it, and pull replaces it
    m("pull", "-q", "--no-cache", "--store", store, "--id", sid, str(tmp_path / "nc"))
    r = m("pull", "-q", "--store", store, "--id", sid, str(tmp_path / "p"))
    assert "corrupt manifest" in r.err
    for d in ("nc", "p"):
        assert m("id", str(tmp_path / d)).out.strip() == sid
    m("checkout", "--id", sid, str(tmp_path / "co"))


@pytest.mark.parametrize("value", ["0", "1025", "100000", "many"])
def test_jobs_out_of_range_in_flag_and_environment_alike(cli: Cli, tmp_path: Path,
                                                         value: str) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    store = str(tmp_path / "store")
    one_line_error(cli("push", "-j", value, "--store", store, str(src), check=False), code=2)
    cli.env["SNAPDIR_JOBS"] = value
    one_line_error(cli("push", "--store", store, str(src), check=False), code=2,
                   needle="SNAPDIR_JOBS")
    assert not (tmp_path / "store").exists()


def test_a_local_error_naming_a_file_with_a_newline_is_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    """A file operation's error names the file; a newline (or another control character)
    in its name is shown escaped, so the error stays one line."""
    from snapdir.cli.main import fail

    with pytest.raises(SystemExit) as exited:
        fail(PermissionError(13, "Permission denied", "/data/bad\nname\x1b[2J.bin"))
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("snapdir: error: /data/bad\\nname\\x1b[2J.bin: Permission denied")
    assert err.count("\n") == 1

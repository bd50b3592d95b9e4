"""``snapdir defaults``, shell completion, and progress on stderr."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from featkit import Cli, json_lines, make_tree

if TYPE_CHECKING:
    from conftest import SeaweedFS

#: README's settings table, each with a value to set it to
ENV_SETTINGS = {"SNAPDIR_STORE": "/srv/store", "SNAPDIR_CACHE_DIR": "/srv/cache",
                "SNAPDIR_DATA_DIR": "/srv/data", "SNAPDIR_JOBS": "7", "SNAPDIR_RETRIES": "3",
                "SNAPDIR_HASH_THREADS": "2", "SNAPDIR_NO_STAT_CACHE": "1",
                "SNAPDIR_MANIFEST_CONTEXT": "my-team v1"}


def settings(cli: Cli, *args: str) -> dict[str, dict[str, str]]:
    return {s["name"]: s for s in json_lines(cli("defaults", "--json", *args).out)}


def test_defaults_names_every_setting_and_its_source(cli: Cli) -> None:
    before = settings(cli)
    assert before["network jobs"] == {"name": "network jobs", "value": "32",
                                      "source": "default"}
    assert before["store"]["source"] == "default"
    plain = cli("defaults").out
    assert "network jobs" in plain
    assert "[default]" in plain

    cli.env.update(ENV_SETTINGS)
    after = settings(cli)
    by_source = {s["source"]: s["value"] for s in after.values()}
    for var, value in ENV_SETTINGS.items():
        assert by_source.get(f"environment: {var}") == value, (var, after)
    assert after["network jobs"]["value"] == "7"

    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):  # the first of these wins
        cli.env[var] = f"http://{var.lower()}:9000"
        assert settings(cli)["s3 endpoint"]["source"] == f"environment: {var}"

    # with no region set: on AWS a bucket's own region is found; a custom endpoint is
    # asked in us-east-1, and the line says so
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        cli.env.pop(var, None)
    assert settings(cli)["s3 region"] == {"name": "s3 region", "value": "us-east-1",
                                         "source": "default"}
    for var in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        cli.env.pop(var)
    assert "bucket's own" in settings(cli)["s3 region"]["value"]

    flags = settings(cli, "--jobs", "3", "--store", "s3://bkt/p")
    assert (flags["network jobs"]["value"], flags["network jobs"]["source"]) == (
        "3", "flag: --jobs")
    assert (flags["store"]["value"], flags["store"]["source"]) == ("s3://bkt/p", "flag: --store")


def test_stage_progress_says_stage(cli: Cli, tmp_path: Path) -> None:
    make_tree(tmp_path / "ds", {f"f{i}.bin": os.urandom(1000) for i in range(50)})
    cli.env["SNAPDIR_PROGRESS_INTERVAL"] = "0.01"
    r = cli("stage", "--progress", str(tmp_path / "ds"))
    last = r.err.strip().splitlines()[-1]
    assert last.startswith("stage: 50/50 files"), r.err
    assert "push" not in r.err
    assert re.fullmatch(r"[0-9a-f]{64}\n", r.out)


def test_relative_xdg_dirs_are_ignored(cli: Cli, tmp_path: Path) -> None:
    """The XDG spec: a relative XDG_DATA_HOME / XDG_CACHE_HOME is invalid, so the default
    store and cache stay under $HOME instead of following the working directory."""
    for var in ("SNAPDIR_CACHE_DIR", "SNAPDIR_DATA_DIR"):
        cli.env.pop(var, None)
    cli.env.update(XDG_DATA_HOME="rel-data", XDG_CACHE_HOME="rel-cache")
    home = Path(cli.env["HOME"])
    got = settings(cli)
    assert got["store"]["value"] == str(home / ".local/share/snapdir/store")
    assert got["cache directory"]["value"] == str(home / ".cache/snapdir")
    cli.env.update(XDG_DATA_HOME=str(tmp_path / "abs-data"))  # an absolute one is used
    assert settings(cli)["store"]["value"] == str(tmp_path / "abs-data/snapdir/store")


def test_defaults_flags_a_value_commands_would_refuse(cli: Cli, tmp_path: Path) -> None:
    cli.env.update(SNAPDIR_JOBS="5000", SNAPDIR_DIRECT_IO="sometimes", SNAPDIR_RETRIES="3")
    r = cli("defaults", check=False)
    assert r.rc == 2
    lines = {ln.split("  ")[0]: ln for ln in r.out.splitlines()}
    assert lines["network jobs"].endswith("INVALID"), r.out
    assert lines["direct I/O"].endswith("INVALID"), r.out
    assert "INVALID" not in lines["retry attempts"]  # a good value is not flagged
    errors = r.err.strip().splitlines()
    assert len(errors) == 2, r.err
    assert "SNAPDIR_JOBS" in errors[0]
    assert "1 to 1024" in errors[0]
    assert "SNAPDIR_DIRECT_IO" in errors[1]
    assert "Traceback" not in r.err
    # the same words a command stops with
    pulled = cli("pull", "--id", "0" * 64, str(tmp_path / "d"), check=False)
    assert pulled.rc == 2
    assert errors[0] in pulled.err.strip()
    by_name = {s["name"]: s for s in json_lines(cli("defaults", "--json", check=False).out)}
    assert "1 to 1024" in by_name["network jobs"]["problem"]
    assert "problem" not in by_name["retry attempts"]


def test_jobs_flag_wins_over_a_bad_snapdir_jobs(cli: Cli, tmp_path: Path) -> None:
    """With ``-j``, ``SNAPDIR_JOBS`` is not read (``defaults -j 4`` shows no problem, and
    push agrees; it was refused by the revision-record requests' own settings)."""
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    cli.env["SNAPDIR_JOBS"] = "bad"
    assert "problem" not in settings(cli, "-j", "4")["network jobs"]
    pushed = cli("push", "-j", "4", "--store", str(tmp_path / "store"), str(src))
    assert re.fullmatch(r"[0-9a-f]{64}\n", pushed.out)
    assert cli("push", "--store", str(tmp_path / "store"), str(src), check=False).rc == 2


def _store_cases(tmp_path: Path) -> list[str]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a store\n")
    return ["foo://x", "s3:/x", "s3://ab", str(a_file), str(a_file / "under")]


def test_defaults_flags_a_store_commands_would_refuse(cli: Cli, tmp_path: Path) -> None:
    """The store ``push`` stops at, from the environment or ``--store``, is INVALID in
    ``defaults``, with the words ``push`` stops with."""
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    for store in _store_cases(tmp_path):
        pushed = cli("push", "--store", store, str(src), check=False)
        assert pushed.rc != 0, store
        want = pushed.err.strip().splitlines()[-1]
        for how in ("env", "flag"):
            env = dict(cli.env, SNAPDIR_STORE=store) if how == "env" else cli.env
            args = () if how == "env" else ("--store", store)
            r = Cli(env, cli.home)("defaults", *args, check=False)
            assert r.rc == 2, (store, how, r.out)
            lines = {ln.split("  ")[0]: ln for ln in r.out.splitlines()}
            assert lines["store"].endswith("INVALID"), (store, how, r.out)
            err = r.err.strip()
            assert "\n" not in err, r.err
            # the same message (the store error's kind aside: defaults says usage error)
            assert err.split(": ", 2)[2] == want.split(": ", 2)[2], (store, how, r.err)
            by_name = {s["name"]: s for s in json_lines(
                Cli(env, cli.home)("defaults", "--json", *args, check=False).out)}
            assert by_name["store"]["problem"] == err.split(": ", 2)[2]
    # a good one is not flagged
    for store in ("s3://a-good-bucket/p", str(tmp_path / "new-store")):
        assert "problem" not in settings(cli, "--store", store)["store"]


@pytest.mark.parametrize("jobs", ["0", "5000", "-3"])
def test_defaults_jobs_flag_is_checked_as_push_checks_it(cli: Cli, tmp_path: Path,
                                                         jobs: str) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": b"a"})
    pushed = cli("push", "-j", jobs, "--store", str(tmp_path / "st"), str(src), check=False)
    assert pushed.rc == 2
    r = cli("defaults", "-j", jobs, check=False)
    assert r.rc == 2, r.out
    lines = {ln.split("  ")[0]: ln for ln in r.out.splitlines()}
    assert lines["network jobs"].endswith("[flag: --jobs]  INVALID"), r.out
    err = r.err.strip()
    assert "\n" not in err, r.err
    assert err in pushed.err, (err, pushed.err)  # push's words (plus its --help hint)
    for good in ("1", "1024"):
        assert "problem" not in settings(cli, "-j", good)["network jobs"]


@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o nosort -F"),
                                               ("zsh", "compdef"),
                                               ("fish", "complete --no-files --command")])
def test_completion_scripts(cli: Cli, shell: str, marker: str) -> None:
    exe = Path(sys.executable).parent / "snapdir"
    for argv in ([str(exe)], [sys.executable, "-m", "snapdir"]):
        env = dict(cli.env, _SNAPDIR_COMPLETE=f"{shell}_source")
        p = subprocess.run(argv, env=env, check=False, capture_output=True, text=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr
        assert marker in p.stdout, p.stdout[:300]
        assert "_SNAPDIR_COMPLETE" in p.stdout


def test_completion_answers(cli: Cli) -> None:
    def complete(words: str) -> list[str]:
        env = dict(cli.env, _SNAPDIR_COMPLETE="bash_complete", COMP_WORDS=words,
                   COMP_CWORD=str(len(words.split()) - 1))
        p = subprocess.run([sys.executable, "-m", "snapdir"], env=env, check=False, capture_output=True,
                           text=True, timeout=60)
        return [ln.split(",", 1)[1] for ln in p.stdout.splitlines()]

    assert complete("snapdir pu") == ["pull", "push"]
    assert "--include" in complete("snapdir pull --inc")
    assert "--exit-code" in complete("snapdir diff --ex")


@pytest.mark.s3
def test_progress_lines_quiet_and_clean_stdout(s3_env: SeaweedFS, cli: Cli,
                                               tmp_path: Path) -> None:
    make_tree(tmp_path / "ds", {f"f/{i:04d}.bin": os.urandom(512) for i in range(300)})
    uri = s3_env.unique_uri("progress")
    cli.env["SNAPDIR_PROGRESS_INTERVAL"] = "0.02"

    r = cli("push", "--progress", "-j", "1", "--store", uri, str(tmp_path / "ds"))
    assert re.fullmatch(r"[0-9a-f]{64}\n", r.out)  # stdout: the id only
    sid = r.out.strip()
    lines = r.err.splitlines()
    hashing = [ln for ln in lines if re.match(r"hash: \d+/\d+ files, ", ln)]
    progress = [ln for ln in lines if re.match(r"push: \d+/300 files, ", ln)]
    assert len(progress) >= 2, r.err  # periodic
    assert hashing + progress == lines  # hashing first, and nothing else
    assert hashing[-1].startswith("hash: 300/300 files")
    assert "\r" not in r.err
    assert "\x1b" not in r.err
    assert progress[-1].startswith("push: 300/300 files")

    b = cli.machine("b")
    b.env["SNAPDIR_PROGRESS_INTERVAL"] = "0.02"
    r = b("pull", "--progress", "--json", "-j", "1", "--store", uri, "--id", sid,
          str(tmp_path / "out"))
    assert json.loads(r.out)["files"] == 300
    assert len(r.out.splitlines()) == 1
    assert re.search(r"^pull: 300/300 files", r.err, re.MULTILINE), r.err

    # -q wins over --progress; without --progress a non-terminal stderr stays silent
    for flags in (["-q", "--progress"], []):
        r = b("fetch", *flags, "--store", uri, "--id", sid)
        assert (r.out, r.err) == ("", "")
        r = cli("push", *flags, "--store", uri, str(tmp_path / "ds"))
        assert (r.out, r.err) == (sid + "\n", "")


@pytest.mark.parametrize("command", ["push", "stage"])
def test_a_closed_stderr_stops_progress_not_the_command(cli: Cli, tmp_path: Path,
                                                        command: str) -> None:
    """``snapdir push --progress DIR 2>&1 >/dev/null | head -1``: once the reader of
    stderr has gone, a progress line cannot be written (EPIPE). Progress is best effort:
    it stops, and the push goes on to its end (exit 0, the manifest in the store)."""
    src = make_tree(tmp_path / "ds", {f"d{i % 10}/f{i}.bin": os.urandom(4000)
                                      for i in range(1500)})
    store = tmp_path / "store"
    env = dict(cli.env, SNAPDIR_PROGRESS_INTERVAL="0.001")
    args = [command, "--progress", "--no-stat-cache"]
    if command == "push":
        args += ["--store", str(store)]
    with subprocess.Popen([sys.executable, "-m", "snapdir", *args, str(src)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
        assert p.stderr is not None
        assert p.stdout is not None
        first = p.stderr.readline()  # like `head -1`: one line, then the reader is gone
        p.stderr.close()
        out = p.stdout.read()
        rc = p.wait(timeout=300)
    assert rc == 0, first
    assert first.startswith(b"hash: "), first
    sid = out.decode().strip()
    assert cli("id", str(src)).out.strip() == sid
    where = store if command == "push" else cli.home / "cache" / "store"
    assert (where / ".manifests" / sid[:3] / sid[3:6] / sid[6:9] / sid[9:]).is_file()


def test_output_to_a_file_is_complete_when_the_process_ends(cli: Cli, tmp_path: Path) -> None:
    """The CLI leaves with os._exit (no interpreter teardown): what it printed must still
    be flushed, to a file (block-buffered) as to a pipe, and its exit code kept."""
    tree = tmp_path / "tree"
    make_tree(tree, {"a.txt": b"alpha\n", "d/b.bin": os.urandom(4096)})
    want = cli("id", str(tree)).out.strip()
    out = tmp_path / "out.txt"
    for args in (["push", str(tree)], ["id", str(tree)], ["id", "--", str(tree)]):
        with out.open("w") as fh:
            p = subprocess.run([sys.executable, "-m", "snapdir", *args], stdout=fh,
                               stderr=subprocess.PIPE, env=cli.env, timeout=120, check=False)
        assert p.returncode == 0, p.stderr
        assert out.read_text() == want + "\n", args
    manifest = cli("manifest", str(tree)).out
    assert "a.txt" in manifest
    assert "d/b.bin" in manifest
    with out.open("w") as fh:
        p = subprocess.run([sys.executable, "-m", "snapdir", "manifest", str(tree)],
                           stdout=fh, env=cli.env, timeout=120, check=False)
    assert p.returncode == 0
    assert out.read_text() == manifest
    with out.open("w") as fh:
        p = subprocess.run([sys.executable, "-m", "snapdir", "id", str(tmp_path / "none")],
                           stdout=fh, stderr=subprocess.PIPE, env=cli.env, timeout=120,
                           check=False, text=True)
    assert p.returncode == 1
    assert p.stderr.count("\n") == 1
    assert "none" in p.stderr
    assert out.read_text() == ""


def test_defaults_flags_aws_settings_s3_commands_would_refuse(cli: Cli, tmp_path: Path
                                                              ) -> None:
    """The S3 settings a push would stop at are INVALID in ``defaults`` too, each shown on
    one line."""
    cut = tmp_path / "cut.pem"
    cut.write_text("-----BEGIN CERTIFICATE-----\nMIIBxjCCAW2gAwIBAgIU\n")  # no end line
    cli.env.update(AWS_REGION="us-east\n-1", AWS_DEFAULT_PROFILE="nosuch",
                   AWS_UNSIGNED_PAYLOAD="maybe", AWS_CA_BUNDLE=str(cut),
                   AWS_CONFIG_FILE=str(tmp_path / "none"))
    cli.env.pop("AWS_ENDPOINT_URL", None)
    r = cli("defaults", check=False)
    assert r.rc == 2
    lines = {ln.split("  ")[0]: ln for ln in r.out.splitlines()}
    assert lines["s3 region"] == ("s3 region          'us-east\\n-1'  [environment: AWS_REGION]"
                                  "  INVALID"), r.out
    assert lines["aws profile"].endswith("[environment: AWS_DEFAULT_PROFILE]  INVALID")
    assert lines["unsigned payload"].endswith("INVALID")
    assert lines["s3 CA bundle"].endswith("INVALID")
    assert "certificate #1 is not valid PEM" in r.err
    assert "fix or unset AWS_DEFAULT_PROFILE" in r.err


def test_closed_standard_streams(cli: Cli, tmp_path: Path) -> None:
    """Run with stdin or stdout closed (``<&-``, ``>&-``, a daemon's spawn): the first
    descriptor the command opened took that number, and uvloop aborted closing it (C
    assertion, exit 134); ``snapdir id DIR >&-`` was an internal error. A closed stdout
    discards the id."""
    src = make_tree(tmp_path / "ds", {"a.txt": b"a", "d/b.txt": b"b"})
    store = tmp_path / "store"

    def closed(redirects: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", f'exec "$@" {redirects}', "sh", sys.executable,
                               "-m", "snapdir", *args], env=cli.env, capture_output=True,
                              text=True, timeout=60, check=False)

    r = closed("<&- >&-", "push", "--store", str(store), str(src))
    assert (r.returncode, r.stderr) == (0, "")
    assert list(store.glob(".manifests/*/*/*/*"))
    r = closed(">&-", "id", str(src))
    assert (r.returncode, r.stderr) == (0, "")


@pytest.mark.s3
def test_many_jobs_fit_under_a_low_soft_open_files_limit(s3_env: SeaweedFS, cli: Cli,
                                                         tmp_path: Path) -> None:
    """A soft limit on open files below what ``-j`` needs (the usual 1024 with ``-j
    1024``; here 64 with ``-j 200``) is raised towards the hard limit: the push failed
    naming a source file it "cannot read" (Too many open files)."""
    src = make_tree(tmp_path / "ds", {f"f{i}": str(i).encode() for i in range(200)})
    r = subprocess.run(["sh", "-c", 'ulimit -Sn 64 && exec "$@"', "sh", sys.executable,
                        "-m", "snapdir", "push", "-j", "200", "--store",
                        s3_env.unique_uri("nofile"), str(src)], env=cli.env,
                       capture_output=True, text=True, timeout=120, check=False)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == cli("id", str(src)).out

"""kill -9 at random points of push, pull, fetch and checkout; then check the invariants
and that re-running the command finishes with the right result.

Invariants after every kill:
* the store never holds a manifest whose objects are missing, and every object in it hashes
  to its key;
* the cache never holds an object (or manifest) whose bytes do not hash to its name;
* the destination never holds a file under its final name whose bytes differ from the
  manifest (``.snapdir-tmp-*`` files are allowed).
"""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
from relutil import (
    TMP,
    Cli,
    FaultProxy,
    big_file,
    check_content_addressed,
    check_destination,
    check_store_manifests_complete,
    small_tree,
)

from snapdir.core.manifest import digest_hex, parse
from snapdir.stores import open_store
from snapdir.stores.base import MANIFESTS, manifest_key, object_key

SEEDS = (11, 22, 33)
OBJECTS = 304  # distinct objects in dataset()


def dataset(root: Path) -> Path:
    small_tree(root, 300, seed=5)
    for i in range(4):
        big_file(root / "big" / f"part{i}.bin", 6 * 1024 * 1024 + i, seed=100 + i)
    return root


def crash(cli: Cli, args: list[str], delay: float | None = None,
          when: Callable[[], bool] | None = None) -> bool:
    """Start ``snapdir *args`` and SIGKILL it after ``delay`` s or as soon as ``when()``
    holds; True if it was killed while still running."""
    p = subprocess.Popen([sys.executable, "-m", "snapdir", *args], env=cli.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + (delay if delay is not None else 120)
    try:
        while p.poll() is None:
            if time.monotonic() >= deadline or (when is not None and when()):
                p.send_signal(signal.SIGKILL)
                p.wait()
                return True
            time.sleep(0.003)
        return False
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def count_files(*roots: Path) -> int:
    return sum(len(files) for root in roots for _, _, files in os.walk(root))


def at_least(n: int, *roots: Path) -> Callable[[], bool]:
    return lambda: count_files(*roots) >= n


def cache_root(cli: Cli) -> Path:
    return Path(cli.env["SNAPDIR_CACHE_DIR"]) / "store"


def _report(what: str, killed: list[bool]) -> None:
    print(f"\n{what}: killed mid-run in {sum(killed)} of {len(killed)} runs")


def test_kill_push_file_store(cli: Cli, tmp_path: Path) -> None:
    src = dataset(tmp_path / "src")
    want = cli("id", str(src)).out.strip()
    killed = []
    for seed in SEEDS:
        rng = random.Random(seed)
        m = cli.machine(f"m{seed}")
        store = tmp_path / f"store{seed}"
        killed.append(crash(m, ["push", "-q", "--store", str(store), str(src)],
                            when=at_least(rng.randrange(1, OBJECTS), store / ".objects")))
        check_store_manifests_complete(store)
        check_content_addressed(store)
        check_content_addressed(cache_root(m))
        assert m("push", "-q", "--store", str(store), str(src)).out.strip() == want
        assert check_store_manifests_complete(store) == 1
        dest = tmp_path / f"dest{seed}"
        cli.machine(f"p{seed}")("pull", "-q", "--store", str(store), "--id", want, str(dest))
        assert cli("id", str(dest)).out.strip() == want
    _report("push (file store)", killed)
    assert any(killed)


@pytest.mark.s3
def test_kill_push_s3(s3_env, cli: Cli, tmp_path: Path) -> None:
    """Killed after a random number of S3 requests, counted by a fault-free proxy."""
    src = dataset(tmp_path / "src")
    want = cli("id", str(src)).out.strip()
    killed = []
    with FaultProxy(s3_env.endpoint, rate=0.0) as counter:
        for seed in SEEDS:
            rng = random.Random(seed)
            m = cli.machine(f"m{seed}")
            m.env["AWS_ENDPOINT_URL"] = counter.endpoint
            uri = s3_env.unique_uri(f"crash-{seed}")
            target = counter.requests + rng.randrange(2, OBJECTS)
            killed.append(crash(m, ["push", "-q", "--store", uri, str(src)],
                                when=lambda t=target: counter.requests >= t))
            anyio.run(_check_s3_store, uri)
            check_content_addressed(cache_root(m))
            assert m("push", "-q", "--store", uri, str(src)).out.strip() == want
            assert anyio.run(_check_s3_store, uri) == 1
            dest = tmp_path / f"dest{seed}"
            cli.machine(f"p{seed}")("pull", "-q", "--store", uri, "--id", want, str(dest))
            assert cli("id", str(dest)).out.strip() == want
    _report("push (S3)", killed)
    assert any(killed)


async def _check_s3_store(uri: str) -> int:
    """Every manifest in the S3 store hashes to its key and has all its objects."""
    store = open_store(uri)
    n = 0
    try:
        async for keys in store.list(MANIFESTS + "/"):
            for key in keys:
                data = await store.get_bytes(key)
                sid = digest_hex(data)
                assert manifest_key(sid) == key
                for d in parse(data).object_digests():
                    assert await store.head(object_key(d)) is not None, f"{key} lacks {d}"
                n += 1
    finally:
        await store.aclose()
    return n


@pytest.fixture
def pushed(cli: Cli, tmp_path: Path) -> tuple[Path, str, bytes]:
    """(file store, id, manifest bytes)."""
    src = dataset(tmp_path / "src")
    store = tmp_path / "store"
    sid = cli("push", "-q", "--store", str(store), str(src)).out.strip()
    data = (store / manifest_key(sid)).read_bytes()
    return store, sid, data


def test_kill_pull(cli: Cli, tmp_path: Path, pushed) -> None:
    store, sid, data = pushed
    killed = []
    for seed in SEEDS:
        rng = random.Random(seed)
        m = cli.machine(f"m{seed}")
        dest = tmp_path / f"dest{seed}"
        args = ["pull", "-q", "--store", str(store), "--id", sid, str(dest)]
        killed.append(crash(m, args, when=at_least(rng.randrange(1, 2 * OBJECTS),
                                                   cache_root(m) / ".objects", dest)))
        check_content_addressed(cache_root(m))
        check_destination(dest, data)
        m(*args)
        check_destination(dest, data)
        assert cli("id", str(dest)).out.strip() == sid
    _report("pull", killed)
    assert any(killed)


def test_kill_pull_no_cache(cli: Cli, tmp_path: Path, pushed) -> None:
    store, sid, data = pushed
    killed = []
    for seed in SEEDS:
        rng = random.Random(seed)
        m = cli.machine(f"m{seed}")
        dest = tmp_path / f"dest{seed}"
        args = ["pull", "-q", "--no-cache", "--store", str(store), "--id", sid, str(dest)]
        killed.append(crash(m, args, when=at_least(rng.randrange(1, OBJECTS), dest)))
        check_destination(dest, data)
        m(*args)
        check_destination(dest, data)
        assert cli("id", str(dest)).out.strip() == sid
    _report("pull --no-cache", killed)
    assert any(killed)


def test_kill_fetch_then_checkout(cli: Cli, tmp_path: Path, pushed) -> None:
    store, sid, _data = pushed
    killed = []
    for seed in SEEDS:
        rng = random.Random(seed)
        m = cli.machine(f"m{seed}")
        args = ["fetch", "-q", "--store", str(store), "--id", sid]
        killed.append(crash(m, args, when=at_least(rng.randrange(1, OBJECTS),
                                                   cache_root(m) / ".objects")))
        check_content_addressed(cache_root(m))
        m(*args)
        check_content_addressed(cache_root(m))
        leftovers = list(cache_root(m).rglob(".snapdir-tmp-*"))
        assert leftovers == [], "the re-run left the killed fetch's partial files"
        dest = tmp_path / f"dest{seed}"
        m("checkout", "--id", sid, str(dest))
        assert cli("id", str(dest)).out.strip() == sid
    _report("fetch", killed)
    assert any(killed)


def test_kill_checkout(cli: Cli, tmp_path: Path, pushed) -> None:
    store, sid, data = pushed
    m = cli.machine("co")
    m("fetch", "-q", "--store", str(store), "--id", sid)
    killed = []
    for seed in SEEDS:
        rng = random.Random(seed)
        dest = tmp_path / f"dest{seed}"
        args = ["checkout", "--id", sid, str(dest)]
        killed.append(crash(m, args, when=at_least(rng.randrange(1, OBJECTS), dest)))
        check_destination(dest, data)
        check_content_addressed(cache_root(m))
        m(*args)
        check_destination(dest, data)
        assert cli("id", str(dest)).out.strip() == sid
    _report("checkout", killed)
    assert any(killed)


async def _pending_uploads(uri: str) -> list[str]:
    from aiobotocore.session import get_session

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    async with get_session().create_client(
            "s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]) as client:
        r = await client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        return [u["Key"] for u in r.get("Uploads", [])]


def _signal_when(args: list[str], env: dict[str, str], ready: Callable[[], bool],
                 sig: int, *, within: float = 120, wait: float = 60
                 ) -> tuple[int, str, str, float]:
    """Run ``args``, send ``sig`` once ``ready()`` (which must come ``within`` seconds);
    (exit code, stdout, stderr, seconds from the signal to the exit, at most ``wait``).
    The process is killed if the test fails first."""
    p = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline = time.monotonic() + within
        while not ready() and p.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        assert p.poll() is None, "finished before the signal: make the data larger"
        sent = time.monotonic()
        p.send_signal(sig)
        out, err = p.communicate(timeout=wait)
        return p.returncode, out, err, time.monotonic() - sent
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _signal_midway(args: list[str], env: dict[str, str], counter: FaultProxy, after: int,
                   sig: int) -> tuple[int, str, str]:
    """Run ``args``, send ``sig`` once ``counter`` has seen ``after`` more requests;
    (exit code, stdout, stderr)."""
    start = counter.requests
    rc, out, err, _ = _signal_when(args, env, lambda: counter.requests >= start + after, sig)
    return rc, out, err


def _sigint_default(args: list[str]) -> list[str]:
    """``args`` run with SIGINT not ignored, as from a terminal, whatever this process
    inherited (a test suite started as a shell's background job ignores SIGINT, and its
    children would too)."""
    reset = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
             "os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", reset, *args]


def _sigint_ignored(args: list[str]) -> list[str]:
    """``args`` run as a shell runs a background job: with SIGINT ignored (inherited)."""
    return ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *args]


@pytest.mark.s3
@pytest.mark.parametrize(("sig", "code", "said", "background"), [
    (signal.SIGTERM, 143, "terminated", False),
    (signal.SIGTERM, 143, "terminated", True),  # a shell's background job ignores SIGINT
    (signal.SIGINT, 130, "interrupted", False)])
def test_stopping_a_multipart_push_aborts_the_upload(s3_env, cli: Cli, tmp_path: Path,
                                                     sig: int, code: int, said: str,
                                                     background: bool) -> None:
    """`kill` (a scheduler, a stopping container) or Ctrl-C half-way through a large file:
    the multipart upload is aborted, not left to bill storage, and no manifest is written."""
    src = tmp_path / "src"
    big_file(src / "weights.bin", 200 * 1024 * 1024, seed=7)
    uri = s3_env.unique_uri(f"stop-{sig}")
    with FaultProxy(s3_env.endpoint, rate=0.0) as counter:
        env = dict(cli.env, AWS_ENDPOINT_URL=counter.endpoint)
        args = [sys.executable, "-m", "snapdir", "push", "-q", "--store", uri, str(src)]
        cmd = _sigint_ignored(args) if background else _sigint_default(args)
        rc, out, err = _signal_midway(cmd, env, counter, 8, sig)
    assert rc == code, err
    assert out == ""
    assert err == f"snapdir: {said}; run the same command again to resume\n"
    assert len(err.strip().splitlines()) == 1, err
    assert anyio.run(_pending_uploads, uri) == []
    assert anyio.run(_check_s3_store, uri) == 0  # no manifest


@pytest.mark.s3
def test_a_second_ctrl_c_while_clean_up_hangs_exits_at_once(s3_env, cli: Cli,
                                                            tmp_path: Path) -> None:
    """Ctrl-C during a multipart push whose store then stops answering: the abort hangs
    (read timeout: 60 s); a second Ctrl-C exits at once, saying what may be left behind."""
    src = tmp_path / "src"
    big_file(src / "weights.bin", 200 * 1024 * 1024, seed=8)
    uri = s3_env.unique_uri("twice")
    with FaultProxy(s3_env.endpoint, rate=0.0) as counter:
        env = dict(cli.env, AWS_ENDPOINT_URL=counter.endpoint)
        args = [sys.executable, "-m", "snapdir", "push", "-q", "--store", uri, str(src)]
        p = subprocess.Popen(_sigint_default(args), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while counter.requests < 8 and p.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        counter.frozen = True
        p.send_signal(signal.SIGINT)
        time.sleep(1.5)
        still_cleaning = p.poll() is None
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        took = time.monotonic() - t0
    assert still_cleaning, err  # the first Ctrl-C is waiting on the store
    assert p.returncode == 130, err
    assert took < 5, took
    assert out == ""
    *notice, last = err.strip().splitlines()  # the notice: if the 2nd Ctrl-C came late
    said = ("snapdir: cleaning up before exiting (aborting uploads, removing temp files); "
            "Ctrl-C again exits at once")
    assert notice in ([], [said]), err
    assert last == ("snapdir: stopped before cleaning up (temp files or a multipart upload may "
                    "be left behind)")
    assert anyio.run(_check_s3_store, uri) == 0  # no manifest, all the same


@pytest.mark.s3
def test_sigterm_during_a_pull_is_one_line_and_leaves_no_partial_file(
        s3_env, cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(3):
        big_file(src / f"shard{i}.bin", 90 * 1024 * 1024, seed=40 + i)
    uri = s3_env.unique_uri("term-pull")
    sid = cli("push", "-q", "--store", uri, str(src)).out.strip()
    dest = tmp_path / "dest"
    with FaultProxy(s3_env.endpoint, rate=0.0) as counter:
        env = dict(cli.machine("puller").env, AWS_ENDPOINT_URL=counter.endpoint)
        args = [sys.executable, "-m", "snapdir", "pull", "-q", "--store", uri, "--id", sid,
                str(dest)]
        rc, _out, err = _signal_midway(_sigint_ignored(args), env, counter, 6, signal.SIGTERM)
    assert rc == 143, err
    assert err == "snapdir: terminated; run the same command again to resume\n"
    want = {f"shard{i}.bin": (src / f"shard{i}.bin").read_bytes() for i in range(3)}
    for f in dest.rglob("*") if dest.exists() else ():
        assert f.name.startswith(".snapdir-tmp-") or f.read_bytes() == want[f.name]


def _partial_download(root: Path) -> int:
    """Bytes in (and hashed) of the largest partial download of a large object under
    ``root`` (0: none yet)."""
    from snapdir.transfer.cache import partial_of

    best = 0
    for p in root.rglob(".snapdir-tmp-*") if root.exists() else ():
        got = partial_of(p)
        best = max(best, got[1] if got else 0)
    return best


@pytest.mark.s3
@pytest.mark.parametrize(("verb", "sig"), [("pull", signal.SIGKILL), ("pull", signal.SIGTERM),
                                           ("fetch", signal.SIGKILL)])
def test_a_large_object_is_resumed_where_a_stopped_pull_left_it(
        s3_env, cli: Cli, tmp_path: Path, verb: str, sig: int) -> None:
    """A pull (or fetch) killed -9 or stopped part-way through a large object: the next
    run downloads only the ranges that were not in yet, and the result is verified."""
    src = tmp_path / "src"
    size = 160 * 1024 * 1024
    big_file(src / "model.bin", size, seed=77)
    uri = s3_env.unique_uri(f"resume-{verb}-{sig}")
    sid = cli("push", "-q", "--store", uri, str(src)).out.strip()
    digest = digest_hex((src / "model.bin").read_bytes())
    m = cli.machine("node")
    dest = tmp_path / "dest"
    args = ([verb, "-q", "--store", uri, "--id", sid]
            + ([str(dest)] if verb == "pull" else []))
    where = dest if verb == "pull" else cache_root(m)
    ranges = -(-size // (16 * 1024 * 1024))
    with FaultProxy(s3_env.endpoint, rate=0.0) as counter:
        m.env["AWS_ENDPOINT_URL"] = counter.endpoint
        rc, _, err, _ = _signal_when(
            _sigint_ignored([sys.executable, "-m", "snapdir", *args]), m.env,
            lambda: _partial_download(where) >= 48 * 1024 * 1024, sig)
        assert rc == -signal.SIGKILL if sig == signal.SIGKILL else rc == 143, err
        assert not (dest / "model.bin").exists()
        assert _partial_download(where) >= 48 * 1024 * 1024
        seen = -1
        while seen != counter.requests:  # requests the killed process sent, still coming in
            seen = counter.requests
            time.sleep(0.3)
        counter.log.clear()
        m(*args)
        gets = [t for method, t in counter.log
                if method == "GET" and object_key(digest) in t]
    # (none at all if the stopped run had every range in before it exited, on a busy host)
    assert len(gets) <= ranges - 3, f"{len(gets)} ranged GETs of {ranges} again"
    if verb == "fetch":
        m("checkout", "--id", sid, str(dest))
    assert cli("id", str(dest)).out.strip() == sid
    assert list(where.rglob(".snapdir-tmp-*")) == []


def test_ctrl_c_before_the_event_loop_is_one_line(cli: Cli, tmp_path: Path) -> None:
    """Ctrl-C while a command is still being set up (click parsing, imports), before the
    event loop takes SIGINT over: the same single line, no blank line first (click answers
    a KeyboardInterrupt with one), exit 130."""
    script = ("import os, signal, sys, time, click\n"
              "from snapdir.cli import main as m\n"
              "cmd = m.cli.get_command(click.Context(m.cli), 'manifest')\n"
              "def early(**kw):\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n"
              "    time.sleep(5)\n"
              "cmd.callback = early\n"
              "sys.argv = ['snapdir', 'manifest', sys.argv[1]]\n"
              "m.main()\n")
    r = subprocess.run(_sigint_default([sys.executable, "-c", script, str(tmp_path)]),
                       env=cli.env, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 130, r.stderr
    # (`manifest` keeps nothing a second run could resume from)
    assert r.stderr == "snapdir: interrupted; run the same command again\n"


def test_ctrl_c_while_the_cli_imports_is_one_line(cli: Cli, tmp_path: Path) -> None:
    """Ctrl-C in the first tens of ms, while the entry point imports click and the CLI
    (before the CLI's own handler is installed): one line and exit 130, not Python's
    KeyboardInterrupt traceback. The signal is sent the moment click's import starts."""
    script = ("import os, signal, sys\n"
              "class Trip:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name == 'click':\n"
              "            os.kill(os.getpid(), signal.SIGINT)\n"
              "sys.meta_path.insert(0, Trip())\n"
              "import snapdir\n"
              "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
              "from snapdir.cli.fast import main\n"
              "assert 'click' not in sys.modules\n"
              "sys.argv = ['snapdir', 'id', '--no-stat-cache', sys.argv[1]]\n"
              "main()\n")
    r = subprocess.run(_sigint_default([sys.executable, "-c", script, str(tmp_path)]),
                       env=cli.env, capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 130, r.stderr
    assert r.stderr == "snapdir: interrupted; run the same command again\n"  # (`id`)


def test_import_snapdir_keeps_pythons_keyboard_interrupt() -> None:
    """A program using the library: ``import snapdir`` (and its API) leave SIGINT alone."""
    script = ("import signal, snapdir, snapdir.api\n"
              "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
              "import os\n"
              "try:\n"
              "    os.kill(os.getpid(), signal.SIGINT)\n"
              "    signal.pause()\n"
              "except KeyboardInterrupt:\n"
              "    print('KeyboardInterrupt')\n")
    r = subprocess.run(_sigint_default([sys.executable, "-c", script]), capture_output=True,
                       text=True, timeout=60, check=False)
    assert (r.returncode, r.stdout, r.stderr) == (0, "KeyboardInterrupt\n", "")

SAME_FILES = 6000  # in same_files(): enough for a checkout to take seconds


@pytest.fixture
def same_files(cli: Cli, tmp_path: Path) -> tuple[Path, str, bytes]:
    """(file store, id, manifest bytes) of ``SAME_FILES`` files holding the same bytes in
    directories of mode 0751: one object to push and fetch, a copy per file to check out."""
    src = tmp_path / "same"
    for i in range(SAME_FILES):
        p = src / f"d{i % 30:02d}" / f"f{i:05d}"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"the same bytes\n")
    for d in [src, *src.iterdir()]:
        d.chmod(0o751)
    store = tmp_path / "store"
    sid = cli("push", "-q", "--store", str(store), str(src)).out.strip()
    return store, sid, (store / manifest_key(sid)).read_bytes()


@pytest.mark.parametrize(("verb", "sig", "code", "said"), [
    ("checkout", signal.SIGINT, 130, "interrupted"),
    ("checkout", signal.SIGTERM, 143, "terminated"),
    ("pull", signal.SIGINT, 130, "interrupted")])  # objects in the cache: pull's checkout
def test_a_signal_stops_a_checkout_between_files(cli: Cli, tmp_path: Path, same_files,
                                                 verb: str, sig: int, code: int,
                                                 said: str) -> None:
    """Ctrl-C or SIGTERM while a checkout places many files: it stops after the file in
    hand, not once every file is placed; what it placed is right, no temp file is left,
    the directories have their snapshot modes (not the 0700 they are filled with), and a
    re-run finishes the job."""
    store, sid, data = same_files
    m = cli.machine("m")
    m("fetch", "-q", "--store", str(store), "--id", sid)
    dest = tmp_path / "dest"
    args = (["checkout", "--id", sid] if verb == "checkout" else
            ["pull", "-q", "--store", str(store), "--id", sid]) + [str(dest)]
    rc, out, err, took = _signal_when(
        _sigint_default([sys.executable, "-m", "snapdir", *args]), m.env,
        lambda: count_files(dest) >= 100, sig, within=60)
    placed = count_files(dest)
    assert rc == code, err
    assert out == ""
    assert err == f"snapdir: {said}; run the same command again to resume\n"
    assert placed < SAME_FILES, f"went on to place every file ({took:.1f} s after the signal)"
    assert took < 2, took
    assert list(dest.rglob(TMP + "*")) == []
    check_destination(dest, data)
    assert {oct(stat.S_IMODE(d.stat().st_mode)) for d in [dest, *dest.iterdir()]} == {"0o751"}
    m(*args)
    assert cli("id", str(dest)).out.strip() == sid


@pytest.mark.parametrize(("verb", "sig", "code"), [
    ("push", signal.SIGTERM, 143),
    ("push", signal.SIGINT, 130),
    ("id", signal.SIGINT, 130),
    ("id", signal.SIGTERM, 143)])  # no event loop: was a death without a word
def test_a_signal_stops_hashing_a_large_file(cli: Cli, tmp_path: Path, verb: str, sig: int,
                                             code: int) -> None:
    """Ctrl-C or SIGTERM while a push (or `snapdir id`) hashes a file of many GB: it stops
    within a window of the file, not once the file is hashed to its end (push hashed the
    whole tree in one worker-thread job, which the signal waited for)."""
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "huge.bin", "wb") as fh:
        fh.truncate(16 << 30)  # sparse: no disk space, and seconds to hash
    store = tmp_path / "store"
    args = ["push", "-q", "--store", str(store), str(src)] if verb == "push" else ["id", str(src)]
    started = time.monotonic()
    rc, out, err, took = _signal_when(
        _sigint_default([sys.executable, "-m", "snapdir", *args]), cli.env,
        lambda: time.monotonic() >= started + 1.5, sig, wait=120)  # started up, hashing
    assert rc == code, err
    assert out == ""
    # the advice every command gives; `id` (its fast path too) has nothing to resume
    said = "terminated" if sig == signal.SIGTERM else "interrupted"
    advice = "run the same command again" + (" to resume" if verb == "push" else "")
    assert err == f"snapdir: {said}; {advice}\n"
    assert took < 1.5, f"hashed on for {took:.1f} s after the signal"
    assert not (store / ".manifests").exists() or not any((store / ".manifests").iterdir())


@pytest.mark.parametrize(("verb", "sig", "code", "said"), [
    ("status", signal.SIGINT, 130, "interrupted"),
    ("status", signal.SIGTERM, 143, "terminated"),
    ("manifest", signal.SIGTERM, 143, "terminated")])
def test_a_signal_while_hashing_outside_the_event_loop_is_one_line(
        cli: Cli, tmp_path: Path, verb: str, sig: int, code: int, said: str) -> None:
    """`status` hashes DIR after the event loop has read the snapshot's manifest, and
    `manifest` hashes with no event loop at all: Ctrl-C or SIGTERM there is the same one
    line as anywhere else (it was a blank line first, from click's KeyboardInterrupt, once
    the loop had handed SIGINT back to Python; and SIGTERM killed without a word)."""
    store = tmp_path / "store"
    sid = cli("push", "-q", "--store", str(store), str(small_tree(tmp_path / "small", 3, 1))).out
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "huge.bin", "wb") as fh:
        fh.truncate(16 << 30)  # sparse: no disk space, and seconds to hash
    args = (["status", "--store", str(store), "--id", sid.strip()] if verb == "status"
            else ["manifest"]) + ["--no-stat-cache", str(src)]
    started = time.monotonic()
    rc, out, err, took = _signal_when(
        _sigint_default([sys.executable, "-m", "snapdir", *args]), cli.env,
        lambda: time.monotonic() >= started + 1.5, sig, wait=120)  # started up, hashing
    assert (rc, out) == (code, ""), err
    assert err == f"snapdir: {said}; run the same command again\n"
    assert took < 1.5, f"hashed on for {took:.1f} s after the signal"


def test_a_slow_clean_up_after_ctrl_c_says_so(monkeypatch, capfd) -> None:
    """Ctrl-C, then a clean-up that takes a while (an abort of a multipart upload on a
    store that stopped answering waits up to 15 s): one line says what it is waiting for
    and how to skip it, instead of nothing at all."""
    import asyncio

    from snapdir.cli import main

    monkeypatch.setattr(main, "_signalled", [])
    monkeypatch.setattr(main, "_CLEANUP_NOTICE", 0.2, raising=False)
    cleaned = []

    async def work() -> None:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
        try:
            await anyio.sleep(30)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.5)
                cleaned.append(True)

    with pytest.raises(main.Interrupted):
        main.run_async(work)
    assert cleaned == [True]
    assert capfd.readouterr().err == ("snapdir: cleaning up before exiting (aborting uploads, "
                                      "removing temp files); Ctrl-C again exits at once\n")

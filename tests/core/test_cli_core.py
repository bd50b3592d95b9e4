"""The `snapdir manifest` / `snapdir id` command line, run as `python -m snapdir`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from coreutil import EMPTY_B3, F, b3, b3k, build_tree, make_dir, md5, model_manifest, sha256

HELLO = (
    "D 755 6cd17c61c7e42c50586ee5f3f54dbc4f809f71073fc176ed2ae865103dd33625 5 ./\n"
    "F 644 ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f 5 ./a.txt\n"
)
HELLO_ID = "5803426341cd88149ee1b981e8fa337b728d5cff9be5b92c3c4e1e214dc9d504"


def snapdir(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None,
            cwd: str | Path | None = None) -> subprocess.CompletedProcess[bytes]:
    full = dict(os.environ)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "snapdir", *args], input=stdin,
                          capture_output=True, env=full, cwd=cwd, timeout=120, check=False)


def ok(*args: str, **kw: object) -> str:
    proc = snapdir(*args, **kw)  # type: ignore[arg-type]
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode("utf-8")


def fails(*args: str, **kw: object) -> str:
    """Run, expect a clean failure: non-zero exit, one line on stderr, no traceback."""
    proc = snapdir(*args, **kw)  # type: ignore[arg-type]
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in err, err
    assert err.endswith("\n"), err
    assert err.count("\n") == 1, err
    assert proc.stdout == b""
    return err


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    root = tmp_path / "hello"
    build_tree(root, {"a.txt": F(0o644, b"hello")}, {"": 0o755})
    return root


def test_manifest_prints_the_vector(hello: Path) -> None:
    assert ok("manifest", str(hello)) == HELLO


def test_id_prints_id_and_newline_only(hello: Path) -> None:
    out = ok("id", str(hello))
    assert out == HELLO_ID + "\n"
    assert re.fullmatch(r"[0-9a-f]{64}\n", out)


def test_id_of_manifest_on_stdin(hello: Path) -> None:
    assert ok("id", stdin=HELLO.encode()) == HELLO_ID + "\n"
    noisy = "# a comment\n\n" + HELLO.replace("\nF", "\n# mid\n\nF") + "\n"
    assert ok("id", stdin=noisy.encode()) == HELLO_ID + "\n"
    piped = ok("manifest", str(hello)).encode()
    assert ok("id", stdin=piped) == ok("id", str(hello))


def test_id_of_bad_manifest_on_stdin() -> None:
    # (parsing is lenient here, so that --absolute manifests have ids too; not-a-manifest
    # is still refused)
    fails("id", stdin=b"not a manifest\n")
    fails("id", stdin=f"D 755 {EMPTY_B3.upper()} 0 ./\n".encode())
    fails("id", stdin=f"D 755 {EMPTY_B3} -5 ./\n".encode())
    # nothing piped in (a script's empty variable, < /dev/null) is not an id
    assert "no manifest entries" in fails("id", stdin=b"")
    assert "no manifest entries" in fails("id", stdin=b"# just a comment\n")


def test_vectors_via_cli(tmp_path: Path) -> None:
    root = tmp_path / "v"
    build_tree(root, {"foo.txt": F(0o600, b""), "bar.txt": F(0o600, b"")}, {"": 0o700})
    assert ok("id", str(root)) == \
        "c678a299380893769bd7795628b96147229b410a9d5a5b7cae563bcae3c27857\n"
    (root / "foo.txt").write_bytes(b"foo\n")
    assert ok("id", str(root)) == \
        "8af03a1bec09b1838d2c4f56c6940ed35ccdad1064243d2d775e8347ba82b9be\n"
    (root / "bar.txt").write_bytes(b"bar\n")
    assert ok("id", str(root)) == \
        "df4b3a7b6c04e5b14ebb548a28ac0dea6c645f0ecfde85df2c0911ac10d2e8a9\n"
    empty = tmp_path / "e"
    make_dir(empty, 0o755)
    assert ok("id", str(empty)) == \
        "bb83e51d36a3ffa25011d1ea67419da2ca7609d3537b993286d9bec752519acc\n"


def _linked(tmp_path: Path) -> Path:
    root = tmp_path / "l"
    build_tree(root, {"real/f.txt": F(0o644, b"hello world")}, {"": 0o755, "real": 0o755})
    os.symlink("real/f.txt", root / "link-f")
    os.symlink("real", root / "link-d")
    return root


def test_follow_and_no_follow(tmp_path: Path) -> None:
    root = _linked(tmp_path)
    out = ok("manifest", str(root))
    assert out.splitlines()[0] == \
        "D 755 6029cdd1588b8999a407289a7d59453647c4f59bab5bd875ef6606f5b23dd5c6 32 ./"
    nf = ok("manifest", "--no-follow", str(root))
    assert nf == model_manifest({"real/f.txt": F(0o644, b"hello world")},
                                {"": 0o755, "real": 0o755})


def test_exclude_repeated(tmp_path: Path) -> None:
    root = tmp_path / "x"
    build_tree(root, {"a.log": F(0o644, b"l"), "b.txt": F(0o644, b"b"), "sub/c": F(0o644, b"c")},
               {"": 0o755, "sub": 0o755})
    out = ok("manifest", "--exclude", r"\.log$", "--exclude", "/sub$", str(root))
    assert out == model_manifest({"b.txt": F(0o644, b"b")}, {"": 0o755})


def test_exclude_with_inline_flags(tmp_path: Path) -> None:
    """A leading (?i) is valid for 1.x; it was an internal error (exit 70) here."""
    root = tmp_path / "x"
    build_tree(root, {"a.LOG": F(0o644, b"l"), "b.txt": F(0o644, b"b")}, {"": 0o755})
    out = ok("manifest", "--exclude", "/nothing", "--exclude", r"(?i)\.log$", str(root))
    assert out == model_manifest({"b.txt": F(0o644, b"b")}, {"": 0o755})


def test_bad_exclude_regex_is_a_usage_error(hello: Path) -> None:
    proc = snapdir("manifest", "--exclude", "(unclosed", str(hello))
    assert proc.returncode == 2
    assert b"Traceback" not in proc.stderr


@pytest.mark.parametrize(("algo", "fn"), [("b3sum", b3), ("md5sum", md5),
                                          ("sha256sum", sha256)])
def test_checksum_bin(tmp_path: Path, algo: str, fn: object) -> None:
    root = tmp_path / "c"
    files = {"a": F(0o644, b"hello"), "d/b": F(0o600, b"x")}
    dirs = {"": 0o755, "d": 0o755}
    build_tree(root, files, dirs)
    expected = model_manifest(files, dirs, fn)  # type: ignore[arg-type]
    assert ok("manifest", "--checksum-bin", algo, str(root)) == expected
    assert ok("id", stdin=expected.encode()) == b3(expected.encode()) + "\n"


def test_unknown_checksum_bin(hello: Path) -> None:
    proc = snapdir("manifest", "--checksum-bin", "crc32", str(hello))
    assert proc.returncode != 0
    assert b"Traceback" not in proc.stderr


def test_manifest_context_env(tmp_path: Path) -> None:
    root = tmp_path / "k"
    files = {"a": F(0o644, b"hello"), "d/b": F(0o600, b"x")}
    dirs = {"": 0o755, "d": 0o755}
    build_tree(root, files, dirs)
    ctx = "example.com 2024 snapdir keyed"
    expected = model_manifest(files, dirs, b3k(ctx))
    env = {"SNAPDIR_MANIFEST_CONTEXT": ctx}
    assert ok("manifest", str(root), env=env) == expected
    assert ok("id", str(root), env=env) == b3(expected.encode()) + "\n"


def test_absolute(hello: Path, tmp_path: Path) -> None:
    out = ok("manifest", "--absolute", str(hello))
    assert out == HELLO.replace(" ./", f" {hello}/")
    # a relative root: cwd joined, '.' dropped, '..' kept
    make_dir(tmp_path / "w")
    out = ok("manifest", "--absolute", "./../hello/.", cwd=tmp_path / "w")
    assert out == HELLO.replace(" ./", f" {tmp_path}/w/../hello/")


def _aged(tmp_path: Path) -> Path:
    root = tmp_path / "aged"
    build_tree(root, {f"f{i}": F(0o644, bytes([i]) * 1000) for i in range(5)}, {"": 0o755})
    return root


def test_stat_cache_location_and_bypass(tmp_path: Path, cache_dir: Path) -> None:
    root = _aged(tmp_path)
    time.sleep(2.3)  # past the racy window, so the files get cached
    no_cache = tmp_path / "nc"
    out1 = ok("id", "--no-stat-cache", str(root), env={"SNAPDIR_CACHE_DIR": str(no_cache)})
    assert not no_cache.exists() or not any(no_cache.rglob("*"))
    out2 = ok("id", str(root), env={"SNAPDIR_CACHE_DIR": str(no_cache),
                                    "SNAPDIR_NO_STAT_CACHE": "1"})
    assert not no_cache.exists() or not any(no_cache.rglob("*"))
    out3 = ok("id", str(root))
    assert any(cache_dir.rglob("*"))  # SNAPDIR_CACHE_DIR is where the cache goes
    assert out1 == out2 == out3 == ok("id", str(root))


def test_missing_dir(tmp_path: Path) -> None:
    err = fails("manifest", str(tmp_path / "nope"))
    assert "nope" in err
    fails("id", str(tmp_path / "nope"))


def test_newline_name(tmp_path: Path) -> None:
    root = tmp_path / "n"
    make_dir(root, 0o755)
    (root / "bad\nname").write_bytes(b"x")
    err = fails("manifest", str(root))
    assert "bad" in err
    fails("id", str(root))


def test_symlink_cycle(tmp_path: Path) -> None:
    root = tmp_path / "cyc"
    make_dir(root / "a", 0o755)
    os.symlink("..", root / "a" / "up")
    err = fails("manifest", str(root))
    assert "up" in err
    assert ok("id", "--no-follow", str(root))

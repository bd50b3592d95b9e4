"""Helpers for transfer tests: run the CLI as a user would, in an isolated home."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class Run:
    rc: int
    out: str
    err: str


@dataclass
class Cli:
    env: dict[str, str]
    home: Path

    def __call__(self, *args: str, check: bool = True, input: str | None = None) -> Run:
        p = subprocess.run([sys.executable, "-m", "snapdir", *args], check=False,
                           env=self.env, capture_output=True, text=True, input=input, timeout=600)
        r = Run(p.returncode, p.stdout, p.stderr)
        if check and r.rc != 0:
            raise AssertionError(f"snapdir {' '.join(args)} failed ({r.rc}): {r.err}")
        return r

    def machine(self, name: str) -> Cli:
        """Another 'machine': fresh home, cache and data directories, same environment."""
        home = self.home.parent / name
        home.mkdir(exist_ok=True)
        env = dict(self.env)
        env.update(_dirs(home))
        return Cli(env, home)


def _dirs(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "SNAPDIR_CACHE_DIR": str(home / "cache"),
            "SNAPDIR_DATA_DIR": str(home / "data"), "XDG_CACHE_HOME": str(home / "xdg-c"),
            "XDG_DATA_HOME": str(home / "xdg-d")}


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPDIR_")}
    env.update(_dirs(home))
    return Cli(env, home)


def make_tree(root: Path, files: dict[str, bytes], modes: dict[str, int] | None = None) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, (modes or {}).get(rel, 0o644))
    return root


def object_files(store: Path) -> set[Path]:
    return {p for p in (store / ".objects").rglob("*") if p.is_file()}


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


# --- S3 (SeaweedFS) helpers: added for tests/transfer/test_s3_*.py and tests/history ------

_TESTS = Path(__file__).resolve().parent.parent
if str(_TESTS) not in sys.path:  # tests/reference.py (the reference snapdir 1.12 runner)
    sys.path.insert(0, str(_TESTS))

_AWS_VARS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")


def _popen(self: Cli, *args: str, **kw: Any) -> subprocess.Popen[str]:
    """Start ``python -m snapdir ARGS`` in this machine's environment (not waited for)."""
    return subprocess.Popen([sys.executable, "-m", "snapdir", *args], env=self.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kw)


Cli.popen = _popen


@dataclass
class Bucket:
    """Direct access to the test bucket, bypassing snapdir: what a user's `aws s3` sees."""

    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str
    unique_uri: Callable[[str], str]

    def _store(self, uri: str) -> Any:
        from obstore.store import S3Store

        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        assert bucket == self.bucket, uri
        return S3Store(bucket, prefix=prefix or None, endpoint=self.endpoint,
                       region=self.region, access_key_id=self.access_key,
                       secret_access_key=self.secret_key, virtual_hosted_style_request=False,
                       client_options={"allow_http": True})

    def keys(self, uri: str, under: str | None = None) -> set[str]:
        """Every key below the store prefix ``uri`` (relative to it)."""
        import obstore

        return {m["path"] for chunk in obstore.list(self._store(uri), under)
                for m in chunk}

    def put(self, uri: str, key: str, data: bytes) -> None:
        import obstore

        obstore.put(self._store(uri), key, data, use_multipart=False)

    def delete(self, uri: str, key: str) -> None:
        import obstore

        obstore.delete(self._store(uri), key)

    def get(self, uri: str, key: str) -> bytes:
        import obstore

        return bytes(obstore.get(self._store(uri), key).bytes())

    def etag(self, uri: str, key: str) -> str:
        import obstore

        return str(obstore.head(self._store(uri), key)["e_tag"]).strip('"')


@pytest.fixture
def bucket(s3_env: Any) -> Bucket:
    sw = s3_env
    return Bucket(sw.endpoint, sw.bucket, sw.access_key, sw.secret_key, sw.region, sw.unique_uri)


@pytest.fixture
def s3_cli(s3_env: Any, cli: Cli) -> Cli:
    """``cli`` with the SeaweedFS credentials and endpoint in its environment (and in every
    ``.machine()`` made from it), whatever order the fixtures were set up in."""
    for var in _AWS_VARS:
        cli.env[var] = os.environ[var]
    cli.env.pop("AWS_ENDPOINT_URL_S3", None)
    return cli


def dead_pid() -> int:
    """The process id of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def require_user_xattrs(tmp: Path) -> None:
    """Skip the test where ``tmp``'s filesystem has no user extended attributes (where
    snapdir records no partial download to resume)."""
    from snapdir.transfer.cache import RESUME_ATTR

    probe = tmp / ".xattr-probe"
    probe.write_bytes(b"")
    try:
        os.setxattr(probe, RESUME_ATTR, b"x 1")
    except OSError:
        pytest.skip("no user xattrs here")
    finally:
        probe.unlink()

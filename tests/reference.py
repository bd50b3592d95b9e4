"""Run the reference implementation, snapdir 1.12 (a Rust extension on PyPI), as a subprocess.

Its import name, ``snapdir``, clashes with ours, so it lives in a virtual environment of its
own and is only ever run as a separate process in isolated mode (``-I``: no cwd or
PYTHONPATH on ``sys.path``, so our package can never shadow it).

The interpreter is ``$SNAPDIR_REFERENCE_PYTHON`` (default ``/tmp/ref/bin/python``; CI builds
it in ``.ci/run``). When it is missing the tests that need it are skipped locally but FAIL
when ``$CI`` is set: a skipped cross-check is not a passed one.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

ENV_VAR = "SNAPDIR_REFERENCE_PYTHON"
DEFAULT_REFERENCE_PYTHON = "/tmp/ref/bin/python"
TIMEOUT = 60

# The binding sometimes crashes while the interpreter shuts down, after its work is done:
# hence os._exit. Output is JSON so that any name (spaces, \r, unicode) survives intact.
_SCRIPT = r"""
import asyncio, json, os, sys
import snapdir
root, what, opts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
try:
    if what == "manifest":
        out = {"ok": asyncio.run(snapdir.manifest(root, **opts)).raw}
    elif what == "id":
        out = {"ok": asyncio.run(snapdir.id(root, **opts))}
    elif what == "push":
        out = {"ok": asyncio.run(snapdir.push(root, snapdir.StoreUri(opts["store"])))}
    elif what == "pull":
        asyncio.run(snapdir.pull(snapdir.SnapshotId(opts["id"]), snapdir.StoreUri(opts["store"]),
                                 root))
        out = {"ok": ""}
    else:
        raise ValueError(what)
except BaseException as exc:
    out = {"error": type(exc).__name__ + ": " + str(exc)}
sys.stdout.write(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"""


class ReferenceError(AssertionError):
    """The reference implementation refused the tree (its message is the payload)."""


def reference_python() -> str | None:
    """The reference interpreter, or None if it is not installed."""
    exe = os.environ.get(ENV_VAR) or DEFAULT_REFERENCE_PYTHON
    if os.path.isfile(exe) and os.access(exe, os.X_OK):
        return exe
    return None


def require_reference() -> str:
    """The reference interpreter; skip (locally) or fail (CI) when it is missing."""
    exe = reference_python()
    if exe is None:
        where = os.environ.get(ENV_VAR) or DEFAULT_REFERENCE_PYTHON
        msg = (f"reference snapdir 1.12 not found at {where} (set {ENV_VAR}; create it with "
               "`python -m venv /tmp/ref && /tmp/ref/bin/pip install snapdir==1.12.0`)")
        if os.environ.get("CI"):
            pytest.fail(msg + "; CI is set, so a missing reference is a failure")
        pytest.skip(msg)
    return exe


def _run(root: str | os.PathLike[str], what: str, opts: Mapping[str, object], *,
         cwd: str | os.PathLike[str] | None = None,
         env: Mapping[str, str] | None = None, timeout: float = TIMEOUT) -> str:
    exe = require_reference()
    full_env = dict(os.environ)
    if env is not None:
        full_env.update(env)
    proc = subprocess.run(
        [exe, "-I", "-c", _SCRIPT, os.fspath(root), what, json.dumps(dict(opts))],
        capture_output=True, cwd=cwd, env=full_env, timeout=timeout, check=False,
    )
    try:
        out = json.loads(proc.stdout.decode("utf-8"))
    except ValueError:
        raise AssertionError(
            f"reference {what} of {root} produced no result (exit {proc.returncode}): "
            f"stdout={proc.stdout[-500:]!r} stderr={proc.stderr[-2000:]!r}") from None
    if "error" in out:
        raise ReferenceError(f"reference {what} of {root}: {out['error']}")
    return str(out["ok"])


def _opts(no_follow: bool, absolute: bool, exclude: Sequence[str]) -> dict[str, object]:
    opts: dict[str, object] = {}
    if no_follow:
        opts["no_follow"] = True
    if absolute:
        opts["absolute"] = True
    if exclude:
        opts["exclude"] = list(exclude)
    return opts


def ref_manifest(root: str | os.PathLike[str], *, no_follow: bool = False,
                 absolute: bool = False, exclude: Sequence[str] = (),
                 cwd: str | os.PathLike[str] | None = None) -> str:
    """The reference manifest text of ``root``, with its trailing newline.

    (The binding's ``Manifest.raw`` omits the final newline that the manifest text, and so
    the snapshot id, includes.)
    """
    raw = _run(root, "manifest", _opts(no_follow, absolute, exclude), cwd=cwd)
    return raw + "\n" if raw and not raw.endswith("\n") else raw


def ref_id(root: str | os.PathLike[str], *, no_follow: bool = False, absolute: bool = False,
           exclude: Sequence[str] = (), cwd: str | os.PathLike[str] | None = None) -> str:
    """The reference snapshot id of ``root`` (64 lowercase hex)."""
    return _run(root, "id", _opts(no_follow, absolute, exclude), cwd=cwd).strip()


def ref_push(root: str | os.PathLike[str], store: str, *,
             env: Mapping[str, str] | None = None, timeout: float = 120) -> str:
    """Push ``root`` to ``store`` (e.g. ``s3://bucket/prefix``) with the reference; its id.

    ``env`` is laid over ``os.environ``: give it ``AWS_ENDPOINT_URL`` and credentials for an
    S3-compatible server, and ``HOME``/``XDG_CACHE_HOME`` to keep its cache out of the way.
    """
    return _run(root, "push", {"store": store}, env=env, timeout=timeout).strip()


def ref_pull(snapshot_id: str, store: str, dest: str | os.PathLike[str], *,
             env: Mapping[str, str] | None = None, timeout: float = 120) -> None:
    """Pull ``snapshot_id`` from ``store`` into ``dest`` with the reference."""
    _run(dest, "pull", {"id": snapshot_id, "store": store}, env=env, timeout=timeout)


__all__ = ["DEFAULT_REFERENCE_PYTHON", "ENV_VAR", "ReferenceError", "ref_id", "ref_manifest",
           "ref_pull", "ref_push", "reference_python", "require_reference"]


if __name__ == "__main__":  # pragma: no cover - manual use: python tests/reference.py DIR
    import sys

    sys.stdout.write(ref_manifest(Path(sys.argv[1])))

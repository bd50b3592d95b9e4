"""Shared helpers for the feature tests (issue 6): the transfer tests' ``cli`` fixture and
tree helpers, reused, plus direct access to the objects behind an S3 store.

``tests/transfer/conftest.py`` is loaded by path under its own module name, so that it does
not collide with the other ``conftest`` modules.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import blake3

_NAME = "snapdir_tests_transfer_conftest"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        _NAME, Path(__file__).resolve().parent.parent / "transfer" / "conftest.py")
    assert _spec is not None
    assert _spec.loader is not None
    _mod = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _mod
    _spec.loader.exec_module(_mod)
_transfer = sys.modules[_NAME]

Cli = _transfer.Cli
Run = _transfer.Run
cli = _transfer.cli
make_tree = _transfer.make_tree
tree_bytes = _transfer.tree_bytes

__all__ = ["Cli", "Run", "blake3_hex", "cli", "json_lines", "make_tree", "object_key",
           "s3_put", "sample_tree", "tree_bytes"]


def blake3_hex(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def object_key(digest: str) -> str:
    """1.x layout: .objects/<3>/<3>/<3>/<rest>."""
    return f".objects/{digest[:3]}/{digest[3:6]}/{digest[6:9]}/{digest[9:]}"


def json_lines(out: str) -> list[dict[str, Any]]:
    """Every stdout line parsed as one JSON object (fails on any other line)."""
    lines = [ln for ln in out.splitlines() if ln.strip()]
    objs = [json.loads(ln) for ln in lines]
    assert all(isinstance(o, dict) for o in objs), out
    return objs


def s3_put(seaweedfs: Any, uri: str, key: str, data: bytes) -> None:
    """Overwrite ``key`` under the store ``uri`` directly (behind snapdir's back)."""
    import obstore
    from obstore.store import S3Store

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    store = S3Store(bucket, endpoint=seaweedfs.endpoint, region=seaweedfs.region,
                    access_key_id=seaweedfs.access_key,
                    secret_access_key=seaweedfs.secret_key,
                    virtual_hosted_style_request=False, client_options={"allow_http": True})
    obstore.put(store, f"{prefix}/{key}" if prefix else key, data)


def s3_delete(seaweedfs: Any, uri: str, key: str) -> None:
    """Delete ``key`` under the store ``uri`` directly (behind snapdir's back)."""
    import obstore
    from obstore.store import S3Store

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    store = S3Store(bucket, endpoint=seaweedfs.endpoint, region=seaweedfs.region,
                    access_key_id=seaweedfs.access_key,
                    secret_access_key=seaweedfs.secret_key,
                    virtual_hosted_style_request=False, client_options={"allow_http": True})
    obstore.delete(store, f"{prefix}/{key}" if prefix else key)


def sample_tree(root: Path, shards: int = 4, per_shard: int = 3) -> dict[str, bytes]:
    """``shard-NN/part-M.bin`` with distinct random contents, plus a small ``meta.json``."""
    files = {f"shard-{i:02d}/part-{j}.bin": os.urandom(2000 + 101 * i + j)
             for i in range(shards) for j in range(per_shard)}
    files["meta.json"] = b'{"shards": %d}\n' % shards
    make_tree(root, files)
    return files

"""Helpers for the reliability tests: trees, invariant checks, the shared modules."""

from __future__ import annotations

import importlib.util
import os
import random
import sys
from pathlib import Path

import blake3

_HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


_transfer = _load("_snapdir_transfer_conftest", _HERE.parent / "transfer" / "conftest.py")
_faultproxy = _load("_snapdir_faultproxy", _HERE.parent / "faultproxy.py")

Cli = _transfer.Cli
Run = _transfer.Run
make_tree = _transfer.make_tree
FaultProxy = _faultproxy.FaultProxy
KINDS = _faultproxy.KINDS

TMP = ".snapdir-tmp-"


# --- data ---------------------------------------------------------------------------------


def small_tree(root: Path, n: int, seed: int, *, size: tuple[int, int] = (0, 3000),
               shared: int = 0) -> Path:
    """``n`` small files in nested dirs, deterministic from ``seed``; ``shared`` of them
    hold the same bytes in every tree (for overlap tests)."""
    rng = random.Random(seed)
    for i in range(n):
        rel = f"d{i % 17:02d}/s{i % 5}/f{i:05d}.bin"
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if i < shared:
            data = f"shared {i}\n".encode() * (i % 50)
        else:
            data = rng.randbytes(rng.randint(*size))
        p.write_bytes(data)
    return root


def big_file(path: Path, size: int, seed: int) -> Path:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    block = rng.randbytes(1 << 20)
    with open(path, "wb") as fh:
        fh.writelines(bytes([i & 0xFF]) + block[1:] for i in range(size >> 20))
        fh.write(block[: size & ((1 << 20) - 1)])
    return path


# --- invariants -----------------------------------------------------------------------------


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def b3_file(path: Path) -> str:
    h = blake3.blake3()
    if path.stat().st_size:
        h.update_mmap(str(path))
    return h.hexdigest()


def _digest_of(path: Path, base: Path) -> str:
    return "".join(path.relative_to(base).parts)


def check_content_addressed(root: Path) -> int:
    """Every object/manifest file under ``root`` (a store or cache) hashes to its name;
    temp files are ignored. Returns how many were checked."""
    n = 0
    for sub in (".objects", ".manifests"):
        base = root / sub
        if not base.exists():
            continue
        for p in base.rglob("*"):
            if not p.is_file() or p.name.startswith((TMP, ".tmp-")):
                continue
            assert b3_file(p) == _digest_of(p, base), f"{p} does not hash to its name"
            n += 1
    return n


def check_store_manifests_complete(root: Path) -> int:
    """Every manifest in a file store has all its objects. Returns the manifest count."""
    from snapdir.core.manifest import parse
    from snapdir.stores.base import object_key

    n = 0
    base = root / ".manifests"
    if not base.exists():
        return 0
    for p in base.rglob("*"):
        if not p.is_file() or p.name.startswith(".tmp-"):
            continue
        m = parse(p.read_bytes())
        missing = [d for d in m.object_digests() if not (root / object_key(d)).is_file()]
        assert not missing, f"manifest {p} in the store lacks {len(missing)} objects"
        n += 1
    return n


def check_destination(dest: Path, manifest_bytes: bytes) -> None:
    """No file under its final name differs from the manifest; temp files are allowed;
    nothing foreign appears."""
    from snapdir.core.manifest import parse

    m = parse(manifest_bytes)
    files = {e.path[2:]: e.checksum for e in m.files()}
    dirs = {e.path[2:].rstrip("/") for e in m.dirs()}
    if not dest.exists():
        return
    for p in dest.rglob("*"):
        rel = str(p.relative_to(dest))
        if p.name.startswith(TMP):
            continue
        if p.is_dir() and not p.is_symlink():
            assert rel in dirs, f"unexpected directory {rel} in the destination"
            continue
        assert rel in files, f"unexpected file {rel} in the destination"
        assert b3_file(p) == files[rel], f"{rel} is under its final name with wrong bytes"


def env_without_snapdir() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SNAPDIR_")}

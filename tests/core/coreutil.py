"""Helpers for tests/core: build real trees, and an independent model of the manifest.

``model_manifest`` follows FORMAT.md directly (it shares no code with snapdir): file lines
carry the checksum of their bytes, a directory's checksum is the hash of its direct
children's checksums sorted and deduplicated, its size the sum of its children's sizes;
lines are sorted by the UTF-8 bytes of the path.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import blake3

try:  # the codec is moving from snapdir/manifest.py to snapdir/core/manifest.py
    from snapdir.core import manifest as manifest_mod
except ImportError:  # pragma: no cover
    from snapdir import manifest as manifest_mod  # type: ignore[no-redef]

from snapdir.snapshot import ManifestOptions, build_manifest

EMPTY_B3 = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def b3k(context: str) -> Callable[[bytes], str]:
    return lambda data: blake3.blake3(data, derive_key_context=context).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class F:
    """A file as the manifest shows it: mode, the bytes hashed, the SIZE field."""

    mode: int
    data: bytes
    size: int | None = None  # manifest SIZE when it differs from len(data) (links)


def model_manifest(files: Mapping[str, F], dirs: Mapping[str, int],
                   hexfn: Callable[[bytes], str] = b3, prefix: str = "./") -> str:
    """Expected manifest text. Keys are relative paths without './' (root dir is '')."""
    assert "" in dirs

    def parent(rel: str) -> str:
        return rel.rsplit("/", 1)[0] if "/" in rel else ""

    for rel in [*files, *dirs]:
        if rel:
            assert parent(rel) in dirs, f"model: {rel!r} has no parent dir"
    lines: dict[str, str] = {}

    def dir_line(d: str) -> tuple[str, int]:
        kids: list[tuple[str, int]] = []
        for f, spec in files.items():
            if parent(f) == d:
                cs = hexfn(spec.data)
                size = len(spec.data) if spec.size is None else spec.size
                path = prefix + f
                lines[path] = f"F {spec.mode:o} {cs} {size} {path}"
                kids.append((cs, size))
        kids.extend(dir_line(c) for c in dirs if c and parent(c) == d)
        cs = hexfn("".join(sorted({k[0] for k in kids})).encode())
        size = sum(k[1] for k in kids)
        path = prefix + d + "/" if d else prefix
        lines[path] = f"D {dirs[d]:o} {cs} {size} {path}"
        return cs, size

    dir_line("")
    return "".join(lines[p] + "\n" for p in sorted(lines, key=lambda p: p.encode("utf-8")))


def write_file(path: Path | str, data: bytes, mode: int = 0o644) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)


def make_dir(path: Path | str, mode: int = 0o755) -> None:
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)


def build_tree(root: Path, files: Mapping[str, F], dirs: Mapping[str, int]) -> None:
    """Create exactly the model tree (no links) with explicit modes (umask-independent)."""
    make_dir(root, 0o700)
    for d in sorted(dirs, key=len):
        if d:
            make_dir(root / d, 0o700)
    for f, spec in files.items():
        write_file(root / f, spec.data, spec.mode)
    for d in sorted(dirs, key=len, reverse=True):  # modes last: 0o555 etc. would block us
        os.chmod(root / d if d else root, dirs[d])


def ours(root: str | os.PathLike[str], **opts: object) -> str:
    """Our manifest text of ``root``."""
    return build_manifest(os.fspath(root), ManifestOptions(**opts)).text()  # type: ignore[arg-type]


def ours_manifest(root: str | os.PathLike[str], **opts: object) -> manifest_mod.Manifest:
    return build_manifest(os.fspath(root), ManifestOptions(**opts))  # type: ignore[arg-type]


def _rich() -> tuple[dict[str, F], dict[str, int]]:
    files = {
        "a.txt": F(0o644, b"alpha\n"),
        "a/b": F(0o644, b"in a dir named like a file's prefix\n"),
        "a-b": F(0o644, b"dash\n"),
        "dup1": F(0o644, b"same bytes"),
        "sub/dup2": F(0o600, b"same bytes"),
        "sub/deeper/dup3": F(0o640, b"same bytes"),
        "empty": F(0o644, b""),
        "sub/empty2": F(0o400, b""),
        "setuid": F(0o4755, b"#!/bin/sh\necho hi\n"),
        "setgid-file": F(0o2755, b"sgid\n"),
        "sticky/x": F(0o666, b"in sticky\n"),
        "sgid/y": F(0o644, b"in setgid dir\n"),
        "with space.txt": F(0o644, b"spaces\n"),
        " lead": F(0o644, b"lead\n"),
        "trail ": F(0o644, b"trail\n"),
        "two  spaces": F(0o644, b"two\n"),
        "-dash": F(0o644, b"-\n"),
        "--": F(0o644, b"--\n"),
        "#hash": F(0o644, b"#\n"),
        "sub/#x y": F(0o644, b"# and space\n"),
        "é.txt": F(0o644, "é\n".encode()),
        "日本語/ファイル": F(0o644, "にほんご\n".encode()),
        "emoji😀": F(0o755, b"\xf0\x9f\x98\x80\n"),
        "tab\tname": F(0o644, b"tab\n"),
        "file1": F(0o644, b"1"),
        "file22": F(0o644, b"22"),
    }
    if os.geteuid() == 0:  # only root can read it back
        files["zero-mode"] = F(0o000, b"no permissions at all\n")
    dirs = {"": 0o755, "a": 0o755, "sub": 0o750, "sub/deeper": 0o700, "empty_dir": 0o755,
            "nested": 0o755, "nested/empty": 0o555, "sticky": 0o1777, "sgid": 0o2755,
            "日本語": 0o755}
    return files, dirs


RICH_FILES_FOR_REF, RICH_DIRS_FOR_REF = _rich()

"""The manifest: a pure codec, no I/O.

A manifest is one line per directory or file, ``TYPE MODE CHECKSUM SIZE PATH``, sorted by
PATH byte-wise; the snapshot id is BLAKE3 of the text (see FORMAT.md). This module turns
entries into canonical bytes and back, and builds the directory checksums (a merkle tree)
from file checksums. Everything here works on ``bytes``/``str``, never on paths or clients.

Parsing is strict by default because manifests come from stores, which are untrusted:
paths must stay under ``./``, be unique, and never put a file where a directory is.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import blake3

from ..errors import ManifestError, UsageError

FILE = "F"
DIR = "D"
MAX_LINE = 64 * 1024
MAX_SIZE = 2**63 - 1
_HEX = re.compile(r"[0-9a-f]{32,128}\Z")
_DIGITS = re.compile(r"(0|[1-9][0-9]{0,18})\Z")
_MODE = re.compile(r"[0-7]{1,4}\Z")


@dataclass(frozen=True, slots=True)
class Entry:
    """One manifest line."""

    kind: str  # FILE or DIR
    mode: int
    checksum: str
    size: int
    path: str

    @property
    def is_dir(self) -> bool:
        return self.kind == DIR

    @property
    def object_size(self) -> int | None:
        """The size of the file's object, if this line says it. A followed symlink's line
        carries the link's own ``lstat`` size and mode (777: FORMAT.md, Symlinks), not its
        target's, so for mode 777 the object's size is not known from the manifest."""
        return None if self.mode == 0o777 else self.size

    def line(self) -> str:
        return f"{self.kind} {self.mode:o} {self.checksum} {self.size} {self.path}"


def digest_hex(data: bytes) -> str:
    """Plain BLAKE3 of ``data`` (the snapshot id function)."""
    return blake3.blake3(data).hexdigest()


def snapshot_id_of(text: bytes) -> str:
    """The snapshot id of manifest bytes: BLAKE3 of the text without comments/blank lines."""
    if b"#" in text or b"\n\n" in text or text.startswith(b"\n"):
        kept = [ln for ln in text.split(b"\n") if ln and not ln.startswith(b"#")]
        text = b"\n".join(kept) + b"\n" if kept else b""
    return digest_hex(text)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed, canonical manifest. ``entries`` are sorted by path."""

    entries: tuple[Entry, ...]

    def text(self) -> str:
        # Entry.line() inlined: this runs once per file on every `snapdir id`
        return "".join([f"{e.kind} {e.mode:o} {e.checksum} {e.size} {e.path}\n"
                        for e in self.entries])

    def encode(self) -> bytes:
        return self.text().encode("utf-8")

    @property
    def id(self) -> str:
        return digest_hex(self.encode())

    def files(self) -> Iterator[Entry]:
        return (e for e in self.entries if e.kind == FILE)

    def dirs(self) -> Iterator[Entry]:
        return (e for e in self.entries if e.kind == DIR)

    def object_digests(self) -> set[str]:
        """The distinct objects (file contents) this manifest references."""
        return {e.checksum for e in self.entries if e.kind == FILE}

    def total_file_bytes(self) -> int:
        """Bytes of distinct objects, counted by file entries (links count their target)."""
        return sum(e.size for e in self.entries if e.kind == FILE)


def _fail(lineno: int, why: str) -> ManifestError:
    return ManifestError(f"manifest line {lineno}: {why}; the manifest is corrupt or not a "
                         "snapdir manifest")


def parse(data: bytes, *, strict: bool = True) -> Manifest:
    """Parse manifest bytes.

    ``strict`` (the default, for anything read from a store) also checks that every path is
    a safe relative path (``./`` prefix, no ``..``, ``.``, empty or absolute components),
    that paths are unique, that every entry's parent is a directory entry, and that the
    root ``./`` is present. Non-strict parsing accepts ``--absolute`` manifests.
    """
    entries: list[Entry] = []
    modes: dict[str, int] = {}  # one int object per distinct mode, not one per line
    # Lines one at a time (not data.split(): a list of a million bytes objects at once).
    for lineno, raw in enumerate(io.BytesIO(data), 1):
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if not raw or raw.startswith(b"#"):
            continue
        if len(raw) > MAX_LINE:
            raise _fail(lineno, f"line longer than {MAX_LINE} bytes")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _fail(lineno, "not UTF-8") from None
        parts = line.split(" ", 4)
        if len(parts) != 5:
            raise _fail(lineno, "expected 5 space-separated fields")
        kind, mode_s, checksum, size_s, path = parts
        if kind not in (FILE, DIR):
            raise _fail(lineno, f"unknown type {kind[:8]!r}")
        if not _MODE.match(mode_s):
            raise _fail(lineno, f"bad permissions {mode_s[:12]!r}")
        if not _HEX.match(checksum):
            raise _fail(lineno, "bad checksum (expected lowercase hex)")
        if not _DIGITS.match(size_s):
            raise _fail(lineno, f"bad size {size_s[:24]!r}")
        size = int(size_s)
        if size > MAX_SIZE:
            raise _fail(lineno, "size out of range")
        if "\x00" in path:
            raise _fail(lineno, "control character in path")
        mode = modes.get(mode_s)
        if mode is None:
            mode = modes[mode_s] = int(mode_s, 8)
        entries.append(Entry(kind, mode, checksum, size, path))
    if strict:
        validate_tree(entries)
    entries.sort(key=_path_key)
    return Manifest(tuple(entries))


def _path_key(e: Entry) -> str:
    return e.path


def check_relative_path(path: str, is_dir: bool) -> None:
    """Refuse a manifest path that could leave the snapshot root."""
    if path == "./":
        if not is_dir:
            raise ManifestError("manifest path './' must be a directory")
        return
    if not path.startswith("./"):
        raise ManifestError(f"manifest path {path!r} does not start with './'; refusing it")
    body = path[2:-1] if is_dir else path[2:]
    if is_dir != path.endswith("/"):
        raise ManifestError(f"manifest path {path!r}: directories end with '/', files do not")
    for part in body.split("/"):
        if part in ("", ".", ".."):
            raise ManifestError(
                f"manifest path {path!r} has an empty, '.' or '..' component; refusing it"
            )


def validate_tree(entries: Sequence[Entry]) -> None:
    """Paths are safe, unique, parents are directories, and the root is a directory."""
    kinds: dict[str, str] = {}
    for e in entries:
        check_relative_path(e.path, e.kind == DIR)
        key = e.path.rstrip("/") if e.path != "./" else "."
        if key in kinds:
            raise ManifestError(f"manifest path {e.path!r} appears twice; refusing the manifest")
        kinds[key] = e.kind
    if kinds and kinds.get(".") != DIR:
        raise ManifestError("manifest has no root './' directory entry")
    for key in kinds:
        if key == ".":
            continue
        parent = key.rsplit("/", 1)[0]
        if kinds.get(parent) != DIR:
            what = "a file" if parent in kinds else "missing"
            raise ManifestError(
                f"manifest path {key!r}: its parent {parent + '/'!r} is {what}; refusing it"
            )


# --- building ---------------------------------------------------------------------------


#: the checksum programs a manifest can be written with (``--checksum-bin``)
CHECKSUM_PROGRAMS = ("b3sum", "md5sum", "sha256sum")


def check_checksum_bin(algo: str) -> str:
    """``algo`` if it is one of ``CHECKSUM_PROGRAMS``, else a usage error."""
    if algo not in CHECKSUM_PROGRAMS:
        raise UsageError(f"unknown checksum program {algo!r}: use b3sum, md5sum or sha256sum")
    return algo


class Hasher:
    """Checksum algorithm for file and directory checksums (not for the id)."""

    def __init__(self, algo: str = "b3sum", context: str | None = None) -> None:
        check_checksum_bin(algo)
        self.algo = algo
        self.context = context if algo == "b3sum" else None

    @property
    def cache_tag(self) -> str:
        """A name for the stat cache, distinct for every algorithm/context."""
        if self.context is not None:
            return "b3k:" + digest_hex(self.context.encode())
        return self.algo

    def new(self) -> Any:
        """A fresh hash object with ``update(bytes)`` and ``hexdigest()``."""
        if self.algo == "b3sum":
            if self.context is not None:
                return blake3.blake3(derive_key_context=self.context)
            return blake3.blake3()
        import hashlib

        return hashlib.new("md5" if self.algo == "md5sum" else "sha256")

    def hex(self, data: bytes) -> str:
        h = self.new()
        h.update(data)
        return str(h.hexdigest())




@dataclass(slots=True)
class DirNode:
    """A directory being assembled: direct children, then its own line."""

    path: str
    mode: int
    files: list[Entry]
    dirs: list[DirNode]


def assemble(root: DirNode, hasher: Hasher) -> Manifest:
    """Compute directory checksums and sizes bottom-up and return the sorted manifest.

    A directory's checksum is the hash of its direct children's checksums, sorted and
    deduplicated, concatenated; its size is the sum of its direct children's sizes.
    """
    out: list[Entry] = []
    done: dict[int, Entry] = {}
    stack: list[tuple[DirNode, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if not expanded:
            stack.append((node, True))
            stack.extend((d, False) for d in node.dirs)
            continue
        children = list(node.files)
        children.extend(done.pop(id(d)) for d in node.dirs)
        sums = sorted({c.checksum for c in children})
        entry = Entry(DIR, node.mode, hasher.hex("".join(sums).encode()),
                      sum(c.size for c in children), node.path)
        done[id(node)] = entry
        out.extend(node.files)
        out.append(entry)
    out.sort(key=_path_key)
    return Manifest(tuple(out))


def root_adds_up(manifest: Manifest, hasher: Hasher) -> bool:
    """Whether the root directory's checksum is ``hasher``'s hash of its direct children's
    (FORMAT.md): a manifest made with another algorithm or BLAKE3 context does not add
    up. (A hint for messages, never a check: hand-written manifests need not add up.)"""
    root: Entry | None = None
    sums: set[str] = set()
    for e in manifest.entries:
        if e.path == "./":
            root = e
        elif "/" not in e.path[2:].rstrip("/"):
            sums.add(e.checksum)
    return root is None or root.checksum == hasher.hex("".join(sorted(sums)).encode())


def from_entries(entries: Iterable[Entry]) -> Manifest:
    return Manifest(tuple(sorted(entries, key=_path_key)))

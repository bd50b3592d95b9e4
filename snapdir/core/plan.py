"""Pure planning: what to send or fetch, given what is known. No I/O here."""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from .manifest import Manifest, from_entries


@dataclass(frozen=True, slots=True)
class UploadPlan:
    """``upload``: certainly missing; ``check``: unknown, ask the store (HEAD) first;
    ``skip``: known present (a manifest in the store references it, or a listing showed it)."""

    upload: tuple[str, ...]
    check: tuple[str, ...]
    skip: int


def plan_upload(objects: Iterable[str], known_present: Collection[str],
                listed: Collection[str] | None) -> UploadPlan:
    """Decide per distinct object.

    ``listed`` is the complete set of objects in the store when a listing was cheap enough
    to finish, else None (then every object not known present is checked).
    """
    upload: list[str] = []
    check: list[str] = []
    skip = 0
    for d in sorted(set(objects)):
        if d in known_present or (listed is not None and d in listed):
            skip += 1
        elif listed is not None:
            upload.append(d)
        else:
            check.append(d)
    return UploadPlan(tuple(upload), tuple(check), skip)


def plan_fetch(objects: Iterable[str], cached: Collection[str]) -> tuple[str, ...]:
    """Distinct objects not in the local cache, each once."""
    return tuple(sorted({d for d in objects if d not in cached}))


def select(manifest: Manifest, patterns: Sequence[str]) -> Manifest:
    """The part of ``manifest`` whose file paths match any glob in ``patterns``.

    A pattern matches a file's path relative to the snapshot root (``shard-0[0-3]/*``,
    ``*.json``), or names a directory whose whole subtree is selected (``shard-01``).
    The directories above selected files are kept (with their manifest lines) so the
    checkout has the same shape; nothing else is. Patterns that select no file of a
    snapshot that has some are refused (UsageError): a typo must not pass for a pull.
    """
    pats = [p.removeprefix("./") for p in patterns]
    keep_files = []
    for e in manifest.files():
        rel = e.path[2:]
        if any(fnmatch.fnmatchcase(rel, p) or rel.startswith(p.rstrip("/") + "/")
               for p in pats):
            keep_files.append(e)
    parents = {"./"}
    for e in keep_files:
        parts = e.path[2:].split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parents.add("./" + "/".join(parts[:i]) + "/")
    kept = [e for e in manifest.entries if e.is_dir and e.path in parents]
    if not keep_files and any(True for _ in manifest.files()):
        from ..errors import UsageError

        shown = " ".join(f"--include {p!r}" for p in patterns)
        raise UsageError(f"{shown} matches no file of the snapshot; a pattern is a glob on "
                         "paths relative to its root, where * also matches '/' "
                         "('shard-0[0-3]/*', '*.json'), or a directory's path")
    return from_entries([*kept, *keep_files])

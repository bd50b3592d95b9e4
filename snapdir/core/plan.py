"""Pure planning: what to send or fetch, given what is known. No I/O here."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass


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

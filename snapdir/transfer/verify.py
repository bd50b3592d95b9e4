"""verify: re-hash every object of a snapshot in a store (nothing is written)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from .. import settings
from ..core.manifest import Hasher
from ..errors import IntegrityError, ObjectNotFound, StoreError, VerifyFailed
from ..stores.base import Store, object_key
from .config import TransferConfig
from .fetch import check_id, context_mismatch, get_manifest, object_labels
from .pool import for_each
from .progress import Progress
from .retry import retrying


@dataclass(slots=True)
class VerifyResult:
    id: str
    objects: int = 0
    bytes: int = 0
    bad: list[str] = field(default_factory=list)


async def verify(snapshot_id: str, store: Store, *, config: TransferConfig | None = None,
                 progress: str = "auto") -> VerifyResult:
    """Raise VerifyFailed naming every missing or corrupt object; else the counts."""
    cfg = config or TransferConfig()
    sid = check_id(snapshot_id)
    manifest = await get_manifest(store, sid, cfg)
    labels = object_labels(manifest)
    hasher = Hasher("b3sum", settings.manifest_context())
    result = VerifyResult(id=sid, objects=len(labels))
    failures: list[BaseException] = []

    async def check(digest: str, shown: list[int]) -> int:
        h = hasher.new()
        n = 0
        async for chunk in store.get(object_key(digest)):
            h.update(chunk)
            n += len(chunk)
            shown[0] += len(chunk)
            prog.add(0, len(chunk))
        actual = h.hexdigest()
        if actual != digest:
            raise IntegrityError(f"object {digest} (for {labels[digest][0]}) is corrupt: its "
                                 f"bytes hash to {actual}", key=object_key(digest),
                                 expected=digest, actual=actual)
        return n

    prog = Progress("verify", progress, files_total=len(labels),
                    bytes_total=sum(size for _, size in labels.values()))
    async with prog:

        async def one(digest: str) -> None:
            shown = [0]  # bytes already counted as they came (a retry counts them again)
            try:
                n = await retrying(partial(check, digest, shown), cfg)
            except ObjectNotFound:
                failures.append(ObjectNotFound(
                    f"object {digest} (for {labels[digest][0]}) is missing", object_key(digest)))
                result.bad.append(digest)
                return
            except (IntegrityError, StoreError) as exc:
                failures.append(exc)
                result.bad.append(digest)
                return
            result.bytes += n
            prog.add(1, n - shown[0])

        await for_each(labels, one, cfg.jobs)
    if failures:
        if len(result.bad) == len(labels) and isinstance(failures[0], IntegrityError) and all(
                isinstance(f, IntegrityError) for f in failures):
            better = context_mismatch(manifest, hasher, sid, failures[0])
            if better is not None:
                raise VerifyFailed(str(better), [better], result)
        first = failures[0]
        raise VerifyFailed(f"snapshot {sid} in {store.uri}: {len(failures)} of "
                           f"{len(labels)} objects failed verification; first: {first}; "
                           "repair the store from a good copy with `snapdir push --force`",
                           failures, result)
    return result

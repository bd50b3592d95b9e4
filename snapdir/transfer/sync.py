"""sync: copy a snapshot between stores without a local checkout.

Streaming and verified: every object is hashed on its way through and only a matching
object is completed at the destination; only the objects the destination lacks are sent;
the manifest goes last.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial

from .. import settings
from ..core.manifest import Hasher
from ..errors import IntegrityError, StoreError, StoreUnavailable
from ..stores.base import Chunk, Store, manifest_key, object_key
from .cache import LocalCache
from .config import TransferConfig
from .fetch import check_id, context_mismatch, get_manifest, object_labels
from .pool import SendGates, for_each
from .progress import ObjectBytes, Progress
from .push import plan_push
from .retry import retrying


@dataclass(slots=True)
class SyncResult:
    id: str
    objects: int = 0
    objects_sent: int = 0
    bytes_sent: int = 0
    already_present: bool = False
    #: revision records of the id copied along (see ``history.copy_records``)
    records_copied: int = 0
    seconds: float = 0.0


def _bad(src: Store, digest: str, actual: str, label: str) -> IntegrityError:
    return IntegrityError(f"object {digest} (for {label}) in {src.uri} is corrupt: its bytes "
                          f"hash to {actual}; not copied", key=object_key(digest),
                          expected=digest, actual=actual)


async def _verified(src: Store, digest: str, size: int, hasher: Hasher, label: str,
                    on_bytes: Callable[[int], None]) -> AsyncIterator[Chunk]:
    """The object's bytes; raises before the last chunk if they do not hash to ``digest``.
    ``on_bytes(n)`` is told of each chunk handed on (progress)."""
    h = hasher.new()
    seen = 0
    pending: Chunk | None = None
    async for chunk in src.get(object_key(digest)):
        if pending is not None:
            on_bytes(len(pending))
            yield pending
        h.update(chunk)
        seen += len(chunk)
        pending = chunk
    if seen != size:
        raise StoreUnavailable(f"{object_key(digest)}: truncated body from {src.uri}",
                               object_key(digest))
    actual = str(h.hexdigest())
    if actual != digest:
        raise _bad(src, digest, actual, label)
    if pending is not None:
        on_bytes(len(pending))
        yield pending


def _ignore(n: int) -> None:
    pass


async def copy_object(src: Store, dst: Store, digest: str, hint: int, label: str,
                      hasher: Hasher, config: TransferConfig,
                      on_bytes: Callable[[int], None] = _ignore) -> int:
    key = object_key(digest)
    data: bytes | None = None
    if hint < config.small_object_limit:
        # whole in one request only if it is as small as the manifest says: a followed
        # symlink's line has the link's own size (and a damaged store's object may be any
        # size), and such an object read whole held all its bytes in memory at once
        data = await src.get_small(key, config.small_object_limit)
    if data is None:
        size = await src.head(key)
        if size is not None and size >= config.small_object_limit:
            await dst.put(key, _verified(src, digest, size, hasher, label, on_bytes), size)
            return size
        data = await src.get_bytes(key)
    actual = hasher.hex(data)
    if actual != digest:
        raise _bad(src, digest, actual, label)
    await dst.put_bytes(key, data)
    return len(data)


async def sync(snapshot_id: str, src: Store, dst: Store, *,
               config: TransferConfig | None = None, progress: str = "auto") -> SyncResult:
    started = time.monotonic()
    cfg = config or TransferConfig()
    sid = check_id(snapshot_id)
    manifest = await get_manifest(src, sid, cfg)
    data = manifest.encode()
    result = SyncResult(id=sid)
    labels = object_labels(manifest)
    result.objects = len(labels)
    mkey = manifest_key(sid)
    if await retrying(partial(dst.head, mkey), cfg) is not None:
        result.already_present = True
        result.records_copied = await _copy_history(src, dst, sid)
        result.seconds = time.monotonic() - started
        return result
    cache = LocalCache(settings.object_cache_dir())
    plan = await plan_push(dst, set(labels), [], cache, cfg)
    todo = [(d, True) for d in plan.check] + [(d, False) for d in plan.upload]
    hasher = Hasher("b3sum", settings.manifest_context())

    gates = SendGates(cfg)  # as push holds them
    async with Progress("sync", progress, files_total=len(todo),
                        bytes_total=sum(labels[d][1] for d, _ in todo)) as prog:

        async def one(item: tuple[str, bool]) -> None:
            digest, check = item
            if check and await retrying(partial(dst.head, object_key(digest)),
                                        cfg) is not None:
                prog.add(1, labels[digest][1])  # already there: counts as done
                return
            path, hint = labels[digest]
            shown = ObjectBytes(prog)  # a large object's parts as they go

            async def attempt() -> int:
                shown.restart()
                return await copy_object(src, dst, digest, hint, path, hasher, cfg,
                                         shown.add)

            async with gates.gate(hint):
                n = await retrying(attempt, cfg)
            result.objects_sent += 1
            result.bytes_sent += n
            shown.done(n)

        try:
            await for_each(todo, one, cfg.jobs)
        except IntegrityError as exc:
            if (better := context_mismatch(manifest, hasher, sid, exc)) is not None:
                raise better from None
            raise
    await retrying(partial(dst.put_bytes, mkey, data), cfg)
    result.records_copied = await _copy_history(src, dst, sid)
    result.seconds = time.monotonic() - started
    return result


async def _copy_history(src: Store, dst: Store, sid: str) -> int:
    """The id's revision records copied along; the snapshot is in place either way, so a
    store that cannot take them is a warning, not a failed sync."""
    from ..history import copy_records, warn

    try:
        return await copy_records(src, dst, sid)
    except StoreError as exc:
        warn(f"the history of {sid} was not copied to {dst.uri}: {exc}")
        return 0

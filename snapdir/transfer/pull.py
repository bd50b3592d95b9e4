"""pull: objects go straight into the destination, verified; the cache is used when it
already holds them and filled by reflink only (see ``pull``)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio

from .. import settings
from ..core.manifest import Hasher
from ..core.plan import select
from ..stores.base import Store
from .cache import LocalCache
from .checkout import (
    CheckoutResult,
    check_destination,
    checkout_manifest,
    matches,
    prepare_dirs,
    reflink_into,
)
from .config import TransferConfig
from .fetch import FetchResult, check_id, download_all, get_manifest, object_labels
from .progress import Progress


@dataclass(slots=True)
class PullResult:
    id: str
    fetch: FetchResult
    checkout: CheckoutResult
    seconds: float = 0.0


async def checkout(snapshot_id: str, dest: str | Path, *, delete: bool = False,
                   include: Sequence[str] = ()) -> CheckoutResult:
    """Materialise a snapshot already in the local cache (see ``fetch``) under ``dest``."""
    from ..errors import ObjectNotFound, UsageError

    if include and delete:
        raise UsageError("--delete with --include would remove every path not included; "
                         "use one or the other")

    sid = check_id(snapshot_id)
    check_destination(Path(dest), delete)
    cache = LocalCache(settings.object_cache_dir())
    manifest = cache.load_manifest(sid)
    if manifest is None:
        raise ObjectNotFound(f"snapshot {sid} is not in the local cache; run `snapdir fetch "
                             f"--id {sid}` or `snapdir pull` first")
    if include:
        manifest = select(manifest, include)
    missing = [d for d in manifest.object_digests() if not cache.has_object(d)]
    if missing:
        raise ObjectNotFound(f"snapshot {sid}: {len(missing)} objects are missing from the "
                             f"local cache (e.g. {missing[0]}); run `snapdir fetch` first")
    hasher = Hasher("b3sum", settings.manifest_context())
    return await anyio.to_thread.run_sync(partial(
        checkout_manifest, manifest, Path(dest), cache.object_path, delete=delete,
        hasher=hasher))


async def pull(snapshot_id: str, store: Store, dest: str | Path, *,
               config: TransferConfig | None = None, no_cache: bool = False,
               delete: bool = False, progress: str = "auto",
               include: Sequence[str] = ()) -> PullResult:
    """Materialise ``snapshot_id`` from ``store`` under ``dest``, every byte verified.

    Each distinct object is written once: one found in the local cache is checked out from
    there; one already in place under ``dest`` is left alone; any other is downloaded
    straight to its first path (temp name, verified, renamed), other paths with the same
    bytes are copied from it. Downloaded objects are added to the cache by reflink where
    the filesystem can share blocks, never by a second full copy: a training node holds
    one copy of its dataset. ``no_cache`` neither reads nor fills the object cache.
    """
    from ..errors import UsageError

    started = time.monotonic()
    cfg = config or TransferConfig()
    sid = check_id(snapshot_id)
    if include and delete:
        raise UsageError("--delete with --include would remove every path not included; "
                         "use one or the other")
    target = Path(dest)
    cache = LocalCache(settings.object_cache_dir())
    manifest = await get_manifest(store, sid, cfg, cache)
    if include:
        manifest = select(manifest, include)
    hasher = Hasher("b3sum", settings.manifest_context())
    labels = object_labels(manifest)
    await anyio.to_thread.run_sync(prepare_dirs, manifest, target, delete)
    modes = {e.path: e.mode for e in manifest.files()}
    source: dict[str, Path] = {}
    placed: set[str] = set()
    kept: set[str] = set()

    def plan() -> list[tuple[str, Path, str, int, int | None]]:
        out: list[tuple[str, Path, str, int, int | None]] = []
        for d, (path, hint) in labels.items():
            final = target / path[2:]
            if not no_cache and cache.has_object(d):
                source[d] = cache.object_path(d)  # checkout leaves it alone if it matches
                continue
            source[d] = final
            if matches(final, d, hint, hasher):
                if stat.S_IMODE(os.lstat(final).st_mode) != modes[path]:
                    os.chmod(final, modes[path])
                kept.add(path)
            else:
                placed.add(path)
                out.append((d, final, path, hint, modes[path]))
        return out

    items = await anyio.to_thread.run_sync(plan)
    res = FetchResult(id=sid, files=len(modes), objects=len(labels))
    needed = {i[0] for i in items}
    res.bytes_skipped = sum(hint for d, (_, hint) in labels.items() if d not in needed)
    async with Progress("pull", progress, files_total=len(items),
                        bytes_total=sum(i[3] for i in items)) as prog:
        res.objects_fetched, res.bytes_fetched = await download_all(store, items, cfg, prog)
    if not no_cache and items:
        await anyio.to_thread.run_sync(_share_with_cache, cache, items)
    c = await anyio.to_thread.run_sync(partial(
        checkout_manifest, manifest, target, source.__getitem__, delete=delete, hasher=hasher,
        placed=placed, kept=kept))
    if not no_cache:
        from . import known
        known.remember(settings.cache_dir(), store.uri, sid)
    return PullResult(sid, res, c, time.monotonic() - started)


def _share_with_cache(cache: LocalCache, items: list[tuple[str, Path, str, int, int | None]]
                      ) -> None:
    """Reflink downloaded objects into the cache; stop at the first sign the filesystem
    cannot (ext4, tmpfs, another device): the cache is a convenience, one copy is the rule."""
    for digest, final, _label, _hint, _mode in items:
        if not reflink_into(final, cache.object_path(digest)):
            return

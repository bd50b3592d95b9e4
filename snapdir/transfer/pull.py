"""pull = fetch + checkout; ``no_cache`` streams verified objects straight into place."""

from __future__ import annotations

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
from .checkout import CheckoutResult, checkout_manifest, matches, prepare_dirs
from .config import TransferConfig
from .fetch import FetchResult, check_id, download_all, fetch, get_manifest, object_labels
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
    from ..errors import UsageError

    started = time.monotonic()
    cfg = config or TransferConfig()
    sid = check_id(snapshot_id)
    if include and delete:
        raise UsageError("--delete with --include would remove every path not included; "
                         "use one or the other")
    if not no_cache:
        f = await fetch(sid, store, config=cfg, progress=progress, include=include)
        c = await checkout(sid, dest, delete=delete, include=include)
        return PullResult(sid, f, c, time.monotonic() - started)
    # --no-cache: each distinct object is downloaded once, to its first path in dest
    target = Path(dest)
    cache = LocalCache(settings.object_cache_dir())
    manifest = await get_manifest(store, sid, cfg, cache)
    if include:
        manifest = select(manifest, include)
    hasher = Hasher("b3sum", settings.manifest_context())
    labels = object_labels(manifest)
    await anyio.to_thread.run_sync(prepare_dirs, manifest, target, delete)
    modes = {e.path: e.mode for e in manifest.files()}

    def todo() -> list[tuple[str, Path, str, int, int | None]]:
        out: list[tuple[str, Path, str, int, int | None]] = []
        for d, (path, hint) in labels.items():
            final = target / path[2:]
            if not matches(final, d, final.stat().st_size if final.is_file() else -1, hasher):
                out.append((d, final, path, hint, modes[path]))
        return out

    items = await anyio.to_thread.run_sync(todo)
    res = FetchResult(id=sid, files=len(modes), objects=len(labels))
    needed = {i[0] for i in items}
    res.bytes_skipped = sum(hint for d, (_, hint) in labels.items() if d not in needed)
    async with Progress("pull", progress, files_total=len(items),
                        bytes_total=sum(i[3] for i in items)) as prog:
        res.objects_fetched, res.bytes_fetched = await download_all(store, items, cfg, prog)
    first = {d: target / p[2:] for d, (p, _) in labels.items()}
    placed = {p for _, (p, _) in labels.items()}
    c = await anyio.to_thread.run_sync(partial(
        checkout_manifest, manifest, target, first.__getitem__, delete=delete, hasher=hasher,
        placed=placed))
    return PullResult(sid, res, c, time.monotonic() - started)

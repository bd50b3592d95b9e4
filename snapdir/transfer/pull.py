"""pull: objects go straight into the destination, verified; the cache is used when it
already holds them and filled by reflink only (see ``pull``)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path

import anyio

from .. import settings
from ..core.manifest import Entry, Hasher
from ..core.plan import select
from ..errors import (
    DestinationError,
    IntegrityError,
    ObjectNotFound,
    check_stop,
    nonempty_path,
)
from ..stores.base import Store
from .cache import TMP_PREFIX, LocalCache, open_cache, remove_partials, resumable_dirs
from .checkout import (
    CheckoutResult,
    apply_dir_modes,
    cached_object_ok,
    check_destination,
    checkout_manifest,
    in_place,
    prepare_dirs,
    reflink_into,
    remove_tree,
    resolve_destination,
)
from .config import TransferConfig
from .fetch import (
    FetchResult,
    Item,
    check_id,
    download_all,
    explain_failure,
    get_manifest,
    object_sizes,
)
from .progress import Progress
from .threads import run_interruptible, run_sync

#: Objects checked against the destination per worker-thread hop while planning a pull.
PLAN_BATCH = 256


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
    dest = resolve_destination(Path(nonempty_path(dest, "the destination")))
    check_destination(dest, delete, own=None)
    cache = open_cache()
    manifest = cache.load_manifest(sid)
    if manifest is None:
        raise ObjectNotFound(f"snapshot {sid} is not in the local cache; run `snapdir fetch "
                             f"{_store_flag(sid)} --id {sid}` or `snapdir pull` first")
    if include:
        manifest = select(manifest, include)
    sizes = object_sizes(manifest)
    hasher = Hasher("b3sum", settings.manifest_context())

    def run(stop: threading.Event) -> CheckoutResult:
        # one worker-thread job (a stat per object, then every file), told to stop between
        # objects and between files by Ctrl-C or SIGTERM
        missing = []
        for d, size in sizes.items():
            check_stop(stop)
            if not cache.usable(d, size):
                missing.append(d)
        if missing:
            n = len(missing)
            flag = _store_flag(sid)
            raise ObjectNotFound(f"snapshot {sid}: {n} object{'s are' if n > 1 else ' is'} "
                                 f"missing from the local cache (e.g. {missing[0]}); run "
                                 f"`snapdir fetch {flag} --id {sid}` first, or `snapdir pull "
                                 f"{flag} --id {sid} DIR`, which reuses the files already in "
                                 "DIR (pull keeps no second copy in the cache unless the "
                                 "filesystem has reflinks)")
        return checkout_manifest(manifest, Path(dest), cache.object_path, delete=delete,
                                 hasher=hasher, verify_sources=True, stop=stop,
                                 refetch=lambda: f"snapdir fetch {_store_flag(sid)} --id {sid}")

    return await run_interruptible(run)


def _store_flag(sid: str) -> str:
    """``--store URI`` for a command to get ``sid`` with: the store this machine last
    pushed it to or got it from (the catalog), else a placeholder to fill in."""
    import shlex
    import sqlite3

    from ..history import catalog

    cat = catalog()
    try:
        known = cat.stores_of(sid) if cat.path.is_file() else []
    except (sqlite3.Error, OSError):
        known = []
    return f"--store {shlex.quote(known[0])}" if known else "--store STORE"


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
    target = resolve_destination(Path(nonempty_path(dest, "the destination")))
    from ..stores.file import FileStore

    local = [store.root] if isinstance(store, FileStore) else []
    check_destination(target, delete, local, own=None)  # before any request
    cache = LocalCache(settings.object_cache_dir()) if no_cache else open_cache()
    # --no-cache: the manifest comes from the store too (a damaged cache cannot stop it)
    manifest = full = await get_manifest(store, sid, cfg, None if no_cache else cache)
    if include:
        manifest = select(manifest, include)
    hasher = Hasher("b3sum", settings.manifest_context())
    dirs = await run_interruptible(lambda stop: prepare_dirs(
        manifest, target, delete, local, stop=stop, resume=True))
    # Memory per file matters at millions of files: the first entry of each object (shared
    # with the manifest) and two sets of paths; no per-file Path objects, no work list.
    first: dict[str, Entry] = {}
    files = 0
    for e in manifest.files():
        files += 1
        first.setdefault(e.checksum, e)
    from_cache: set[str] = set()
    placed: set[str] = set()
    kept: set[str] = set()
    base = os.fspath(target)
    res = FetchResult(id=sid, files=files, objects=len(first))

    def plan(batch: list[Entry], stop: threading.Event) -> tuple[list[Item], int, int]:
        """Download items for ``batch``; (items, objects skipped, their bytes)."""
        out: list[Item] = []
        skipped = skipped_bytes = 0
        for e in batch:
            check_stop(stop)  # each may hash two files: Ctrl-C stops between them
            d = e.checksum
            final = os.path.join(base, e.path[2:])
            try:
                st: os.stat_result | None = os.lstat(final)
            except OSError:
                st = None
            if st is not None and in_place(Path(final), st, d, e.object_size, e.mode,
                                           hasher):
                kept.add(e.path)  # already in place
            elif (not no_cache and cache.has_object(d)
                  and cached_object_ok(cache.object_path(d), d, e.object_size, hasher)):
                from_cache.add(d)  # re-hashed just now: checkout copies it
            else:
                if not no_cache:
                    # a killed pull's partial copy into the cache (this pull downloads
                    # into the destination: a partial download there is the one it resumes)
                    cache.clean_temps(d, resume=False)
                if os.path.isdir(final) and not os.path.islink(final):
                    if not delete:
                        raise DestinationError(f"{final}: is a directory where the snapshot "
                                               "has a file; move it away or use --delete")
                    remove_tree(final)
                placed.add(e.path)
                out.append((d, final, e.path, e.size, e.mode))
                continue
            skipped += 1
            skipped_bytes += e.size
        return out, skipped, skipped_bytes

    share = [not no_cache]

    async def shared(digest: str, final: Path) -> None:
        if share[0]:
            share[0] = await run_sync(reflink_into, final, cache.object_path(digest))

    def object_path(digest: str) -> Path:
        if digest in from_cache:
            return cache.object_path(digest)
        return target / first[digest].path[2:]

    try:
        async with Progress("pull", progress, files_total=len(first),
                            bytes_total=sum(e.size for e in first.values())) as prog:

            async def items() -> AsyncIterator[Item]:
                entries = iter(first.values())
                while batch := list(islice(entries, PLAN_BATCH)):
                    # not run_sync: its shielded wait is no checkpoint, and with every
                    # object in place or cached (nothing yielded) a Ctrl-C would wait
                    # for the whole plan
                    todo, skipped, skipped_bytes = await run_interruptible(
                        partial(plan, batch))
                    res.bytes_skipped += skipped_bytes
                    prog.add(skipped, skipped_bytes)
                    for item in todo:
                        yield item

            try:
                res.objects_fetched, res.bytes_fetched = await download_all(
                    store, items(), cfg, prog, after=shared)
            except (IntegrityError, ObjectNotFound) as exc:
                if (better := await explain_failure(exc, store, full, sid, cfg)) is not None:
                    raise better from None
                raise
        c = await run_interruptible(lambda stop: checkout_manifest(
            manifest, target, object_path, delete=delete, hasher=hasher, placed=placed,
            kept=kept, prepared=dirs, stop=stop))
    except BaseException:
        # the directories were made private (0700) to be filled: a failed or stopped
        # pull (downloading or checking out) leaves them with the snapshot's modes, as a
        # finished one would
        with anyio.CancelScope(shield=True):
            await run_sync(partial(apply_dir_modes, dirs, best_effort=True))
        raise
    if resumable_dirs:  # partial downloads kept for this pull that it did not take over
        own = {os.path.join(base, e.path[2:]) for e in manifest.files()
               if "/" + TMP_PREFIX in e.path}
        await run_sync(remove_partials, target, own)
    if not no_cache:
        from . import known
        known.remember(settings.cache_dir(), store.uri, sid)
    return PullResult(sid, res, c, time.monotonic() - started)

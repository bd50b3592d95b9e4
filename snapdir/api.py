"""The Python API (sync functions and their async twins)."""

from __future__ import annotations

import os
from pathlib import Path

import anyio.to_thread

from .core.manifest import Manifest
from .snapshot import ManifestOptions, build_manifest

PathLike = str | os.PathLike[str]


def manifest(
    path: PathLike,
    *,
    follow: bool = True,
    exclude: tuple[str, ...] | list[str] = (),
    checksum_bin: str = "b3sum",
    absolute: bool = False,
    stat_cache: bool | None = None,
) -> Manifest:
    """The manifest of the directory ``path``."""
    opts = ManifestOptions(follow=follow, exclude=tuple(exclude), checksum_bin=checksum_bin,
                           absolute=absolute)
    if stat_cache is not None:
        opts = ManifestOptions(follow=follow, exclude=tuple(exclude),
                               checksum_bin=checksum_bin, absolute=absolute,
                               stat_cache=stat_cache)
    return build_manifest(Path(path), opts)


def snapshot_id(path: PathLike, *, follow: bool = True,
                exclude: tuple[str, ...] | list[str] = (),
                stat_cache: bool | None = None) -> str:
    """The snapshot id of the directory ``path`` (64 lowercase hex)."""
    return manifest(path, follow=follow, exclude=exclude, stat_cache=stat_cache).id


id = snapshot_id


async def amanifest(path: PathLike, *, follow: bool = True,
                    exclude: tuple[str, ...] | list[str] = (), checksum_bin: str = "b3sum",
                    absolute: bool = False, stat_cache: bool | None = None) -> Manifest:
    """Async twin of :func:`manifest` (hashing runs in worker threads)."""
    def run() -> Manifest:
        return manifest(path, follow=follow, exclude=exclude, checksum_bin=checksum_bin,
                        absolute=absolute, stat_cache=stat_cache)
    return await anyio.to_thread.run_sync(run)


async def asnapshot_id(path: PathLike, *, follow: bool = True,
                       exclude: tuple[str, ...] | list[str] = (),
                       stat_cache: bool | None = None) -> str:
    """Async twin of :func:`snapshot_id`."""
    return (await amanifest(path, follow=follow, exclude=exclude, stat_cache=stat_cache)).id


aid = asnapshot_id

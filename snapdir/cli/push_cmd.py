"""snapdir push [--store URI] DIR"""

from __future__ import annotations

from typing import Any

import click

from .main import run_async
from .options import (
    directory_argument,
    emit_json,
    manifest_options,
    progress_mode,
    resolve_store_uri,
    store_option,
    transfer_config,
    transfer_options,
)


@click.command("push")
@store_option
@manifest_options
@transfer_options
@directory_argument
def push_command(store: str | None, no_follow: bool, exclude: tuple[str, ...],
                 no_stat_cache: bool, jobs: int | None, quiet: bool, progress: bool,
                 as_json: bool, directory: str) -> None:
    """Push DIRECTORY to the store; print its snapshot id."""
    from ..snapshot import ManifestOptions
    from ..stores import open_store
    from ..transfer.push import push

    uri = resolve_store_uri(store)
    kw: dict[str, Any] = {"stat_cache": False} if no_stat_cache else {}
    opts = ManifestOptions(follow=not no_follow, exclude=exclude, **kw)

    async def main() -> Any:
        st = open_store(uri)
        try:
            return await push(directory, st, options=opts, config=transfer_config(jobs),
                              progress=progress_mode(quiet, progress))
        finally:
            await st.aclose()

    r = run_async(main)
    if as_json:
        emit_json({"command": "push", "id": r.id, "store": uri, "files": r.files,
                   "bytes": r.bytes, "objects": r.objects, "objects_sent": r.objects_sent,
                   "bytes_sent": r.bytes_sent, "objects_skipped": r.objects_skipped,
                   "already_present": r.already_present, "seconds": round(r.seconds, 3)})
    else:
        click.echo(r.id)

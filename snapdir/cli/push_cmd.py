"""snapdir push [--store URI] DIR"""

from __future__ import annotations

from typing import Any

import click

from .main import run_async
from .options import (
    REVISION_NAME,
    SNAPSHOT_ID,
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
@click.option("--name", default=None, type=REVISION_NAME,
              help="Revision name (default: the directory's base name).")
@click.option("--parent", "parents", multiple=True, metavar="ID", type=SNAPSHOT_ID,
              help="A snapshot this one was derived from, e.g. the dataset a model was "
              "trained on (repeatable).")
@click.option("--force", is_flag=True, help="Upload every object even if the store has it "
              "(repairs a store whose objects were damaged).")
@transfer_options
@directory_argument
def push_command(store: str | None, no_follow: bool, exclude: tuple[str, ...],
                 no_stat_cache: bool, name: str | None, parents: tuple[str, ...],
                 force: bool, jobs: int | None, quiet: bool, progress: bool, as_json: bool,
                 directory: str) -> None:
    """Push DIRECTORY to the store; print its snapshot id."""
    from ..api import apush
    from ..snapshot import ManifestOptions
    from ..stores import canonical_uri

    uri = resolve_store_uri(store)
    kw: dict[str, Any] = {"stat_cache": False} if no_stat_cache else {}
    opts = ManifestOptions(follow=not no_follow, exclude=exclude, **kw)

    async def main() -> Any:
        return await apush(directory, uri, name=name, parents=parents, options=opts,
                           config=transfer_config(jobs), progress=progress_mode(quiet, progress),
                           force=force)

    r = run_async(main)
    if as_json:
        emit_json({"command": "push", "id": r.id, "store": canonical_uri(uri), "files": r.files,
                   "bytes": r.bytes, "objects": r.objects, "objects_sent": r.objects_sent,
                   "bytes_sent": r.bytes_sent, "objects_skipped": r.objects_skipped,
                   "bytes_skipped": r.bytes_skipped,
                   "already_present": r.already_present, "seconds": round(r.seconds, 3)})
    else:
        click.echo(r.id)

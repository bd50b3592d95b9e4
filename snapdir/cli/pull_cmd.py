"""snapdir pull [--store URI] --id ID DIR"""

from __future__ import annotations

from typing import Any

import click

from .main import run_async
from .options import (
    NonEmpty,
    directory_argument,
    emit_json,
    id_option,
    progress_mode,
    resolve_store_uri,
    store_option,
    transfer_config,
    transfer_options,
)


@click.command("pull")
@store_option
@id_option
@click.option("--no-cache", is_flag=True, help="Neither read objects from the local cache "
              "nor add downloaded ones to it (pull always writes DIR directly).")
@click.option("--delete", is_flag=True, help="Make DIR an exact mirror: remove what the "
              "snapshot does not have.")
@click.option("--include", "include", multiple=True, metavar="GLOB", type=NonEmpty("a glob"),
              help="Pull only paths matching this glob (relative to the snapshot root, * "
              "also matches '/'; a directory matched by path or glob brings its subtree; "
              "repeatable; an error if any of them matches nothing).")
@transfer_options
@directory_argument
def pull_command(store: str | None, snapshot_id: str, no_cache: bool, delete: bool,
                 include: tuple[str, ...], jobs: int | None, quiet: bool, progress: bool, as_json: bool,
                 directory: str) -> None:
    """Fetch snapshot ID from the store and check it out into DIRECTORY, verified."""
    from ..api import apull
    from ..stores import canonical_uri
    from ..transfer.fetch import check_id

    sid = check_id(snapshot_id)
    uri = resolve_store_uri(store)

    async def main() -> Any:
        return await apull(sid, directory, uri, config=transfer_config(jobs),
                           no_cache=no_cache, delete=delete, include=include,
                           progress=progress_mode(quiet, progress))

    r = run_async(main)
    if as_json:
        emit_json({"command": "pull", "id": r.id, "store": canonical_uri(uri),
                   "files": r.fetch.files, "objects": r.fetch.objects,
                   "objects_fetched": r.fetch.objects_fetched,
                   "bytes_fetched": r.fetch.bytes_fetched,
                   "bytes_skipped": r.fetch.bytes_skipped, "written": r.checkout.written,
                   "unchanged": r.checkout.unchanged, "deleted": r.checkout.deleted,
                   "seconds": round(r.seconds, 3)})

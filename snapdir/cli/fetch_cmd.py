"""snapdir fetch [--store URI] --id ID"""

from __future__ import annotations

from typing import Any

import click

from .main import run_async
from .options import (
    emit_json,
    id_option,
    progress_mode,
    resolve_store_uri,
    store_option,
    transfer_config,
    transfer_options,
)


@click.command("fetch")
@store_option
@id_option
@transfer_options
def fetch_command(store: str | None, snapshot_id: str, jobs: int | None, quiet: bool,
                  progress: bool, as_json: bool) -> None:
    """Bring snapshot ID and its objects from the store into the local cache, verified."""
    from ..api import afetch
    from ..stores import canonical_uri
    from ..transfer.fetch import check_id

    sid = check_id(snapshot_id)
    uri = resolve_store_uri(store)

    async def main() -> Any:
        return await afetch(sid, uri, config=transfer_config(jobs),
                            progress=progress_mode(quiet, progress))

    r = run_async(main)
    if as_json:
        emit_json({"command": "fetch", "id": r.id, "store": canonical_uri(uri),
                   "files": r.files, "objects": r.objects, "objects_fetched": r.objects_fetched,
                   "bytes_fetched": r.bytes_fetched, "bytes_skipped": r.bytes_skipped,
                   "seconds": round(r.seconds, 3)})

"""snapdir sync --id ID --from URI --to URI"""

from __future__ import annotations

from typing import Any

import click

from .main import run_async
from .options import (
    STORE_URI,
    emit_json,
    id_option,
    progress_mode,
    transfer_config,
    transfer_options,
)


@click.command("sync")
@id_option
@click.option("--from", "src", required=True, metavar="URI", type=STORE_URI,
              help="Store to copy from.")
@click.option("--to", "dst", required=True, metavar="URI", type=STORE_URI,
              help="Store to copy to.")
@transfer_options
def sync_command(snapshot_id: str, src: str, dst: str, jobs: int | None, quiet: bool,
                 progress: bool, as_json: bool) -> None:
    """Copy snapshot ID between stores, streaming and verified, sending only what the
    destination lacks."""
    from ..stores import canonical_uri, open_store
    from ..transfer.sync import sync

    async def main() -> Any:
        a, b = open_store(src, named_by="--from"), open_store(dst, named_by="--to")
        try:
            return await sync(snapshot_id, a, b, config=transfer_config(jobs),
                              progress=progress_mode(quiet, progress))
        finally:
            await a.aclose()
            await b.aclose()

    r = run_async(main)
    if as_json:
        emit_json({"command": "sync", "id": r.id, "from": canonical_uri(src),
                   "to": canonical_uri(dst), "objects": r.objects,
                   "objects_sent": r.objects_sent,
                   "bytes_sent": r.bytes_sent, "already_present": r.already_present,
                   "records_copied": r.records_copied,
                   "seconds": round(r.seconds, 3)})
    else:
        click.echo(r.id)

"""snapdir verify [--store URI] --id ID"""

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


@click.command("verify")
@store_option
@id_option
@transfer_options
def verify_command(store: str | None, snapshot_id: str, jobs: int | None, quiet: bool,
                   progress: bool, as_json: bool) -> None:
    """Re-hash every object of snapshot ID in the store; fail naming any bad one."""
    from ..api import averify
    from ..stores import canonical_uri

    uri = resolve_store_uri(store)

    async def main() -> Any:
        return await averify(snapshot_id, uri, config=transfer_config(jobs),
                             progress=progress_mode(quiet, progress))

    from ..errors import VerifyFailed

    try:
        r = run_async(main)
    except VerifyFailed as exc:
        if as_json and exc.result is not None:  # a script gets the verdict on stdout too
            bad = exc.result
            emit_json({"command": "verify", "id": bad.id, "store": canonical_uri(uri),
                       "objects": bad.objects, "bytes": bad.bytes, "ok": False,
                       "bad": sorted(bad.bad)})
        raise
    if as_json:
        emit_json({"command": "verify", "id": r.id, "store": canonical_uri(uri),
                   "objects": r.objects, "bytes": r.bytes, "ok": True})

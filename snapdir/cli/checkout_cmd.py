"""snapdir checkout --id ID DIR"""

from __future__ import annotations

from typing import Any

import click

from .main import run_async
from .options import directory_argument, emit_json, id_option


@click.command("checkout")
@id_option
@click.option("--delete", is_flag=True, help="Make DIR an exact mirror: remove what the "
              "snapshot does not have.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Accepted as by the other transfer "
              "commands: checkout shows no progress, and writes to stderr only if it fails.")
@directory_argument
def checkout_command(snapshot_id: str, delete: bool, as_json: bool, quiet: bool,
                     directory: str) -> None:
    """Materialise snapshot ID from the local cache into DIRECTORY."""
    from ..api import acheckout

    async def main() -> Any:
        return await acheckout(snapshot_id, directory, delete=delete)

    r = run_async(main)
    if as_json:
        emit_json({"command": "checkout", "files": r.files, "written": r.written,
                   "unchanged": r.unchanged, "deleted": r.deleted})

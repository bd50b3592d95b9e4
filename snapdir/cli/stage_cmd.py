"""snapdir stage DIR"""

from __future__ import annotations

from typing import Any

import click

from .main import run_async
from .options import directory_argument, manifest_options, progress_mode, transfer_options


@click.command("stage")
@manifest_options
@transfer_options
@directory_argument
def stage_command(no_follow: bool, exclude: tuple[str, ...], no_stat_cache: bool,
                  jobs: int | None, quiet: bool, progress: bool, as_json: bool,
                  directory: str) -> None:
    """Copy DIRECTORY's objects into the local cache; print its snapshot id."""
    from ..api import astage
    from ..snapshot import ManifestOptions
    from .options import emit_json, transfer_config

    kw: dict[str, Any] = {"stat_cache": False} if no_stat_cache else {}
    opts = ManifestOptions(follow=not no_follow, exclude=exclude, **kw)

    async def main() -> Any:
        return await astage(directory, options=opts, config=transfer_config(jobs),
                            progress=progress_mode(quiet, progress))

    r = run_async(main)
    if as_json:
        emit_json({"command": "stage", "id": r.id, "files": r.files, "bytes": r.bytes,
                   "objects_sent": r.objects_sent, "seconds": round(r.seconds, 3)})
    else:
        click.echo(r.id)

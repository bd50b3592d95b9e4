"""snapdir id [DIR]  (or a manifest on stdin)"""

from __future__ import annotations

import sys

import click

from ..errors import UsageError
from .options import DIRECTORY, manifest_options


@click.command("id")
@manifest_options
@click.argument("directory", required=False, type=DIRECTORY)
def id_command(no_follow: bool, exclude: tuple[str, ...], no_stat_cache: bool,
               directory: str | None) -> None:
    """Print the snapshot id of DIRECTORY, or of the manifest given on stdin."""
    if directory is None:
        if sys.stdin.isatty():
            raise UsageError("give a DIRECTORY, or pipe a manifest on stdin "
                             "(snapdir id < manifest.txt)")
        from ..core.manifest import parse, snapshot_id_of

        data = sys.stdin.buffer.read()
        if not parse(data, strict=False).entries:  # refuse what is not a manifest
            raise UsageError("stdin holds no manifest entries; give a DIRECTORY, or "
                             "pipe one in: snapdir manifest DIR | snapdir id")
        click.echo(snapshot_id_of(data))
        return
    from ..snapshot import ManifestOptions
    from ..transfer.progress import hashed_id

    kw = {"stat_cache": False} if no_stat_cache else {}
    opts = ManifestOptions(follow=not no_follow, exclude=exclude, **kw)  # type: ignore[arg-type]
    click.echo(hashed_id(directory, opts))

"""snapdir manifest DIR"""

from __future__ import annotations

import sys

import click

from ..core.manifest import CHECKSUM_PROGRAMS
from .options import directory_argument, manifest_options


@click.command("manifest")
@manifest_options
@click.option("--checksum-bin", type=click.Choice(CHECKSUM_PROGRAMS),
              default="b3sum", show_default=True, help="Checksum for files and directories.")
@click.option("--absolute", is_flag=True, help="Write absolute paths instead of './'.")
@directory_argument
def manifest_command(no_follow: bool, exclude: tuple[str, ...], no_stat_cache: bool,
                     checksum_bin: str, absolute: bool, directory: str) -> None:
    """Print the manifest of DIRECTORY."""
    from ..snapshot import ManifestOptions, build_manifest

    kw = {"stat_cache": False} if no_stat_cache else {}
    opts = ManifestOptions(follow=not no_follow, exclude=exclude, checksum_bin=checksum_bin,
                           absolute=absolute, **kw)  # type: ignore[arg-type]
    sys.stdout.write(build_manifest(directory, opts).text())
    sys.stdout.flush()

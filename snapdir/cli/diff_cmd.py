"""snapdir diff ID_A ID_B  /  snapdir status --id ID DIR"""

from __future__ import annotations

import sys
from typing import Any

import click

from .main import run_async
from .options import (
    SNAPSHOT_ID,
    directory_argument,
    emit_json,
    id_option,
    manifest_options,
    resolve_store_uri,
    store_option,
)


def _report(changes: list[Any], as_json: bool, exit_code: bool) -> None:
    for c in changes:
        if as_json:
            emit_json(c.to_json())
        else:
            click.echo(f"{c.change.value} {c.path}")
    if exit_code and changes:
        sys.exit(1)


async def _manifest(sid: str, uri: str) -> Any:
    from .. import settings
    from ..stores import open_store
    from ..transfer.cache import LocalCache
    from ..transfer.config import TransferConfig
    from ..transfer.fetch import check_id, get_manifest

    sid = check_id(sid)
    cache = LocalCache(settings.object_cache_dir())
    m = cache.load_manifest(sid)
    if m is not None:
        return m
    st = open_store(uri)
    try:
        return await get_manifest(st, sid, TransferConfig(), cache)
    finally:
        await st.aclose()


@click.command("diff")
@store_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when there are differences.")
@click.argument("id_a", metavar="ID_A", type=SNAPSHOT_ID)
@click.argument("id_b", metavar="ID_B", type=SNAPSHOT_ID)
def diff_command(store: str | None, as_json: bool, exit_code: bool, id_a: str,
                 id_b: str) -> None:
    """Paths added (A), deleted (D) and modified (M) from ID_A to ID_B (manifests only)."""
    from ..core.diff import diff

    uri = resolve_store_uri(store)

    async def main() -> Any:
        return await _manifest(id_a, uri), await _manifest(id_b, uri)

    a, b = run_async(main)
    _report(list(diff(a, b)), as_json, exit_code)


@click.command("status")
@store_option
@id_option
@manifest_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per change.")
@click.option("--exit-code", is_flag=True, help="Exit 1 when there are differences.")
@directory_argument
def status_command(store: str | None, snapshot_id: str, no_follow: bool,
                   exclude: tuple[str, ...], no_stat_cache: bool, as_json: bool,
                   exit_code: bool, directory: str) -> None:
    """What DIRECTORY changed relative to snapshot ID (uses the stat cache)."""
    from ..core.diff import diff
    from ..snapshot import ManifestOptions, build_manifest

    uri = resolve_store_uri(store)
    kw: dict[str, Any] = {"stat_cache": False} if no_stat_cache else {}
    opts = ManifestOptions(follow=not no_follow, exclude=exclude, **kw)

    async def main() -> Any:
        return await _manifest(snapshot_id, uri)

    base = run_async(main)
    _report(list(diff(base, build_manifest(directory, opts))), as_json, exit_code)

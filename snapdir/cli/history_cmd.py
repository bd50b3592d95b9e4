"""snapdir ancestors / revisions / locations"""

from __future__ import annotations

import datetime
from typing import Any

import click

from .main import run_async
from .options import REVISION_NAME, SNAPSHOT_ID, emit_json, resolve_store_uri, store_option


def _when(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@click.command("ancestors")
@store_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per ancestor.")
@click.argument("snapshot_id", metavar="ID", type=SNAPSHOT_ID)
def ancestors_command(store: str | None, as_json: bool, snapshot_id: str) -> None:
    """Print the ancestors of ID, nearest first, one per line (across stores)."""
    from ..api import aancestors
    from ..stores import canonical_uri

    uri = resolve_store_uri(store)

    async def main() -> Any:
        return await aancestors(snapshot_id, uri)

    for a in run_async(main):
        if as_json:
            rec = a.revisions[-1] if a.revisions else None
            emit_json({"id": a.id, "depth": a.depth,
                       "store": a.store and canonical_uri(a.store),
                       "name": rec.name if rec else None,
                       "time": _when(rec.time) if rec else None,
                       "source": f"{rec.host}:{rec.path}" if rec else None,
                       "parents": [p.id for p in rec.parents] if rec else []})
        else:
            click.echo(a.id)


@click.command("revisions")
@store_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per revision.")
@click.argument("name", type=REVISION_NAME)
def revisions_command(store: str | None, as_json: bool, name: str) -> None:
    """Print the ids pushed under NAME to the store, newest first."""
    from ..api import arevisions
    from ..stores import canonical_uri

    uri = resolve_store_uri(store)

    async def main() -> Any:
        return await arevisions(name, uri)

    ids = run_async(main)
    if not ids:  # stdout stays empty for scripts; a typo in NAME still shows
        click.echo(f"snapdir: note: no revisions named {name!r} in "
                   f"{canonical_uri(uri)}", err=True)
    for sid in ids:
        if as_json:
            emit_json({"id": sid, "name": name, "store": canonical_uri(uri)})
        else:
            click.echo(sid)


@click.command("locations")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per location.")
@click.argument("snapshot_id", metavar="ID", type=SNAPSHOT_ID)
def locations_command(as_json: bool, snapshot_id: str) -> None:
    """Print where this machine pushed, pulled, fetched, staged or checked out ID."""
    from ..api import locations

    found = locations(snapshot_id)  # checked (and lower-cased) there
    if not found:
        click.echo(f"snapdir: note: this machine has not pushed, pulled, fetched, staged or "
                   f"checked out {snapshot_id.lower()}", err=True)
    for loc in found:
        if as_json:
            emit_json({"id": loc.id, "kind": loc.kind, "location": loc.location,
                       "store": loc.store, "time": _when(loc.time)})
        else:
            click.echo(f"{loc.location}\t{loc.kind}\t{loc.store or '-'}\t{_when(loc.time)}")

"""snapdir defaults"""

from __future__ import annotations

import click

from .options import emit_json, store_option


@click.command("defaults")
@store_option
@click.option("-j", "--jobs", type=int, default=None, help="Show the effect of --jobs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per setting.")
def defaults_command(store: str | None, jobs: int | None, as_json: bool) -> None:
    """Every setting, its value and where it came from (flag, environment, default)."""
    from ..settings import describe

    for s in describe(store, jobs):
        if as_json:
            emit_json({"name": s.name, "value": s.value, "source": s.source})
        else:
            click.echo(f"{s.name:<18} {s.value}  [{s.source}]")

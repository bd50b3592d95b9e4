"""snapdir defaults"""

from __future__ import annotations

import click

from .options import JOBS, emit_json, store_option


@click.command("defaults")
@store_option
@click.option("-j", "--jobs", type=int, default=None, help="Show the effect of --jobs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per setting.")
def defaults_command(store: str | None, jobs: int | None, as_json: bool) -> None:
    """Every setting, its value and where it came from (flag, environment, default).

    A value that commands would refuse is marked INVALID (with "problem" in --json), its
    error goes to stderr, and the exit status is 2.
    """
    from ..errors import UsageError
    from ..settings import describe

    jobs_problem = None
    if jobs is not None:  # what -j of the transfer commands would say about it
        ctx = click.get_current_context()
        param = next(p for p in ctx.command.params if p.name == "jobs")
        try:
            JOBS.convert(jobs, param, ctx)
        except click.BadParameter as exc:
            jobs_problem = " ".join(exc.format_message().split())
    problems: list[str] = []
    for s in describe(store, jobs, jobs_problem):
        if as_json:
            out = {"name": s.name, "value": s.value, "source": s.source}
            if s.problem:
                out["problem"] = s.problem
            emit_json(out)
        else:
            flag = "  INVALID" if s.problem else ""
            click.echo(f"{s.name:<18} {s.value}  [{s.source}]{flag}")
        if s.problem:
            problems.append(s.problem)
    problems = list(dict.fromkeys(problems))  # the store's may be the data directory's
    if problems:
        for p in problems[:-1]:
            click.echo(f"snapdir: usage error: {p}", err=True)
        raise UsageError(problems[-1])

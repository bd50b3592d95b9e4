"""Options shared by several verbs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..errors import UsageError
from ..settings import MAX_JOBS

F = TypeVar("F", bound=Callable[..., Any])


def _refuse_empty(value: Any, param: click.Parameter | None, what: str) -> None:
    """An explicitly empty argument (``""``, most often an unset shell variable) is a usage
    error: never read as "unset", the current directory or an empty match."""
    if value != "":
        return
    name = "the value"
    if isinstance(param, click.Option):
        name = max(param.opts, key=len)
    elif param is not None:
        name = param.human_readable_name
    raise UsageError(f"{name} is empty: give {what} (an unset shell variable?)")


class NonEmptyPath(click.Path):
    """A path argument that may not be the empty string (``""`` would mean the current
    directory, or ``/`` to the scanner)."""

    def __init__(self, what: str = "a directory") -> None:
        super().__init__(file_okay=True, dir_okay=True, path_type=str)
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        _refuse_empty(value, param, self.what)
        return super().convert(value, param, ctx)


class NonEmpty(click.types.StringParamType):
    """A string argument or option that may not be ``""``: an empty ``--store`` is not
    "the default store", an empty ``--name`` not "the directory's name", an empty
    ``--include`` not "nothing"."""

    def __init__(self, what: str) -> None:
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        _refuse_empty(text, param, self.what)
        return text


#: the type of every DIRECTORY argument
DIRECTORY = NonEmptyPath()
#: the type of every store URI (``--store``, ``--from``, ``--to``)
STORE_URI = NonEmpty("s3://bucket/prefix, file:///path or a directory")
#: the type of every snapshot id (``--id``, ``--parent``, ID arguments)
SNAPSHOT_ID = NonEmpty("a snapshot id")
#: the type of every revision name (``--name``, NAME)
REVISION_NAME = NonEmpty("a revision name")
#: the type of ``-j/--jobs`` (``snapdir defaults`` asks it too)
JOBS = click.IntRange(1, MAX_JOBS)


def manifest_options(fn: F) -> F:
    """The flags that decide what a directory's manifest is."""
    fn = click.option("--no-follow", is_flag=True, help="Leave symlinks out instead of "
                      "following them.")(fn)
    fn = click.option("--exclude", "exclude", multiple=True, metavar="REGEX",
                      type=NonEmpty("a regular expression"),
                      help="Leave out entries whose absolute path matches this extended "
                      "regex (repeatable); an excluded directory's subtree goes too.")(fn)
    fn = click.option("--no-stat-cache", is_flag=True, help="Hash every file; do not read "
                      "or write the stat cache (env SNAPDIR_NO_STAT_CACHE=1).")(fn)
    return fn


def directory_argument(fn: F) -> F:
    return click.argument("directory", type=DIRECTORY)(fn)


def store_option(fn: F) -> F:
    return click.option("--store", "store", metavar="URI", default=None, type=STORE_URI,
                        help="s3://bucket/prefix, file:///path or a path (env SNAPDIR_STORE; "
                        "default: the embedded store in the data directory).")(fn)


def id_option(fn: F) -> F:
    return click.option("--id", "snapshot_id", required=True, metavar="ID", type=SNAPSHOT_ID,
                        help="The snapshot id (64 hex characters).")(fn)


def transfer_options(fn: F) -> F:
    fn = click.option("-j", "--jobs", type=JOBS, default=None,
                      help="Objects moved at once: requests in flight to a store, copies for a "
                      "local one (env SNAPDIR_JOBS, default 32).")(fn)
    fn = click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")(fn)
    fn = click.option("--progress", "progress", is_flag=True,
                      help="Progress lines on stderr even when it is not a terminal.")(fn)
    fn = click.option("--json", "as_json", is_flag=True,
                      help="Print a JSON summary on stdout instead of the usual output.")(fn)
    return fn


def progress_mode(quiet: bool, progress: bool) -> str:
    """The progress mode of ``-q`` / ``--progress``. Unless ``-q``, a bad
    SNAPDIR_PROGRESS_INTERVAL stops the command here, before any work, whether or not
    stderr is a terminal (the same command line gives the same answer in a script)."""
    if quiet:
        return "off"
    from ..settings import progress_interval

    progress_interval(5.0)
    return "plain" if progress else "auto"


def transfer_config(jobs: int | None) -> Any:
    from ..transfer.config import TransferConfig

    return TransferConfig(jobs=jobs) if jobs is not None else TransferConfig()


def resolve_store_uri(store: str | None) -> str:
    from .. import settings

    # an empty SNAPDIR_STORE is unset, as environment variables go; an empty --store
    # never gets here (STORE_URI)
    return settings.store_to_use(store)


def emit_json(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, sort_keys=True))

"""Options shared by several verbs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def manifest_options(fn: F) -> F:
    """The flags that decide what a directory's manifest is."""
    fn = click.option("--no-follow", is_flag=True, help="Leave symlinks out instead of "
                      "following them.")(fn)
    fn = click.option("--exclude", "exclude", multiple=True, metavar="REGEX",
                      help="Leave out entries whose absolute path matches this extended "
                      "regex (repeatable); an excluded directory's subtree goes too.")(fn)
    fn = click.option("--no-stat-cache", is_flag=True, help="Hash every file; do not read "
                      "or write the stat cache (env SNAPDIR_NO_STAT_CACHE=1).")(fn)
    return fn


def directory_argument(fn: F) -> F:
    return click.argument("directory", type=click.Path(file_okay=True, dir_okay=True,
                                                        path_type=str))(fn)

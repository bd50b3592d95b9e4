"""The console entry point: ``snapdir id DIR`` without importing click.

``id`` on a warm stat cache is over in a few tens of milliseconds, so click's import
(~25 ms) would be a large share of it. The plain form ``snapdir id DIR`` is handled here;
everything else (flags, help, other verbs) goes through the click CLI in ``main``.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if len(argv) == 2 and argv[0] == "id" and not argv[1].startswith("-"):
        try:
            if sys.stderr.isatty():  # a person watching: progress if it takes a while
                from ..transfer.progress import hashed_id

                sid = hashed_id(argv[1])
            else:
                from ..snapshot import build_manifest

                sid = build_manifest(argv[1]).id
            sys.stdout.write(sid + "\n")
            sys.stdout.flush()
        except BaseException as exc:  # noqa: BLE001 - reported like every other error
            from .main import fail

            fail(exc)
        return
    from .main import main as full

    full()

"""The console entry point: ``snapdir id DIR`` without importing click, and a quick exit.

``id`` on a warm stat cache is over in a few tens of milliseconds, so click's import
(~25 ms) would be a large share of it. The plain form ``snapdir id DIR`` is handled here;
everything else (flags, help, other verbs) goes through the click CLI in ``main``.

Once the command is over, the process leaves with ``os._exit`` after flushing stdout and
stderr: tearing down the interpreter (every module, the event loop's and obstore's
threads) took 40-70 ms of a 0.3 s pull of one small file, for nothing. Everything the
commands write is closed (and fsynced where it must be) before they return; nothing in
the package relies on ``atexit`` or finalizers.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn


class Terminated(BaseException):
    """SIGTERM while no event loop has the signal (imports, parsing, a command's work
    outside ``run_async``: hashing for ``id``, ``manifest``, ``status``): the one line
    SIGINT gets there too, not a silent death."""


def _terminate(signum: int, frame: object) -> NoReturn:
    raise Terminated


def _open_standard_streams() -> None:
    """Reopen a closed stdin, stdout or stderr (``<&-``, ``>&-``, a daemon's spawn) on
    /dev/null before the command opens anything: the first file, socket or event-loop
    descriptor would otherwise take its number (uvloop then aborts on closing it, an
    assertion and exit 134; a write meant for stdout would land in that file). What goes
    to a closed stdout or stderr is discarded, as before; a closed stdin reads as empty."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        if getattr(sys, name) is None:  # Python found it closed at start-up
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", encoding="utf-8",  # noqa: SIM115
                                    errors="backslashreplace", closefd=False))


def main() -> None:
    import signal

    _open_standard_streams()
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # not if whoever started us
        signal.signal(signal.SIGTERM, _terminate)         # ignores it
    try:
        _run()
    except SystemExit as exc:
        code = exc.code
    except Terminated:
        sys.stderr.write(f"snapdir: terminated; {again(_verb())}\n")
        code = 143
    except KeyboardInterrupt:
        # Ctrl-C before the CLI takes SIGINT over (importing click and the commands, ~30
        # ms): its one line, not Python's traceback. Before this function runs (interpreter
        # start-up and site, ~35 ms; `import snapdir`, shared with every program using the
        # library, which keeps Python's own KeyboardInterrupt) Python's traceback remains.
        sys.stderr.write(f"snapdir: interrupted; {again(_verb())}\n")
        code = 130
    else:
        code = 0
    if code is not None and not isinstance(code, int):  # sys.exit("message")
        sys.stderr.write(f"{code}\n")
        code = 1
    try:
        sys.stdout.flush()
    except OSError:  # a reader gone away (`snapdir push DIR | true`): as click reports it
        code = code or 1
    try:
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(code or 0)


#: commands whose finished work a second run does not redo
RESUMABLE = frozenset({"push", "pull", "fetch", "checkout", "stage", "sync"})


def again(verb: str) -> str:
    """What to tell a user whose ``snapdir VERB`` was interrupted."""
    return ("run the same command again to resume" if verb in RESUMABLE
            else "run the same command again")


def _verb() -> str:
    return next((a for a in sys.argv[1:] if not a.startswith("-")), "")


def _run() -> None:
    argv = sys.argv[1:]
    if len(argv) == 2 and argv[0] == "id" and argv[1] and not argv[1].startswith("-"):
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

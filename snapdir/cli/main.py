"""Entry point: a lazy click group and the one place errors become exit codes."""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar, cast

import click

from ..errors import SnapdirError, TransferFailed, redact_userinfo

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

#: verb -> module under snapdir.cli holding a click command of the same name
COMMANDS: dict[str, str] = {
    "manifest": "manifest_cmd",
    "id": "id_cmd",
    "push": "push_cmd",
    "pull": "pull_cmd",
    "fetch": "fetch_cmd",
    "checkout": "checkout_cmd",
    "stage": "stage_cmd",
    "verify": "verify_cmd",
    "ancestors": "history_cmd",
    "revisions": "history_cmd",
    "locations": "history_cmd",
    "diff": "diff_cmd",
    "status": "diff_cmd",
    "sync": "sync_cmd",
    "defaults": "defaults_cmd",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, mod in COMMANDS.items() if _available(mod))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        mod = COMMANDS.get(cmd_name)
        if mod is None or not _available(mod):
            return None
        module = importlib.import_module(f"snapdir.cli.{mod}")
        cmd = getattr(module, cmd_name.replace("-", "_") + "_command")
        assert isinstance(cmd, click.Command)
        return cmd


def _available(mod: str) -> bool:
    return importlib.util.find_spec(f"snapdir.cli.{mod}") is not None


#: failures of a TransferFailed listed, besides the first (which its own line names)
_LISTED = 20


def fail(exc: BaseException) -> NoReturn:
    """Print one line for ``exc`` and exit with its code."""
    from .fast import Terminated

    if isinstance(exc, Terminated):
        _signalled.append(signal.SIGTERM)
    if _signalled:
        _stopped()
    if isinstance(exc, SnapdirError):
        if isinstance(exc, TransferFailed) and len(exc.failures) > 1:
            # each bad object on a line of its own (the summary line names only the first)
            for each in exc.failures[1:_LISTED + 1]:
                click.echo(f"snapdir: {' '.join(str(each).split())}", err=True)
            if len(exc.failures) > _LISTED + 1:
                click.echo(f"snapdir: ... and {len(exc.failures) - _LISTED - 1} more",
                           err=True)
        click.echo(f"snapdir: {exc.kind}: {one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    if isinstance(exc, BaseExceptionGroup):
        inner = _first(exc, SnapdirError)
        if inner is not None:
            fail(inner)
        os_error = _first(exc, OSError)
        if os_error is not None:
            fail(os_error)
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, BrokenPipeError):
        # a local file operation nothing more specific caught: still one line, named
        name = exc.filename
        if name is not None and exc.filename2 is not None and os.path.basename(
                os.fsdecode(name)).startswith(".snapdir-tmp-"):
            name = exc.filename2  # renaming our temp file into place: name the real file
        where = f"{one_line(os.fsdecode(name))}: " if name else ""
        click.echo(f"snapdir: error: {where}{exc.strerror}; check the path, free space and "
                   "permissions", err=True)
        sys.exit(1)
    if isinstance(exc, KeyboardInterrupt):  # e.g. Ctrl-C in the fast path of `snapdir id`
        _stopped()  # with the advice every command gives
    if isinstance(exc, BrokenPipeError):
        sys.exit(1)
    if os.environ.get("SNAPDIR_DEBUG"):
        raise exc
    msg = redact_userinfo(" ".join(str(exc).split())) or type(exc).__name__
    click.echo(f"snapdir: internal error: {type(exc).__name__}: {msg} (set SNAPDIR_DEBUG=1 "
               "for a traceback and report it)", err=True)
    sys.exit(70)


#: control characters (a newline in a file name) as escapes: an error stays one line
_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]} | {
    0x09: "\t", 0x0A: "\\n", 0x0D: "\\r"}


def one_line(text: str) -> str:
    """``text`` with its control characters (but tabs) escaped: one line whatever the
    names in it hold."""
    return text.translate(_CONTROL)


def _first(group: BaseExceptionGroup[BaseException], kind: type[E]) -> E | None:
    """The first exception of type ``kind`` in ``group``, depth first."""
    for exc in group.exceptions:
        if isinstance(exc, kind):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _first(exc, kind)
            if found is not None:
                return found
    return None


def run_async(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``fn`` on asyncio with uvloop when available.

    SIGTERM (``kill``, a container stopping, a job scheduler) and SIGINT (Ctrl-C) cancel
    the work through one anyio cancel scope: the running transfer cleans up (a multipart
    upload is aborted, temp files removed but for a large object's partial download, kept
    for the next run to resume; shielded cleanup is not cut short) instead of
    the process vanishing mid-request. The handlers are the event loop's own, so SIGTERM
    works where the shell ignores SIGINT (background jobs), and a SIGINT the shell
    ignores stays ignored; the same signal again exits at once (a clean-up still running
    after ``_CLEANUP_NOTICE`` s says so, in one line). asyncio's own Ctrl-C
    handling (a native ``Task.cancel()``) is not relied on: anyio can lose a native
    cancellation that lands in the same loop iteration as one of its own scopes'
    (agronholm/anyio#1214, open), and the work would then go on after Ctrl-C.
    """
    import anyio

    async def guarded() -> tuple[bool, T | None]:
        import asyncio

        loop = asyncio.get_running_loop()
        installed: list[tuple[int, Any]] = []  # (signal, its handler before the loop's)
        result: T | None = None
        with anyio.CancelScope() as scope:

            def stop(sig: int) -> None:
                if sig in _signalled:  # asked twice: the clean-up itself is stuck
                    os.write(2, _over_progress() + b"snapdir: stopped before cleaning up "
                                b"(temp files or a multipart upload may be left behind)\n")
                    os._exit(128 + sig)
                if not _signalled:
                    # a clean-up that takes a while (an abort of a multipart upload waits
                    # up to 15 s on a store that stopped answering) says so, and how to
                    # skip it
                    loop.call_later(_CLEANUP_NOTICE, _cleaning_up, sig)
                _signalled.append(sig)
                scope.cancel()

            for sig in (signal.SIGTERM, signal.SIGINT):
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue  # ignored by whoever started us (SIGINT in a background job)
                before = signal.getsignal(sig)
                try:
                    loop.add_signal_handler(sig, stop, sig)
                except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                    continue
                installed.append((sig, before))
            try:
                result = await fn()
            finally:
                for done, before in installed:
                    loop.remove_signal_handler(done)
                    # the loop leaves Python's default behind (a KeyboardInterrupt, which
                    # click answers with a blank line; death without a word on SIGTERM):
                    # the CLI's own handlers again, for work after the loop (status hashes)
                    if before is not None:  # None: not set from Python, nothing to put back
                        signal.signal(done, before)
        return scope.cancel_called, result

    try:
        import uvloop  # noqa: F401

        opts: dict[str, Any] = {"use_uvloop": True}
    except ImportError:
        opts = {}
    stopped, result = anyio.run(guarded, backend="asyncio", backend_options=opts)
    if stopped:  # even if the work got to its end: the user asked it to stop
        raise Interrupted
    return cast("T", result)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="snapdir", prog_name="snapdir")
def cli() -> None:
    """Content-addressed snapshots of datasets and checkpoints (snapdir 1.x compatible)."""


_M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3


def _tune_malloc() -> None:
    """Keep freed buffers for reuse instead of returning them to the kernel at once.

    glibc's default hands big buffers back to the kernel after each use (mmap, then trim
    at twice the mmap threshold), so every buffer a transfer receives is page-faulted and
    zeroed again. Buffers under 16 MiB are recycled (8 MiB download ranges, 8 MiB upload
    parts), and 64 MiB of free heap kept. 2 GiB pull in 8 MiB ranges, client CPU: 2.7-2.8
    s with glibc's defaults, 2.3-2.4 s tuned (peak RSS 140 -> 175 MB); 3.4-3.5 s with a
    4 MiB threshold, which maps and unmaps every range (and, set by hand, turns off
    glibc's own raising of the threshold). The CLI's own process only: a program using
    the library keeps its allocator settings, and so does a user who sets glibc's own
    ``MALLOC_*_`` variables.
    """
    import os

    if any(k.startswith("MALLOC_") for k in os.environ):
        return
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, 16 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
    except (ValueError, OSError, AttributeError):  # not glibc: nothing to tune
        return


#: open files the CLI asks for (a soft limit below it is raised, up to the hard limit)
_OPEN_FILES = 65536


def _raise_open_files_limit() -> None:
    """Raise the soft limit on open files towards the hard one, as Go programs do at
    start. ``-j 1024`` (the documented maximum) holds a socket and a file or two per job,
    past the usual soft limit of 1024: a push to S3 failed naming a source file it
    "cannot read" (EMFILE), a pull a destination it "cannot write". The CLI's own process
    only: a program using the library keeps its limits."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = _OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, _OPEN_FILES)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):  # not allowed here: the limit stays as it was
        return


#: the signals that cancelled the work (see ``run_async``)
_signalled: list[int] = []

#: seconds after a stopping signal before the CLI says it is still cleaning up
_CLEANUP_NOTICE = 2.0


def _cleaning_up(sig: int) -> None:
    again = "Ctrl-C" if sig == signal.SIGINT else "the same signal"
    os.write(2, _over_progress() + f"snapdir: cleaning up before exiting (aborting "
                f"uploads, removing temp files); {again} again exits at once\n".encode())


def _over_progress() -> bytes:
    """On a terminal, what clears the progress line a stopped transfer left unended (it
    is drawn again as the transfer ends), so a line written now is a line of its own."""
    return b"\r\x1b[2K" if os.isatty(2) else b""


class Interrupted(BaseException):
    """The work was stopped by SIGINT or SIGTERM (not a KeyboardInterrupt: click answers
    that with a blank line on stderr)."""


def _stopped() -> NoReturn:
    import signal

    from .fast import again as advice

    again = advice(_command_path().removeprefix("snapdir "))
    if signal.SIGTERM in _signalled:
        click.echo(f"snapdir: terminated; {again}", err=True)
        sys.exit(143)
    click.echo(f"snapdir: interrupted; {again}", err=True)
    sys.exit(130)


def _command_path() -> str:
    """``snapdir CMD`` for the command on the command line, if it names one (an error
    click raises while parsing an option's value comes without its command)."""
    names = set(cli.list_commands(click.Context(cli)))
    for arg in sys.argv[1:]:
        if not arg.startswith("-"):
            return f"snapdir {arg}" if arg in names else "snapdir"
    return "snapdir"


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise Interrupted


def main() -> None:
    import signal

    _tune_malloc()
    _raise_open_files_limit()
    # Ctrl-C before the event loop takes the signal over (parsing, imports): Interrupted
    # instead of KeyboardInterrupt, which click answers with a blank line on stderr
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)
    try:
        # prog_name: `python -m snapdir` reads _SNAPDIR_COMPLETE and says "snapdir" too
        cli.main(standalone_mode=False, prog_name="snapdir")
    except (click.exceptions.Abort, Interrupted):
        _stopped()
    except click.exceptions.NoArgsIsHelpError as exc:
        # `snapdir` alone: the help, laid out as --help lays it out (on stderr, exit 2),
        # not flattened into one "usage error" line of a thousand characters
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        # one line, like every other error (click's own format spans four)
        where = exc.ctx.command_path if exc.ctx is not None else _command_path()
        msg = redact_userinfo(" ".join(exc.format_message().split()))
        click.echo(f"snapdir: usage error: {msg} (see '{where} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the one place errors become exit codes
        fail(exc)

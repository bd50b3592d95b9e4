"""Every error snapdir raises, in one tree.

::

    SnapdirError                    exit 1 unless stated
    ├── UsageError                  exit 2: bad arguments, bad ids, unknown store schemes
    ├── SourceError                 the local tree cannot be read as asked
    │   ├── UnsupportedName         a name with a newline or bytes that are not UTF-8
    │   ├── SymlinkCycle            a followed link leads back to one of its ancestors
    │   └── FileChanged             a file changed while it was read (re-run on a quiescent tree)
    ├── ManifestError               a manifest that cannot be parsed or is unsafe
    ├── IntegrityError              bytes whose digest is not their name (object or manifest)
    ├── StoreError                  the store failed; carries the key
    │   ├── ObjectNotFound          404 / missing file: never retried
    │   ├── AccessDenied            403 / credentials: never retried
    │   ├── Throttled               503 SlowDown / 429: retried
    │   └── StoreUnavailable        5xx, resets, timeouts, truncated bodies: retried
    ├── DestinationError            checkout refused (path escapes, unsafe --delete target)
    └── TransferFailed              several objects failed; carries the failures

Every message names the thing (path, key, id) and says what to do next, on one line.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import threading

#: the user name and password of a URL (``scheme://user:password@host``): a password
#: may hold ``/`` (AWS secret keys do), so after a ``:`` it runs to the ``@``
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)(?:[^\s/@'\"]*:[^\s'\"]*|[^\s/:@'\"]+)@")


def redact_userinfo(text: str) -> str:
    """``text`` with the user name and password of every URL in it shown as ``***``
    (``http://user:secret@host`` -> ``http://***@host``), for messages and displays."""
    return _USERINFO.sub(r"\1***@", text)


class SnapdirError(Exception):
    """Base class of every error snapdir raises on purpose."""

    exit_code: ClassVar[int] = 1
    kind: ClassVar[str] = "error"

    def format_message(self) -> str:
        # the messages never quote a credential on purpose; this keeps one that comes
        # with a URL from somewhere else (an endpoint, a library's text) off the screen
        return redact_userinfo(" ".join(str(self).split("\n")))


class UsageError(SnapdirError):
    exit_code = 2
    kind = "usage error"


class SourceError(SnapdirError):
    kind = "source error"

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class UnsupportedName(SourceError):
    pass


class SymlinkCycle(SourceError):
    pass


class FileChanged(SourceError):
    pass


class ManifestError(SnapdirError):
    kind = "manifest error"


class IntegrityError(SnapdirError):
    kind = "integrity error"

    def __init__(self, message: str, key: str = "", expected: str = "", actual: str = "") -> None:
        super().__init__(message)
        self.key = key
        self.expected = expected
        self.actual = actual


class StoreError(SnapdirError):
    kind = "store error"
    #: worth another attempt (per class; an instance whose retries are used up says False)
    retryable: bool = False

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class ObjectNotFound(StoreError):
    pass


class StoreMissing(ObjectNotFound):
    """There is no store at all where one was named (a file store's directory is not
    there): nothing in it can be found, and there is nothing to repair."""


class AccessDenied(StoreError):
    pass


class Throttled(StoreError):
    retryable = True


#: the end of a transient failure's message: it only reaches the user once the retries
#: are used up (it said "retrying" then, at the very moment snapdir gave up)
AGAIN = "check the network and the server, then run the command again"


class StoreUnavailable(StoreError):
    retryable = True


class DestinationError(SnapdirError):
    kind = "destination error"


class TransferFailed(SnapdirError):
    kind = "transfer failed"

    def __init__(self, message: str, failures: list[BaseException] | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


class VerifyFailed(TransferFailed):
    kind = "verify failed"

    def __init__(self, message: str, failures: list[BaseException] | None = None,
                 result: Any = None) -> None:
        super().__init__(message, failures)
        #: the ``VerifyResult``: counts, and the digests that failed (``bad``)
        self.result = result


class Stopped(Exception):
    """Not a SnapdirError, and never seen by a caller: what a worker-thread job raises
    once told to stop (``transfer.threads.run_interruptible``), the caller's own
    cancellation going on instead."""


def check_stop(stop: threading.Event | None) -> None:
    """Raise ``Stopped`` if ``stop`` is set: called between the items of a long loop."""
    if stop is not None and stop.is_set():
        raise Stopped


def nonempty_path(path: str | os.PathLike[str], what: str) -> str:
    """``os.fspath(path)``, refusing ``""``: it would mean the current directory (and to
    the scanner, ``/``), which a caller with an unset variable never meant."""
    try:
        text = os.fspath(path)
    except TypeError:  # None (an unset os.environ.get), a number...
        text = None
    if not isinstance(text, str):  # bytes too: paths are str throughout
        raise UsageError(f"{what} is {path!r}, not a path: give a directory as a str or "
                         "a pathlib.Path (an unset variable?)")
    if text == "":
        raise UsageError(f"{what} is an empty path: give a directory (an unset variable?)")
    return text


def with_path(exc: StoreError, path: str) -> StoreError:
    """The same store error, its message naming the file it was for."""
    if path in str(exc):
        return exc
    new = type(exc)(f"{exc} (for {path})", exc.key)
    return new

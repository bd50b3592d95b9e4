"""snapdir: pin datasets and checkpoints to a content-addressed snapshot id.

Sync API (each has an ``a``-prefixed async twin, e.g. ``amanifest``)::

    snapdir.manifest(path) -> Manifest        snapdir.snapshot_id(path) -> str

Imports are lazy so that ``import snapdir`` stays cheap for training scripts and the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "2.0.0.dev0"

_EXPORTS: dict[str, str] = {
    "manifest": "snapdir.api",
    "amanifest": "snapdir.api",
    "snapshot_id": "snapdir.api",
    "asnapshot_id": "snapdir.api",
    "id": "snapdir.api",
    "aid": "snapdir.api",
    "push": "snapdir.api",
    "apush": "snapdir.api",
    "pull": "snapdir.api",
    "apull": "snapdir.api",
    "fetch": "snapdir.api",
    "afetch": "snapdir.api",
    "checkout": "snapdir.api",
    "acheckout": "snapdir.api",
    "stage": "snapdir.api",
    "astage": "snapdir.api",
    "verify": "snapdir.api",
    "averify": "snapdir.api",
    "ancestors": "snapdir.api",
    "aancestors": "snapdir.api",
    "revisions": "snapdir.api",
    "arevisions": "snapdir.api",
    "locations": "snapdir.api",
    "ensure": "snapdir.api",
    "aensure": "snapdir.api",
    "diff": "snapdir.core.diff",
    "Manifest": "snapdir.core.manifest",
    "Entry": "snapdir.core.manifest",
    "ManifestOptions": "snapdir.snapshot",
}
_ERRORS = ("SnapdirError", "UsageError", "SourceError", "UnsupportedName", "SymlinkCycle",
           "FileChanged", "ManifestError", "IntegrityError", "StoreError", "ObjectNotFound",
           "AccessDenied", "Throttled", "StoreUnavailable", "DestinationError",
           "TransferFailed")
for _name in _ERRORS:
    _EXPORTS[_name] = "snapdir.errors"

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:
    from .api import (
        aancestors,
        acheckout,
        aensure,
        afetch,
        aid,
        amanifest,
        ancestors,
        apull,
        apush,
        arevisions,
        asnapshot_id,
        astage,
        averify,
        checkout,
        ensure,
        fetch,
        id,
        locations,
        manifest,
        pull,
        push,
        revisions,
        snapshot_id,
        stage,
        verify,
    )
    from .core.diff import diff
    from .core.manifest import Entry, Manifest
    from .errors import (
        AccessDenied,
        DestinationError,
        FileChanged,
        IntegrityError,
        ManifestError,
        ObjectNotFound,
        SnapdirError,
        SourceError,
        StoreError,
        StoreUnavailable,
        SymlinkCycle,
        Throttled,
        TransferFailed,
        UnsupportedName,
        UsageError,
    )
    from .snapshot import ManifestOptions


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'snapdir' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

"""Pin the public API: ``snapdir.__all__`` is exactly this, and every name resolves."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import snapdir

EXPECTED = {
    "__version__",
    # functions (each store or hashing call has an ``a``-prefixed async twin)
    "manifest", "amanifest", "snapshot_id", "asnapshot_id", "id", "aid",
    "push", "apush", "pull", "apull", "fetch", "afetch", "checkout", "acheckout",
    "stage", "astage", "verify", "averify", "ancestors", "aancestors",
    "revisions", "arevisions", "ensure", "aensure", "locations", "diff",
    # types
    "Manifest", "Entry", "ManifestOptions",
    # the error tree
    "SnapdirError", "UsageError", "SourceError", "UnsupportedName", "SymlinkCycle",
    "FileChanged", "ManifestError", "IntegrityError", "StoreError", "ObjectNotFound",
    "AccessDenied", "Throttled", "StoreUnavailable", "DestinationError", "TransferFailed",
}


def test_all_is_pinned() -> None:
    assert set(snapdir.__all__) == EXPECTED
    assert len(snapdir.__all__) == len(EXPECTED)  # no duplicates
    assert snapdir.__all__ == sorted(snapdir.__all__)


def test_every_exported_member_resolves() -> None:
    for name in snapdir.__all__:
        member = getattr(snapdir, name)
        assert member is not None, name
        if name != "__version__":
            module = getattr(member, "__module__", "")
            assert module.startswith("snapdir."), (name, module)
    assert dir(snapdir) == snapdir.__all__


def test_async_twins_are_coroutine_functions() -> None:
    for name in snapdir.__all__:
        twin = f"a{name}"
        if twin in EXPECTED and inspect.isfunction(getattr(snapdir, name)):
            assert inspect.iscoroutinefunction(getattr(snapdir, twin)), twin
            assert not inspect.iscoroutinefunction(getattr(snapdir, name)), name


def test_errors_form_one_tree() -> None:
    errors = [getattr(snapdir, n) for n in snapdir.__all__ if n[0].isupper()
              and n.endswith(("Error", "Found", "Denied", "Throttled", "Unavailable",
                              "Failed", "Name", "Cycle", "Changed"))]
    assert len(errors) == 15
    for exc in errors:
        assert issubclass(exc, snapdir.SnapdirError), exc
    assert issubclass(snapdir.ObjectNotFound, snapdir.StoreError)
    assert issubclass(snapdir.FileChanged, snapdir.SourceError)


def test_lazy_exports_are_visible_to_type_checkers() -> None:
    """``snapdir/__init__.py`` resolves names lazily; a type checker only sees the ones
    imported under ``if TYPE_CHECKING:``, so every export must be listed there."""
    tree = ast.parse(Path(inspect.getfile(snapdir)).read_text())
    typed: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom):
                    typed |= {a.asname or a.name for a in stmt.names}
    assert EXPECTED - {"__version__"} <= typed, sorted(EXPECTED - {"__version__"} - typed)

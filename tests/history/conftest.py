"""History tests reuse the transfer tests' CLI runner, bucket helpers and fixtures.

Every public name of ``tests/transfer/conftest.py`` is re-exported here: test modules do
``from conftest import ...`` and, depending on collection order, ``conftest`` in
``sys.modules`` may be this module when tests/transfer's modules are imported (and vice
versa), so both must offer the same names.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_FILE = Path(__file__).resolve().parent.parent / "transfer" / "conftest.py"
_NAME = "_snapdir_transfer_helpers"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_NAME, _FILE)
    assert _spec is not None
    assert _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _module
    _spec.loader.exec_module(_module)
_helpers = sys.modules[_NAME]

globals().update({k: v for k, v in vars(_helpers).items() if not k.startswith("_")})

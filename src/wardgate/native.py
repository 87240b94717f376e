"""The optional compiled extensions (the DataRow codec, the note scanner's hot loops).

Each has a pure-Python reference beside it that differential tests hold it to; `load` gives
the extension, or None where it was not built (no compiler at install) or where
``WARDGATE_PURE_PYTHON`` is set (CI runs the suite once that way).
"""

from __future__ import annotations

import importlib
import os
from typing import Any


def load(name: str) -> Any:
    """The compiled module ``name``, or None: run the pure-Python reference."""
    if os.environ.get("WARDGATE_PURE_PYTHON"):
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None

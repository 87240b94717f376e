"""The optional compiled fast path of the content scanner (``_scan.c``).

Used when it was built (``pip install`` builds it where a C compiler exists) unless
``WARDGATE_PURE_PYTHON`` is set; ``COMPILED`` says which runs. Each compiled function has a
Python twin that is the reference (``numbers.number_runs``, ``scanner.resolve``), and
``tests/masking/test_scan_compiled.py`` requires the same answers from both.
"""

from __future__ import annotations

import os
from typing import Any

from wardgate.masking.detectors.base import Span


def _load() -> Any:
    if os.environ.get("WARDGATE_PURE_PYTHON"):
        return None
    try:
        from wardgate.masking.detectors import _scan  # type: ignore[attr-defined]
    except ImportError:
        return None
    _scan.set_span_type(Span)
    return _scan


fast: Any = _load()
COMPILED = fast is not None

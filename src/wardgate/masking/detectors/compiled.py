"""The optional compiled fast path of the content scanner (``_scan.c``).

Used when it was built (``pip install`` builds it where a C compiler exists) unless
``WARDGATE_PURE_PYTHON`` is set; ``COMPILED`` says which runs. Each compiled function has a
Python twin that is the reference (``numbers.number_runs``, ``scanner.resolve``), and
``tests/masking/test_scan_compiled.py`` requires the same answers from both.
"""

from __future__ import annotations

from typing import Any

from wardgate import native
from wardgate.masking.detectors.base import Span

fast: Any = native.load("wardgate.masking.detectors._scan")
if fast is not None:
    fast.set_span_type(Span)
COMPILED = fast is not None

"""Content detectors: finding identifiers in free text (clinical notes, unresolved columns).

span       (entity, start, end, score) in a text; `Scanner.scan` returns them sorted and
           non-overlapping
detector   anything with ``name`` and ``find(text) -> Iterable[Span]``: numbers (numbers.py:
           one pass over digit runs, classified by shape (shapes.py), label (labels.py) and
           validators (validators.py)), e-mail/URL/IPv6 and written dates (patterns.py), names
           from dictionaries with context rules (names.py)
MRN format a regular expression for an institution's medical record numbers (ids.py)
NER hook   an optional statistical detector, off by default (ner.py)
"""

from wardgate.masking.detectors.base import Detector, Span
from wardgate.masking.detectors.ids import DEFAULT_MRN_FORMATS, DEMO_MRN, MrnFormat
from wardgate.masking.detectors.ner import NerUnavailable, load_ner
from wardgate.masking.detectors.scanner import Scanner, ScannerConfig, resolve, scan

__all__ = [
    "DEFAULT_MRN_FORMATS",
    "DEMO_MRN",
    "Detector",
    "MrnFormat",
    "NerUnavailable",
    "Scanner",
    "ScannerConfig",
    "Span",
    "load_ner",
    "resolve",
    "scan",
]

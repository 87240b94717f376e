"""Medical record number formats: every institution has its own, so they are configuration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MrnFormat:
    """One shape of medical record number, as a regular expression for the number alone.
    With `needs_context`, a match counts only right after an MRN label ("MRN", "MR#",
    "medical record no."); without, a bare match counts too, at a lower score."""

    pattern: str
    needs_context: bool = True


DEMO_MRN = MrnFormat(r"\d{8}", needs_context=False)
"""The demo's MRNs: exactly eight digits, zero-padded (see wardgate.demo.seed)."""
DEFAULT_MRN_FORMATS = (DEMO_MRN, MrnFormat(r"[A-Z]{1,3}-?\d{5,10}"), MrnFormat(r"\d{6,10}"))

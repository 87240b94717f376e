"""Statement fingerprints and digests.

libpg_query's fingerprint identifies a statement up to its constants, aliases and the order of
its select list: `SELECT ssn, mrn` and `SELECT mrn, ssn` share one. That suits grouping, but not
lineage, which depends on exactly those; so the analyses (``sql/analysis.Analyses``) are cached
by the exact text, and their lineage per catalog version and search_path.
"""

from __future__ import annotations

from pglast.parser import ParseError
from pglast.parser import fingerprint as _fingerprint

from wardgate.sql.model import AnalysisError


def fingerprint(text: str) -> str:
    """libpg_query's fingerprint (16 hex digits). Raises `AnalysisError` if it does not parse."""
    try:
        return _fingerprint(text)
    except ParseError as exc:
        raise AnalysisError(f"statement does not parse: {exc}") from exc


def statement_digest(text: str) -> str:
    """SHA-256 of the statement as PostgreSQL's parser reads it, printed back: the same for any
    spelling of the same statement (spacing, case of keywords, comments), different for other
    constants or another select list. What an approval is bound to. Raises `AnalysisError`."""
    from wardgate.sql.analysis import analyse

    return analyse(text).digest

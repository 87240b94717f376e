"""Statement fingerprints, and a cache that makes analysing a repeated statement nearly free.

libpg_query's fingerprint identifies a statement up to its constants, aliases and the order of
its select list: `SELECT ssn, mrn` and `SELECT mrn, ssn` share one. That suits grouping and
approvals, but not lineage, which depends on exactly those; so the cache is keyed by the exact
text (cheaper too: no parse on a hit) with the catalog version, search_path and user.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from pglast.parser import ParseError
from pglast.parser import fingerprint as _fingerprint

from wardgate.sql.catalog import DEFAULT_SEARCH_PATH, Catalog
from wardgate.sql.lineage import analyze
from wardgate.sql.model import AnalysisError, Options, StatementLineage


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


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    size: int


class LineageCache:
    """A least-recently-used cache of `analyze` results, errors included. Not thread-safe: one
    per event loop."""

    def __init__(self, maxsize: int = 4096, options: Options | None = None) -> None:
        self.maxsize = maxsize
        self.options = options or Options()
        self._entries: OrderedDict[
            tuple[str, str, str, str | None], tuple[StatementLineage, ...] | AnalysisError
        ] = OrderedDict()
        self._hits = 0
        self._misses = 0

    def analyze(
        self,
        text: str,
        catalog: Catalog,
        *,
        search_path: str = DEFAULT_SEARCH_PATH,
        user: str | None = None,
    ) -> tuple[StatementLineage, ...]:
        key = (text, catalog.version, search_path, user)
        entry = self._entries.get(key)
        if entry is not None:
            self._hits += 1
            self._entries.move_to_end(key)
        else:
            self._misses += 1
            try:
                entry = analyze(
                    text, catalog, search_path=search_path, user=user, options=self.options
                )
            except AnalysisError as exc:
                entry = exc
            self._entries[key] = entry
            if len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        if isinstance(entry, AnalysisError):
            raise AnalysisError(*entry.args)
        return entry

    def stats(self) -> CacheStats:
        return CacheStats(self._hits, self._misses, len(self._entries))

    def clear(self) -> None:
        self._entries.clear()

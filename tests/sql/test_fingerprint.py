from __future__ import annotations

import pytest

from wardgate.sql import AnalysisError, LineageCache, fingerprint
from wardgate.sql.catalog import tables


def test_fingerprint_ignores_constants_but_not_structure() -> None:
    assert fingerprint("SELECT ssn FROM patients WHERE id = 1") == fingerprint(
        "select ssn from patients where id = 42"
    )
    assert fingerprint("SELECT ssn FROM patients") != fingerprint("SELECT mrn FROM patients")
    with pytest.raises(AnalysisError):
        fingerprint("SELEC 1")


def test_fingerprint_collapses_select_list_order() -> None:
    # why the lineage cache is keyed by text, not by fingerprint
    assert fingerprint("SELECT ssn, mrn FROM p") == fingerprint("SELECT mrn, ssn FROM p")


def test_cache_hits_and_keys() -> None:
    catalog = tables({"public.patients": ["id", "ssn"], "archive.patients": ["ssn"]})
    cache = LineageCache(maxsize=2)
    first = cache.analyze("SELECT ssn FROM patients", catalog)
    assert cache.analyze("SELECT ssn FROM patients", catalog) is first
    other = cache.analyze("SELECT ssn FROM patients", catalog, search_path="archive")
    assert other[0].columns[0].sources != first[0].columns[0].sources
    assert cache.stats().hits == 1 and cache.stats().misses == 2
    changed = tables({"public.patients": ["id", "ssn", "mrn"]})
    assert changed.version != catalog.version
    cache.analyze("SELECT ssn FROM patients", changed)
    assert cache.stats().size == 2  # least recently used entry evicted


def test_cache_remembers_parse_errors() -> None:
    catalog = tables({"public.t": ["a"]})
    cache = LineageCache()
    for _ in range(2):
        with pytest.raises(AnalysisError):
            cache.analyze("SELEC a FROM t", catalog)
    assert cache.stats().hits == 1

from __future__ import annotations

import pytest

from wardgate.sql import AnalysisError, fingerprint
from wardgate.sql.analysis import Analyses, ParseCounter
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


def test_analyses_are_cached_by_text_and_lineage_by_catalog_and_path() -> None:
    catalog = tables({"public.patients": ["id", "ssn"], "archive.patients": ["ssn"]})
    analyses = Analyses(maxsize=2)
    first = analyses("SELECT ssn FROM patients")
    assert analyses("SELECT ssn FROM patients") is first
    lineage = first.lineage(catalog)
    assert first.lineage(catalog) is lineage
    other = first.lineage(catalog, search_path="archive")
    assert other[0].columns[0].sources != lineage[0].columns[0].sources
    assert (analyses.hits, analyses.misses) == (1, 1)
    changed = tables({"public.patients": ["id", "ssn", "mrn"]})
    assert changed.version != catalog.version
    assert first.lineage(changed) is not lineage
    analyses("SELECT 1")
    analyses("SELECT 2")
    assert analyses("SELECT ssn FROM patients") is not first  # least recently used, evicted


def test_a_parse_error_is_remembered_not_parsed_again() -> None:
    catalog = tables({"public.t": ["a"]})
    analyses = Analyses()
    before = ParseCounter.count
    for _ in range(2):
        with pytest.raises(AnalysisError):
            analyses("SELEC a FROM t").lineage(catalog)
    assert ParseCounter.count == before + 1

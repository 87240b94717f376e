from __future__ import annotations

from wardgate.sql import Catalog, SourceColumn, analyze, catalog_from_rows
from wardgate.sql.catalog import VIEW, parse_search_path, tables


def test_parse_search_path() -> None:
    assert parse_search_path('"$user", public') == ("$user", "public")
    assert parse_search_path('Public, "My Schema",x') == ("public", "My Schema", "x")
    assert parse_search_path("") == ()


def test_effective_path_puts_pg_catalog_first_unless_placed() -> None:
    catalog = tables({"public.t": ["a"]})
    assert catalog.effective_path('"$user", public', "alice") == ("pg_catalog", "alice", "public")
    assert catalog.effective_path("public, pg_catalog") == ("public", "pg_catalog")


def test_loaded_catalog_matches_the_database(demo_catalog: Catalog) -> None:
    patients = demo_catalog.relation("public", "patients")
    assert patients is not None and patients.kind == "r"
    assert [c.name for c in patients.columns][:3] == ["id", "mrn", "first_name"]
    assert demo_catalog.by_oid(patients.oid) is patients
    view = demo_catalog.relation("public", "patient_contacts")
    assert view is not None and view.kind == VIEW and view.definition is not None
    assert "public.patients" in view.definition  # printed with an empty search_path
    partition = demo_catalog.relation("public", "lab_results_2024")
    assert partition is not None and partition.parents
    functions = demo_catalog.function_schemas("patient_ssn")
    assert functions == frozenset({"public"})


def test_catalog_from_plain_rows() -> None:
    rows: list[tuple[object, ...]] = [
        (10, "public", "patients", "r", None, [], ["id", "ssn"], [23, 25], [1, 2]),
        (
            11,
            "public",
            "v",
            "v",
            "SELECT upper(ssn) AS s FROM public.patients",
            [],
            ["s"],
            [25],
            [1],
        ),
    ]
    catalog = catalog_from_rows(rows, [("pg_catalog", "upper")])
    (lineage,) = analyze("SELECT s FROM v", catalog)
    assert lineage.columns[0].sources == {SourceColumn("public", "patients", "ssn")}
    assert (
        catalog.version
        == catalog_from_rows(list(reversed(rows)), [("pg_catalog", "upper")]).version
    )


def test_hand_built_catalog_with_views() -> None:
    catalog = tables(
        {"public.patients": ["id", "first_name", "last_name", "phone"]},
        views={
            "public.contacts": "SELECT first_name || ' ' || last_name AS name, phone FROM patients"
        },
    )
    (lineage,) = analyze("SELECT * FROM contacts", catalog)
    assert [c.name for c in lineage.columns] == ["name", "phone"]
    assert lineage.columns[1].exact and not lineage.columns[0].exact

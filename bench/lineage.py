"""Cost of statement analysis per statement: uncached (parse + resolve), cached, fingerprint.

    python bench/lineage.py [--rounds 2000]

Runs against a catalog built by hand shaped like the demo schema (no server needed), over a mix
of statements from simple to view- and CTE-heavy. Uncached: `analyze` each time. Cached: a hit
of the pipeline's `Analyses` (exact text, then catalog version and search_path). Also
libpg_query's fingerprint alone and `classify`, for comparison.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

from wardgate.sql import analyze, classify, fingerprint
from wardgate.sql.analysis import Analyses
from wardgate.sql.catalog import Catalog, tables

PATIENTS = [
    "id", "mrn", "first_name", "last_name", "ssn", "date_of_birth", "street", "city", "state",
    "zip", "phone", "email", "insurance_member_id", "created_at",
]  # fmt: skip

STATEMENTS = [
    "SELECT ssn FROM patients WHERE id = 1",
    "SELECT * FROM patients",
    "SELECT p.mrn, e.encounter_date, n.body FROM patients p JOIN encounters e ON e.patient_id ="
    " p.id JOIN clinical_notes n ON n.encounter_id = e.id WHERE p.id = 42",
    "WITH s AS (SELECT ssn, mrn FROM patients) SELECT upper(ssn) || mrn FROM s",
    "SELECT name, phone FROM patient_contacts WHERE phone LIKE '555%'",
    "SELECT row_to_json(p), (SELECT count(*) FROM encounters e WHERE e.patient_id = p.id)"
    " FROM patients p",
    "SELECT ssn FROM patients UNION SELECT 'x' UNION SELECT mrn FROM patients",
]


def _per_call(fn: Callable[[], object], rounds: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(rounds):
        fn()
    return (time.perf_counter() - started) / rounds * 1e6


def _cached(analyses: Analyses, text: str, catalog: Catalog) -> object:
    return analyses(text).lineage(catalog)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    catalog = tables(
        {
            "public.patients": PATIENTS,
            "public.encounters": ["id", "patient_id", "encounter_date", "kind", "provider"],
            "public.clinical_notes": ["id", "encounter_id", "patient_id", "written_at", "body"],
        },
        views={
            "public.patient_contacts": "SELECT first_name || ' ' || last_name AS name, phone"
            " FROM patients"
        },
    )
    analyses = Analyses()
    print(f"{'statement':60} {'uncached':>10} {'cached':>8} {'fprint':>8} {'classify':>9}  (us)")
    totals = [0.0, 0.0, 0.0, 0.0]
    for text in STATEMENTS:
        calls: list[Callable[[], object]] = [
            partial(analyze, text, catalog),
            partial(_cached, analyses, text, catalog),
            partial(fingerprint, text),
            partial(classify, text),
        ]
        costs = [_per_call(call, args.rounds) for call in calls]
        totals = [a + b for a, b in zip(totals, costs, strict=True)]
        print(f"{text[:60]:60} {costs[0]:10.1f} {costs[1]:8.2f} {costs[2]:8.1f} {costs[3]:9.1f}")
    mean = [t / len(STATEMENTS) for t in totals]
    print(f"{'mean':60} {mean[0]:10.1f} {mean[1]:8.2f} {mean[2]:8.1f} {mean[3]:9.1f}")


if __name__ == "__main__":
    main()

"""The detector of values the target stores (detectors/known.py), the health identifiers with
check digits, and the views the scanner reads (escapes, one-case texts)."""

from __future__ import annotations

import pytest

from wardgate.masking.detectors import Scanner, ScannerConfig
from wardgate.masking.detectors.known import KnownValues
from wardgate.masking.detectors.validators import dea_ok, mbi_ok, npi_ok
from wardgate.masking.entities import Entity

STORED = {
    Entity.NAME: ["Short", "Jo Ann", "José"],
    Entity.GEO: ["7488 Weeks Divide", "Port Elizabeth"],
    Entity.PHONE: ["555-201-4477"],
    Entity.EMAIL: ["john.smith12@example.com"],
    Entity.HEALTH_PLAN_ID: ["BCX123456789"],
    Entity.MRN: ["00412345"],
}
NOTE = (
    "Pt SHORT (mrn 00412345), address 7488  WEEKS\nDivide, port elizabeth; call (555) 201.4477 "
    "or 5552014477, mail John.Smith12@Example.com, member bcx123456789. Sleep well. José ok. "
    "Shortness of breath; Ωshort."
)
EXPECTED = [
    (Entity.NAME, "SHORT"),
    (Entity.MRN, "00412345"),
    (Entity.GEO, "7488  WEEKS\nDivide"),
    (Entity.GEO, "port elizabeth"),
    (Entity.PHONE, "555) 201.4477"),
    (Entity.PHONE, "5552014477"),
    (Entity.EMAIL, "John.Smith12@Example.com"),
    (Entity.HEALTH_PLAN_ID, "bcx123456789"),
    (Entity.NAME, "José"),
]


@pytest.mark.parametrize("python", [False, True], ids=["hyperscan", "python"])
def test_stored_values_are_found_in_any_case_and_spacing(python: bool) -> None:
    known = KnownValues()
    known.replace(STORED, python=python)
    assert known.engine == ("python" if python else "hyperscan")
    found = sorted(known.find(NOTE), key=lambda s: s.start)
    assert [(s.entity, s.text(NOTE)) for s in found] == EXPECTED


def test_the_engines_agree_on_positions_after_non_ascii_text() -> None:
    text = "Ünïcödé prefix — then Port   Elizabeth and short."
    spans = []
    for python in (False, True):
        known = KnownValues()
        known.replace(STORED, python=python)
        spans.append(sorted((s.start, s.end) for s in known.find(text)))
    assert spans[0] == spans[1]
    assert [text[a:b] for a, b in spans[0]] == ["Port   Elizabeth", "short"]


def test_replace_swaps_every_value_and_empty_finds_nothing() -> None:
    known = KnownValues()
    assert list(known.find(NOTE)) == []
    known.replace(STORED)
    compiled = known._compiled
    known.replace(dict(STORED))  # a reload that changed nothing keeps the database
    assert known._compiled is compiled
    known.replace({Entity.NAME: ["Zyx"]})
    assert [s.text("zyx Short") for s in known.find("zyx Short")] == ["zyx"]


def test_a_scanner_with_known_values_masks_a_street_no_suffix_list_has() -> None:
    """'Hollowgrove Bend' is no street a rule would know; the stored value finds it."""
    known = KnownValues()
    known.replace({Entity.GEO: ["12 Quux Zzyzx"]})
    text = "Lives at 12 QUUX zzyzx with his wife."
    plain = Scanner().scan(text)
    assert not any(s.entity is Entity.GEO for s in plain)
    spans = Scanner(ScannerConfig(extra=(known,))).scan(text)
    assert [(s.entity, s.text(text)) for s in spans if s.entity is Entity.GEO] == [
        (Entity.GEO, "12 QUUX zzyzx")
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("address 7488 Weeks Divide, Port Elizabeth, NY 10001.",
         ["7488 Weeks Divide", "Port Elizabeth", "10001"]),
        ("lives at 31 Keebler Crossroad Apt. 4 since May", ["31 Keebler Crossroad Apt. 4"]),
        ("ADDRESS 915 HILLS SKYWAY, LAKE MARY, FL 32746", ["915 HILLS SKYWAY", "LAKE MARY",
                                                          "32746"]),
        ("moved to 2 Stravenue Mews", ["2 Stravenue Mews"]),
    ],
)  # fmt: skip
def test_street_addresses_and_cities(text: str, expected: list[str]) -> None:
    spans = Scanner().scan(text)
    assert [s.text(text) for s in spans if s.entity in (Entity.GEO, Entity.ZIP)] == expected


def test_health_identifiers_by_their_check_digits() -> None:
    assert mbi_ok("1EG4TE5MK73") and mbi_ok("1EG4-TE5-MK73")
    assert not mbi_ok("1EG4TE5MK7S")  # S is never used
    assert not mbi_ok("0EG4TE5MK73")  # the first character is 1-9
    assert npi_ok("1234567893") and not npi_ok("1234567890")
    assert dea_ok("AB1234563") and dea_ok("F91234563")
    assert not dea_ok("AB1234564") and not dea_ok("QB1234563")  # check digit; registrant type
    text = "Medicare 1eg4-te5-mk73, also 1EG4TE5MK73; lot 1EG4TE5MK7S. Prescriber ab1234563."
    found = [(s.entity, s.text(text)) for s in Scanner().scan(text)]
    assert (Entity.HEALTH_PLAN_ID, "1eg4-te5-mk73") in found
    assert (Entity.HEALTH_PLAN_ID, "1EG4TE5MK73") in found
    assert (Entity.LICENSE, "ab1234563") in found
    assert not any("MK7S" in value for _, value in found)


@pytest.mark.parametrize(
    "text",
    [
        '{"Pt John Smith\\nSSN 123-45-6789","x"}',  # a text[] literal with an escaped newline
        '(1,"Smith, John","\\nJohn Smith 123-45-6789")',  # a row literal
        '{"body": "seen\\nJohn Smith, SSN 123-45-6789"}',  # a JSON document as text
        "PT JOHN SMITH, SSN 123-45-6789",  # upper(body)
        "pt john smith, ssn 123-45-6789",  # lower(body)
    ],
)
def test_the_scanner_sees_through_escapes_and_case(text: str) -> None:
    masked = {s.text(text).lower() for s in Scanner().scan(text)}
    assert {"123-45-6789"} <= masked
    assert "john smith" in masked or {"john", "smith"} <= masked


@pytest.mark.parametrize("python", [False, True], ids=["hyperscan", "python"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # one whitespace character at a time: scanned as it is
        ("lives at 7488 Weeks\nDivide, call (555) 201-4477.", ["7488 Weeks\nDivide",
                                                               "555) 201-4477"]),
        # runs of whitespace: collapsed first, positions mapped back
        ("lives at 7488 Weeks \n Divide,\n\ncall 555 -  201 4477", ["7488 Weeks \n Divide",
                                                                   "555 -  201 4477"]),
        ("Ünï: 7488\tweeks divide; (555)201-4477", ["7488\tweeks divide", "555)201-4477"]),
    ],
)  # fmt: skip
def test_spacing_paths(python: bool, text: str, expected: list[str]) -> None:
    known = KnownValues()
    known.replace(STORED, python=python)
    found = sorted(known.find(text), key=lambda s: s.start)
    assert [s.text(text) for s in found] == expected

from __future__ import annotations

import itertools

import pytest

from wardgate.masking import Entity, MrnFormat, Scanner, ScannerConfig, Span, scan
from wardgate.masking.detectors import NerUnavailable, load_ner, resolve
from wardgate.masking.detectors.validators import dea_ok, luhn_ok, nanp_ok, npi_ok, ssn_ok, vin_ok


def found(text: str, scanner: Scanner | None = None) -> list[tuple[str, str]]:
    spans = (scanner or Scanner()).scan(text)
    return [(s.entity.value, text[s.start : s.end]) for s in spans]


def test_validators() -> None:
    assert ssn_ok("123", "45", "6789")
    for area, group, serial in (("000", "12", "3456"), ("666", "12", "3456"), ("912", "12", "3456"),
                                ("123", "00", "4567"), ("123", "45", "0000")):  # fmt: skip
        assert not ssn_ok(area, group, serial)
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert npi_ok("1234567893") and not npi_ok("1234567890") and not npi_ok("3234567893")
    assert nanp_ok("212", "555") and not nanp_ok("123", "555") and not nanp_ok("411", "555")
    assert dea_ok("AB1234563") and not dea_ok("AB1234564")
    assert vin_ok("1M8GDM9AXKP042788") and not vin_ok("1M8GDM9A1KP042788")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SSN 123-45-6789.", [("SSN", "123-45-6789")]),
        ("SSN: 123456789", [("SSN", "123456789")]),
        ("SSN ending 6789 on file", [("SSN", "6789")]),
        ("last 4 of SSN (6789)", [("SSN", "6789")]),
        ("Identity verified.\nSSN: 6789", [("SSN", "6789")]),  # a label starting a line
        ("Billing\tacct 12345", [("ACCOUNT", "12345")]),
        ("Call (212) 555-0142 today", [("PHONE", "(212) 555-0142")]),
        ("cell +1 212 555 0142", [("PHONE", "+1 212 555 0142")]),
        ("Callback 2125550142.", [("PHONE", "2125550142")]),
        ("Fax: 212.555.0100", [("FAX", "212.555.0100")]),
        ("Sent to kat.smith12@mail.example.com.", [("EMAIL", "kat.smith12@mail.example.com")]),
        ("MRN:00123456", [("MRN", "00123456")]),
        ("MRN#00123456", [("MRN", "00123456")]),
        ("Medical record no. 00123456", [("MRN", "00123456")]),
        ("chart # 00123456", [("MRN", "00123456")]),
        ("ref (00123456)", [("MRN", "00123456")]),
        ("DOB 03/12/1954", [("DATE", "03/12/1954")]),
        ("seen 2024-03-12 for", [("DATE", "2024-03-12")]),
        ("on March 3, 2024", [("DATE", "March 3, 2024")]),
        ("on 3 March 2024", [("DATE", "3 March 2024")]),
        ("RTC 3/14 or sooner", [("DATE", "3/14")]),
        ("Lives at 12 Oak St, Port Jessica, NY 10013",
         [("GEO", "12 Oak St"), ("GEO", "Port Jessica"), ("ZIP", "10013")]),
        ("zip code 02134", [("ZIP", "02134")]),
        ("login from 10.1.2.3 and 2001:db8::1", [("IP", "10.1.2.3"), ("IP", "2001:db8::1")]),
        ("portal https://portal.example.org/p/1.", [("URL", "https://portal.example.org/p/1")]),
        ("Card 4111 1111 1111 1111", [("ACCOUNT", "4111 1111 1111 1111")]),
        ("NPI 1234567893", [("OTHER_ID", "1234567893")]),
        ("member ID BCX123456789", [("HEALTH_PLAN_ID", "BCX123456789")]),
        ("DEA AB1234563", [("LICENSE", "AB1234563")]),
        ("VIN 1M8GDM9AXKP042788", [("VEHICLE_ID", "1M8GDM9AXKP042788")]),
        ("pacemaker serial SN-AB12-3344", [("DEVICE_ID", "SN-AB12-3344")]),
        ("93 y/o F", [("AGE_OVER_89", "93")]),
        ("101yo M", [("AGE_OVER_89", "101")]),
        ("Pt Kathleen Smith seen", [("NAME", "Kathleen Smith")]),
        ("Registration for Smith, Kathleen (MRN", [("NAME", "Smith, Kathleen")]),
        ("Dr. Okonkwo reviewed", [("NAME", "Okonkwo")]),
        ("w/ Grace Hill", [("NAME", "Grace Hill")]),
        ("pt Sarah K. called", [("NAME", "Sarah K")]),
        ("Hunter reports cough", [("NAME", "Hunter")]),
    ],
)  # fmt: skip
def test_finds(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "A1c 7.9% in 2024, down from 8.4% in 2023.",
        "BP 128/82, HR 74, SpO2 97% on RA, weight 82.5 kg.",
        "metformin 500 mg BID; lisinopril 20 mg daily",
        "Dx codes E11.9 and S93.401A; ICD-10 updated 2025.",
        "Old chart lists SSN as 000-12-3456 and 666-12-3456 and 912-34-5678.",
        "Test card 4111 1111 1111 1112 declined. Ref 123-456-7890.",
        "Grace period ends. Will follow up. Mark the site. Frank blood, sharp pain.",
        "History of Bell's palsy and Crohn's disease; Foley catheter removed.",
        "Brown discharge resolved. Green stool. Long history of asthma.",
        "Take 1/2 tab; 2/3 of doses taken. Version 2.1.4, step 10.2.",
        "Patient is a 45 y/o M. Room 4521, bed 2.",
        "May need a repeat CBC. Lab at 10:30:00.",
        "Follow up in the spring of 2024.",
        # a short number glued to its unit: once a crash that made the whole cell NULL
        "metformin 0.5mg BID, 1.5mg at night; take 1/2tab; pain 1-2days; taper 1-4wk.",
    ],
)
def test_finds_nothing_in(text: str) -> None:
    assert found(text) == []


def test_spans_are_sorted_and_disjoint() -> None:
    text = "Pt Kathleen Smith 123-45-6789 212-555-0142 kathleen@example.com 2024-01-02 " * 20
    spans = scan(text)
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


def test_resolve_keeps_what_a_loser_covered_outside_the_winner() -> None:
    spans = resolve([Span(Entity.GEO, 0, 20, 0.9), Span(Entity.NAME, 15, 30, 0.8)])
    assert spans == [Span(Entity.GEO, 0, 20, 0.9), Span(Entity.NAME, 20, 30, 0.8)]


def test_mrn_formats_are_configurable() -> None:
    scanner = Scanner(ScannerConfig(mrn_formats=(MrnFormat(r"[A-Z]{2}-\d{6}"),)))
    assert found("MRN AB-123456 today", scanner) == [("MRN", "AB-123456")]
    assert found("ref 00123456", scanner) == []  # the demo format is not configured


def test_min_score_drops_weak_findings() -> None:
    assert found("ref 2125550142") == [("PHONE", "2125550142")]
    assert found("ref 2125550142", Scanner(ScannerConfig(min_score=0.6))) == []


def test_names_can_be_switched_off() -> None:
    assert found("Pt Kathleen Smith", Scanner(ScannerConfig(names=False))) == []


class _Upper:
    name = "upper"

    def find(self, text: str) -> list[Span]:
        return [
            Span(Entity.OTHER_ID, i, i + 5, 0.99)
            for i in range(len(text))
            if text.startswith("ZZZZZ", i)
        ]


def make_upper() -> _Upper:
    return _Upper()


def test_ner_hook_is_one_more_detector() -> None:
    detector = load_ner(f"{__name__}:make_upper")
    scanner = Scanner(ScannerConfig(extra=(detector,)))
    assert found("code ZZZZZ here", scanner) == [("OTHER_ID", "ZZZZZ")]


@pytest.mark.parametrize("factory", ["nonexistent.module:make", f"{__name__}:missing", "nocolon"])
def test_ner_hook_fails_at_load(factory: str) -> None:
    with pytest.raises(NerUnavailable):
        load_ner(factory)

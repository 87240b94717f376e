from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest

from wardgate.core.model import Identity
from wardgate.demo.fhir_data import bundles
from wardgate.masking.entities import Entity
from wardgate.masking.fhir import UNDATED, FhirMasker
from wardgate.masking.fhir_ids import Pseudonyms
from wardgate.masking.jsonpath import JsonMasker, PathError, find, parse_path
from wardgate.masking.text import TextMasker
from wardgate.masking.views import Policy, View

KEY = b"fhir-test-key-0123456789abcdef"
POLICY = Policy(
    {},
    {
        "clinician": (["NAME", "DATE"], {}),
        "everything": ([e.value for e in Entity], {}),
        "strict": ([], {"DATE": "redact", "NAME": "null", "ZIP": "null"}),
    },
)
ENGINEER = POLICY.view(None)  # sees every entity masked, with the catalog's operators
FHIR_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
FINE_DATE = re.compile(r"\d{4}-\d{2}(-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:\d{2})?)?)?")
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def role(name: str) -> View:
    return POLICY.view(Identity(f"{name}@test", roles=(name,)))


def masker(view: View) -> FhirMasker:
    return FhirMasker(view, KEY, TextMasker(KEY, view.text_operators()))


@cache
def raw_bundles() -> tuple[str, ...]:
    return tuple(json.dumps(b) for b in bundles())


def masked_bundles(view: View) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    m = masker(view)
    for text in raw_bundles():
        raw = json.loads(text)
        yield raw, m.mask(json.loads(text))


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def patient_values(patient: dict[str, Any]) -> set[str]:
    """What identifies the patient: identifier values, the id, names, telecom values, address
    parts and the full birth date."""
    values = {patient["id"], patient["birthDate"]}
    values |= {i["value"] for i in patient.get("identifier", ())}
    for name in patient.get("name", ()):
        values.add(name["family"])
        values |= {g for g in name.get("given", ()) if len(g) > 2}
    values |= {t["value"] for t in patient.get("telecom", ())}
    for address in patient.get("address", ()):
        values |= set(address.get("line", ()))
        values |= {address[k] for k in ("city", "postalCode") if k in address}
    return values


def test_engineer_sees_no_patient_value_in_any_bundle() -> None:
    checked = 0
    for raw, masked in masked_bundles(ENGINEER):
        # Organizations are not masked; a patient's ZIP code is often that of the hospital.
        own = json.dumps(resources(raw, "Organization"))
        text = json.dumps(masked)
        for patient in resources(raw, "Patient"):
            for value in patient_values(patient):
                pattern = r"(?<![\w-])" + re.escape(value) + r"(?![\w-])"
                if re.search(pattern, own):
                    continue
                assert not re.search(pattern, text), value
                checked += 1
        for practitioner in resources(raw, "Practitioner"):
            for name in practitioner["name"]:
                assert not re.search(rf"\b{re.escape(name['family'])}\b", text)
    assert checked > 30 * 10


def test_clinician_sees_names_and_birth_dates_not_ssns() -> None:
    clinician = role("clinician")
    for raw, masked in masked_bundles(clinician):
        text = json.dumps(masked)
        for before, after in zip(
            resources(raw, "Patient"), resources(masked, "Patient"), strict=True
        ):
            assert after["name"] == before["name"]
            assert after["birthDate"] == before["birthDate"]
            ssn = [i["value"] for i in before["identifier"] if i["system"].endswith("us-ssn")]
            assert ssn and ssn[0] not in text
            assert before["telecom"][0]["value"] not in text
            assert before["id"] not in text  # MRN is masked: so is the id


def test_a_view_that_sees_everything_changes_nothing() -> None:
    everything = role("everything")
    for raw, masked in list(masked_bundles(everything))[:3]:
        assert masked == raw


def test_ids_are_reversible_pseudonyms_and_references_still_resolve() -> None:
    pseudonyms = Pseudonyms(KEY)
    for raw, masked in masked_bundles(ENGINEER):
        for before, after in zip(raw["entry"], masked["entry"], strict=True):
            kind = before["resource"]["resourceType"]
            if kind == "Patient":
                token = after["resource"]["id"]
                assert token.startswith("pid-") and FHIR_ID.fullmatch(token)
                assert pseudonyms.decode(token) == before["resource"]["id"]
                assert after["fullUrl"] != before["fullUrl"]
            else:
                assert after["resource"]["id"] == before["resource"]["id"]
        targets = {e["fullUrl"] for e in masked["entry"]}
        for entry in masked["entry"]:
            resource = entry["resource"]
            contained = {"#" + c["id"] for c in resource.get("contained", ())}
            for reference in references(resource):
                assert reference in targets or reference in contained, reference


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node["reference"]
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def test_pseudonyms_refuse_tokens_they_did_not_make() -> None:
    ours, theirs = Pseudonyms(KEY), Pseudonyms(b"another key")
    for id_ in ("6d2eba67-5b4a-403f-a29f-e6da3f1ea963", "12345", "007", "abc.DEF-1", "x" * 64):
        token = ours.encode(id_)
        assert token == ours.encode(id_) and ours.decode(token) == id_
        assert theirs.decode(token) is None
        assert re.fullmatch(r"pid-[A-Za-z0-9\-.]+", token)
        flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
        assert ours.decode(flipped) is None
    assert len(ours.encode("6d2eba67-5b4a-403f-a29f-e6da3f1ea963")) <= 64
    for junk in ("", "pid-", "pid-!!", "pid-AAAA", "Patient/1", "pid-" + "A" * 5):
        assert ours.decode(junk) is None
    assert re.fullmatch(r"[0-9a-f-]{36}", ours.uuid("12345"))


def walk_values(node: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk_values(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk_values(value, f"{path}[{i}]")


@pytest.mark.parametrize("name", ["engineer", "strict"])
def test_masked_bundles_keep_the_shape_of_fhir_json(name: str) -> None:
    view = ENGINEER if name == "engineer" else role(name)
    for _raw, masked in masked_bundles(view):
        for path, value in walk_values(masked):
            assert value is not None, path  # FHIR JSON has no nulls
            assert value != [] and value != {}, path
            if path.endswith(".birthDate"):
                assert isinstance(value, str) and FHIR_DATE.fullmatch(value), value
            if path.endswith(".resource.id"):
                assert FHIR_ID.fullmatch(value), value
        for patient in resources(masked, "Patient"):
            if name == "strict":  # a redacted date has no valid form: the element goes
                assert "birthDate" not in patient
                assert all(set(n) <= {"use", "period"} for n in patient.get("name", ()))
            else:
                assert re.fullmatch(r"\d{4}", patient["birthDate"])
            for resource in [patient, *resources(masked, "CarePlan")]:
                ET.fromstring(resource["text"]["div"])  # still well-formed XHTML


@pytest.mark.parametrize("name", ["engineer", "strict", "clinician"])
def test_every_clinical_date_keeps_its_year_at_most(name: str) -> None:
    """Red-team run of 2026-12-07: encounter, observation, condition, procedure, immunization,
    medication and claim dates reached the engineer raw, while SQL shows only their year. Now
    every date of a resource about a person keeps its year (date_to_year), or goes (redact);
    an instant keeps a valid form. The clinician, who sees DATE raw, gets them all."""
    view = ENGINEER if name == "engineer" else role(name)
    seen = 0
    for raw, masked in masked_bundles(view):
        if name == "clinician":
            dates = [
                v for _, v in walk_values(raw) if isinstance(v, str) and FINE_DATE.fullmatch(v)
            ]
            seen += len(dates)
            assert [v for _, v in walk_values(masked) if v in dates] == dates
            continue
        fine = [
            (path, v) for path, v in walk_values(masked)
            if isinstance(v, str) and FINE_DATE.fullmatch(v)
            and not ("Organization" in path or v.endswith("-01-01T12:00:00Z"))
        ]  # fmt: skip
        assert not fine, fine[:5]
        for resource in resources(masked, "Encounter"):
            period = resource.get("period", {})
            if name == "engineer":
                assert re.fullmatch(r"\d{4}", period["start"]), period
            else:
                assert not period
        for resource in resources(masked, "Observation"):
            issued = resource.get("issued")
            if name == "strict":
                assert issued is None
            else:
                assert isinstance(issued, str) and issued.endswith("-01-01T12:00:00Z")
    assert seen > 3000 or name != "clinician"


def test_counts_by_entity() -> None:
    m = masker(ENGINEER)
    m.mask(json.loads(raw_bundles()[0]))
    counts = m.take_counts()
    for entity in ("SSN", "PHONE", "LICENSE"):
        assert counts[entity] == 1, entity
    raw = json.loads(raw_bundles()[0])
    dated = [e["resource"] for e in raw["entry"] if e["resource"]["resourceType"] not in UNDATED]
    fine = [v for _, v in walk_values(dated) if isinstance(v, str) and FINE_DATE.fullmatch(v)]
    assert len(fine) > 100 and counts["DATE"] == len(fine)  # the birth date is one of them
    assert counts["NAME"] >= 3 and counts["GEO"] >= 3 and counts["MRN"] >= 2
    assert not m.counts


NARRATIVE = (
    '<div xmlns="http://www.w3.org/1999/xhtml"><p>Patient <b>John Smith</b>, SSN 123-45-6789 '
    '&amp; phone (617) 555-0199.</p><a href="mailto:john.smith@example.com">mail</a></div>'
)


def server_bundle() -> dict[str, Any]:
    """A searchset as a FHIR server returns it: absolute fullUrls, Type/id references, paging
    links, displays, free text, contained resources and identifiers in other resources."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [
            {"relation": "self", "url": "http://fhir.test/r4/Observation?patient=p123&_count=2"},
            {
                "relation": "next",
                "url": "http://fhir.test/r4/Observation?subject=Patient%2Fp123"
                "&_getpages=abc&_id=o1",
            },
            {"relation": "alt", "url": "http://fhir.test/r4/Patient?_id=p123,p999"},
        ],
        "entry": [
            {
                "fullUrl": "http://fhir.test/r4/Patient/p123",
                "resource": {
                    "resourceType": "Patient",
                    "id": "p123",
                    "text": {
                        "status": "generated",
                        "div": NARRATIVE,
                    },
                    "identifier": [
                        {"type": {"coding": [{"code": "MR"}]}, "value": "p123"},
                        {"system": "urn:oid:2.16.840.1.113883.4.1", "value": "123-45-6789"},
                    ],
                    "name": [{"family": "Smith", "given": ["John"], "_given": [None]}],
                    "telecom": [
                        {"system": "email", "value": "john.smith@example.com"},
                        {"system": "fax", "value": "617-555-0100"},
                    ],
                    "birthDate": "1950-03-04",
                    "_birthDate": {
                        "extension": [
                            {
                                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                "valueDateTime": "1950-03-04T10:11:00Z",
                            }
                        ]
                    },
                    "deceasedDateTime": "2020-05-06T07:08:09+00:00",
                    "photo": [{"contentType": "image/jpeg", "data": "AAAA"}],
                    "contact": [
                        {
                            "name": {"family": "Smith", "given": ["Mary"]},
                            "telecom": [{"system": "phone", "value": "617-555-0111"}],
                        }
                    ],
                    "extension": [
                        {
                            "url": "http://example.org/national-id",
                            "valueIdentifier": {
                                "system": "http://example.org/nid",
                                "value": "N-778",
                            },
                        }
                    ],
                    "link": [{"other": {"reference": "RelatedPerson/rp7"}, "type": "seealso"}],
                    "generalPractitioner": [
                        {"reference": "Practitioner/dr1", "display": "Dr. Gregory House"}
                    ],
                },
                "search": {"mode": "include"},
            },
            {
                "fullUrl": "http://fhir.test/r4/Observation/o1",
                "resource": {
                    "resourceType": "Observation",
                    "id": "o1",
                    "subject": {"reference": "Patient/p123", "display": "John Smith"},
                    "performer": [{"reference": "http://fhir.test/r4/Patient/p123/_history/2"}],
                    "note": [
                        {
                            "text": "Called John Smith at (617) 555-0199 about results.",
                            "authorString": "Mary Smith",
                        }
                    ],
                    "valueQuantity": {"value": 7.2, "unit": "mmol/L"},
                    "effectiveDateTime": "2020-01-02T03:04:05Z",
                },
            },
            {
                "fullUrl": "http://fhir.test/r4/ExplanationOfBenefit/e1",
                "resource": {
                    "resourceType": "ExplanationOfBenefit",
                    "id": "e1",
                    "contained": [
                        {
                            "resourceType": "Coverage",
                            "id": "cov",
                            "subscriberId": "W123456789",
                            "identifier": [
                                {"type": {"coding": [{"code": "MB"}]}, "value": "MB-55501"}
                            ],
                            "beneficiary": {"reference": "Patient/p123"},
                        },
                        {
                            "resourceType": "RelatedPerson",
                            "id": "rp",
                            "name": [{"text": "Mary Smith"}],
                            "patient": {"reference": "#cov"},
                        },
                    ],
                    "identifier": [{"system": "http://payer.test/claim", "value": "CLM-1"}],
                    "insurance": [{"coverage": {"reference": "#cov"}}],
                    "description": "Claim for John Smith, DOB 03/04/1950",
                },
            },
            {
                "fullUrl": "http://fhir.test/r4/PractitionerRole/pr1",
                "resource": {
                    "resourceType": "PractitionerRole",
                    "id": "pr1",
                    "practitioner": {"reference": "Practitioner/dr1", "display": "Gregory House"},
                    "code": [{"coding": [{"code": "doctor", "display": "Doctor"}]}],
                },
            },
        ],
    }


def test_a_server_searchset_bundle() -> None:
    m = masker(ENGINEER)
    pseudonyms = m.pseudonyms
    masked = m.mask(server_bundle())
    text = json.dumps(masked)
    for leaked in ("p123", "Smith", "John", "123-45-6789", "555-0199", "555-0100", "555-0111",
                   "john.smith", "1950-03-04", "2020-05-06", "N-778", "W123456789", "MB-55501",
                   "House", "Mary", "rp7", "AAAA"):  # fmt: skip
        assert leaked not in text, leaked
    token = pseudonyms.encode("p123")
    assert pseudonyms.decode(token) == "p123"
    links = [link["url"] for link in masked["link"]]
    assert links[0] == f"http://fhir.test/r4/Observation?patient={token}&_count=2"
    assert links[1] == (
        f"http://fhir.test/r4/Observation?subject=Patient%2F{token}&_getpages=abc&_id=o1"
    )
    assert links[2] == f"http://fhir.test/r4/Patient?_id={token},{pseudonyms.encode('p999')}"
    patient, observation, eob, role_ = (e["resource"] for e in masked["entry"])
    assert masked["entry"][0]["fullUrl"] == f"http://fhir.test/r4/Patient/{token}"
    assert patient["id"] == token
    assert "photo" not in patient and "_given" not in patient["name"][0]
    assert "_birthDate" not in patient and patient["birthDate"] == "1950"
    assert patient["deceasedDateTime"] == "2020"
    assert patient["link"][0]["other"]["reference"].startswith("RelatedPerson/pid-")
    assert patient["extension"][0]["valueIdentifier"]["value"].startswith("ID-")
    assert patient["generalPractitioner"][0] == {"reference": "Practitioner/dr1",
                                                 "display": "[NAME]"}  # fmt: skip
    div = patient["text"]["div"]
    ET.fromstring(div)
    assert "[SSN]" in div and "[PHONE]" in div and "[EMAIL]" in div and "&amp;" in div
    assert observation["subject"] == {"reference": f"Patient/{token}", "display": "[NAME]"}
    assert observation["performer"][0]["reference"] == (
        f"http://fhir.test/r4/Patient/{token}/_history/2"
    )
    assert observation["note"][0]["authorString"] == "[NAME]"
    assert observation["effectiveDateTime"] == "2020"  # clinical dates too: the year
    coverage, related = eob["contained"]
    assert coverage["subscriberId"].startswith("HP-")
    assert coverage["identifier"][0]["value"].startswith("HP-")
    assert coverage["beneficiary"]["reference"] == f"Patient/{token}"
    assert related["id"] == "rp"  # a contained resource's id is local to its container
    assert eob["identifier"][0]["value"] == "CLM-1"  # not a person's identifier
    assert eob["insurance"][0]["coverage"]["reference"] == "#cov"
    assert role_["practitioner"]["display"] == "[NAME]"
    assert role_["code"][0]["coding"][0]["display"] == "Doctor"
    counts = m.take_counts()
    assert counts["SSN"] >= 2 and counts["PHOTO"] == 1 and counts["HEALTH_PLAN_ID"] == 2


def test_mrn_seen_raw_keeps_ids() -> None:
    view = View(frozenset({"MRN"}), POLICY.base)
    masked = masker(view).mask(server_bundle())
    assert masked["entry"][0]["resource"]["id"] == "p123"
    assert masked["link"][0]["url"].endswith("patient=p123&_count=2")
    assert masked["entry"][0]["resource"]["name"][0]["family"] == "[NAME]"


def test_a_single_resource_and_masking_in_place() -> None:
    patient = copy.deepcopy(server_bundle()["entry"][0]["resource"])
    m = masker(role("clinician"))
    out = m.mask(patient)
    assert out is patient and patient["id"] == m.pseudonyms.encode("p123")
    assert patient["name"][0]["family"] == "Smith" and patient["birthDate"] == "1950-03-04"
    assert patient["identifier"][1]["value"] == "[SSN]"


def test_a_name_in_capitals_in_a_narrative_is_masked() -> None:
    """The narrative's text nodes are scanned as one batch; a node in capitals is read
    title-cased like a text alone, whatever the case of the nodes beside it."""
    div = (
        '<div xmlns="http://www.w3.org/1999/xhtml"><p><b>Performer</b>: KATHLEEN SMITH</p>'
        "<p>Follow up in two weeks.</p></div>"
    )
    observation = {"resourceType": "Observation", "id": "o1", "status": "final",
                   "text": {"status": "generated", "div": div}}  # fmt: skip
    masked = masker(ENGINEER).mask(observation)["text"]["div"]
    assert "KATHLEEN" not in masked and "SMITH" not in masked
    assert "<b>Performer</b>: [NAME]" in masked and "Follow up in two weeks." in masked


# ---- JSON paths


def test_json_path_rules() -> None:
    document = {
        "patients": [
            {"name": "Ann Lee", "ssn": "123-45-6789", "dob": "1980-02-03", "visits": 3},
            {"name": "Bo Chan", "ssn": "987-65-4321", "dob": "1991-12-01", "visits": 1},
        ],
        "items": [{"contact": {"email": "ann@example.com", "kind": "home"}}],
        "meta": {"comment": "call 617-555-0199", "deep": {"ssn": "111-22-3333"}},
        "notes": ["Patient Ann Lee, MRN 00123456"],
    }
    rules = {"$.patients[*].ssn": "SSN", "$.items[*].contact.email": "EMAIL", "$..dob": "DATE",
             "$.patients[0]['name']": "NAME", "$.notes": "TEXT", "$..deep.ssn": "SSN"}  # fmt: skip
    view = POLICY.view(None)
    text = TextMasker(KEY, view.text_operators())
    m = JsonMasker(view, KEY, rules, text=text)
    out = m.mask(copy.deepcopy(document))
    assert [p["ssn"] for p in out["patients"]] == ["[SSN]", "[SSN]"]
    assert [p["dob"] for p in out["patients"]] == ["1980", "1991"]
    assert [p["name"] for p in out["patients"]] == ["[NAME]", "Bo Chan"]
    assert out["items"][0]["contact"] == {"email": "[EMAIL]", "kind": "home"}
    assert out["meta"] == {"comment": "call 617-555-0199", "deep": {"ssn": "[SSN]"}}
    assert "Ann Lee" not in out["notes"][0] and "00123456" not in out["notes"][0]
    assert out["patients"][0]["visits"] == 3
    assert m.counts["SSN"] == 3 and m.counts["DATE"] == 2 and m.counts["NAME"] >= 2

    scanning = JsonMasker(view, KEY, {"$.patients[*].ssn": "SSN"}, text=text, scan_strings=True)
    out = scanning.mask(copy.deepcopy(document))
    assert out["meta"]["comment"] == "call [PHONE]" and out["patients"][0]["ssn"] == "[SSN]"

    clinician = JsonMasker(role("clinician"), KEY, rules, text=text)
    out = clinician.mask(copy.deepcopy(document))
    assert out["patients"][0]["dob"] == "1980-02-03" and out["patients"][0]["ssn"] == "[SSN]"


def test_json_path_syntax() -> None:
    doc = {"a": [{"b": 1}, {"b": 2}], "q": {"x": [0, 1, {"y z": {"k": 3, "l": 4}}]}}
    assert [c[k] for c, k in find(doc, parse_path("$.a[*].b"))] == [1, 2]
    assert [c[k] for c, k in find(doc, parse_path("$..x[2]['y z'].*"))] == [3, 4]
    assert [c[k] for c, k in find(doc, parse_path("$.a[-1]"))] == [{"b": 2}]
    for bad in ("a.b", "$.a[", "$.a b", "$[?(@.x)]"):
        with pytest.raises(PathError):
            parse_path(bad)
    with pytest.raises(PathError):
        JsonMasker(ENGINEER, KEY, {"$.a": "NOT_AN_ENTITY"})
    with pytest.raises(ValueError):
        JsonMasker(ENGINEER, KEY, {"$.a": "TEXT"})  # content scanning needs a TextMasker


# ---- searches on masked elements (masking/fhir_search.py) -----------------------------------


@pytest.mark.parametrize(
    ("resource", "query", "engineer", "clinician"),
    [("Patient", "family=Sm", False, True), ("Patient", "birthdate=ge1980", False, True),
     ("Patient", "Birthdate:missing=true", False, True), ("Patient", "phone=555", False, False),
     ("Patient", "identifier=1234", False, False), ("Patient", "identifier=pid-abc", True, True),
     ("Patient", "gender=male", True, True), ("Patient", "_sort=-birthdate", False, True),
     ("Patient", "_sort=_lastUpdated", False, True), ("Patient", "_content=x", False, False),
     ("Observation", "patient.family=Sm", False, True), ("Observation", "date=ge2020", True, True),
     ("Observation", "date=ge2020-06-15", False, True), ("Encounter", "date=ap2020", False, True),
     ("Observation", "_sort=-date", False, True), ("Observation", "code=8302-2", True, True),
     ("Observation", "encounter.date=lt2019-02", False, True),
     ("Condition", "onset-date=2019-03-04,2019-03-05", False, True),
     ("Observation", "_lastUpdated=gt2020-03-01T00:00:00Z", False, True),
     ("Procedure", "_has:Observation:partof:date=2020-01", False, True),
     ("Organization", "_lastUpdated=ge2020-01-01", True, True),
     ("Observation", "patient=pid-2019-01", True, True),
     ("Observation", "patient=Patient/123", False, False),
     ("Observation", "subject=Group/1", True, True), ("Observation", "_id=123", True, True),
     ("Coverage", "subscriber-id=M1", False, False),
     ("Patient", "_has:RelatedPerson:patient:given=Ann", False, True),
     ("Observation", "patient._id=123", False, False),
     ("Observation", "patient._id=pid-abc", True, True), ("Patient", "family%20=Sm", False, True)],
)  # fmt: skip
def test_search_parameters_on_masked_elements(
    resource: str, query: str, engineer: bool, clinician: bool
) -> None:
    from wardgate.masking.fhir_search import refusal

    target = f"/ehr/{resource}?{query.replace('%20', ' ')}"
    assert (refusal(ENGINEER, resource, target) is None) is engineer
    assert (refusal(role("clinician"), resource, target) is None) is clinician
    assert refusal(role("everything"), resource, target) is None


def test_json_that_is_not_a_resource_is_still_masked() -> None:
    from wardgate.config import ApiTarget
    from wardgate.masking.detectors import Scanner, ScannerConfig
    from wardgate.masking.documents import Documents

    api = ApiTarget.model_validate({"name": "ehr", "kind": "fhir", "url": "http://127.0.0.1:1"})
    docs = Documents({"ehr": api}, POLICY, KEY, Scanner(ScannerConfig()))
    patient = {"resourceType": "Patient", "id": "p1", "name": [{"family": "Quigley"}]}
    answer = {"items": [patient, "ssn 123-45-6789"], "url": "https://gw/ehr/_export/123-45-6789"}
    masked, _ = docs.mask("ehr", None, answer)
    assert masked["items"][0]["name"] == [{"family": "[NAME]"}]
    assert "123-45-6789" not in masked["items"][1]
    assert masked["url"] == answer["url"]  # a link to follow, not text
    top, _ = docs.mask("ehr", None, [copy.deepcopy(patient)])
    assert top[0]["id"].startswith("pid-") and "Quigley" not in json.dumps(top)


def test_an_export_manifest_pointing_around_the_gateway_is_refused() -> None:
    from wardgate.config import ApiTarget
    from wardgate.core.documents import Unmaskable
    from wardgate.masking.detectors import Scanner, ScannerConfig
    from wardgate.masking.documents import Documents

    api = ApiTarget.model_validate({"name": "ehr", "kind": "fhir", "url": "http://127.0.0.1:1"})
    docs = Documents({"ehr": api}, POLICY, KEY, Scanner(ScannerConfig()))
    files = [{"type": "Patient", "url": "https://gw/ehr/files/1.ndjson"}]
    manifest = {"transactionTime": "t", "request": "https://gw/ehr/$export", "output": files}
    assert docs.mask("ehr", None, copy.deepcopy(manifest))[0] == manifest
    manifest["output"] = [{"type": "Patient", "url": "https://bucket.example/1.ndjson?sig=x"}]
    with pytest.raises(Unmaskable):
        docs.mask("ehr", None, manifest)


def test_decoded_ids_go_back_as_pseudonyms_as_whole_ids_only() -> None:
    from wardgate.config import ApiTarget
    from wardgate.masking.detectors import Scanner, ScannerConfig
    from wardgate.masking.documents import Documents

    api = ApiTarget.model_validate({"name": "ehr", "kind": "fhir", "url": "http://127.0.0.1:1"})
    docs = Documents({"ehr": api}, POLICY, KEY, Scanner(ScannerConfig()))
    token = docs.pseudonyms.encode("5")
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error",
               "code": "not-found", "details": {"text": "Patient/5 is not known."},
               "expression": ["Observation.value = 15.5 or 5.5"]}]}  # fmt: skip
    masked, _ = docs.mask("ehr", None, outcome, f"/ehr/Patient/{token}")
    assert masked["issue"][0]["details"]["text"] == f"Patient/{token} is not known."
    assert masked["issue"][0]["expression"] == ["Observation.value = 15.5 or 5.5"]


def test_free_text_repeated_across_resources_and_documents_is_masked_and_counted_each_time() -> (
    None
):
    """A document's free text is scanned as one batch, each distinct text once, and short
    texts' findings are kept for later documents: every occurrence is still masked and
    counted, in the first document and in the next."""
    m = masker(ENGINEER)
    note = {"text": "Call 555-201-4477 about SSN 123-45-6789"}

    def bundle() -> dict[str, Any]:
        entries = [
            {"resource": {"resourceType": "Observation", "id": f"o{i}", "note": [dict(note)]}}
            for i in range(3)
        ]
        return {"resourceType": "Bundle", "type": "searchset", "entry": entries}

    for _ in range(2):
        masked = m.mask(bundle())
        texts = [e["resource"]["note"][0]["text"] for e in masked["entry"]]
        assert all("123-45-6789" not in t and "555-201-4477" not in t for t in texts), texts
        counts = m.take_counts()
        assert counts["SSN"] == 3 and counts["PHONE"] == 3, counts


def test_findings_are_not_kept_across_documents_by_a_scanner_with_extra_detectors() -> None:
    """Known values (an extra detector) change when a catalog reloads: then nothing is kept."""
    from wardgate.masking.detectors import Scanner, ScannerConfig
    from wardgate.masking.detectors.known import KnownValues

    known = KnownValues()
    text = TextMasker(KEY, ENGINEER.text_operators(), Scanner(ScannerConfig(extra=(known,))))
    m = FhirMasker(ENGINEER, KEY, text)
    doc = {"resourceType": "Observation", "note": [{"text": "seen by Quoxwell"}]}
    assert m.mask(copy.deepcopy(doc))["note"][0]["text"] == "seen by Quoxwell"
    known.replace({Entity.NAME: ["Quoxwell"]})
    assert "Quoxwell" not in m.mask(copy.deepcopy(doc))["note"][0]["text"]

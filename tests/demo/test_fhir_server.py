"""The development FHIR server on 127.0.0.1 (port 0), driven by httpx and by a FHIR client
library (fhirpy). Expected values come from the packaged bundles as they are, not from the
server's store."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, ResourceNotFound

from wardgate.demo import fhir_data
from wardgate.demo.fhir import FhirServer, running_fhir_server
from wardgate.demo.fhir.misbehave import HUGE_BYTES

API_KEY = "upstream-" + secrets.token_hex(12)
FHIR_JSON = "application/fhir+json"
RAW_PATIENTS = list(fhir_data.resources_of("Patient"))


def _patient_bundle(patient_id: str) -> dict[str, Any]:
    for bundle in fhir_data.bundles():
        if any(e["resource"]["id"] == patient_id for e in bundle["entry"]):
            return bundle
    raise LookupError(patient_id)


def _mentions(resource: dict[str, Any], patient_id: str) -> bool:
    return f'"urn:uuid:{patient_id}"' in json.dumps(resource)


@pytest.fixture(scope="module")
def server() -> Iterator[FhirServer]:
    with running_fhir_server(API_KEY) as running:
        yield running


@pytest.fixture(scope="module")
def misbehaving() -> Iterator[FhirServer]:
    with running_fhir_server(API_KEY, misbehave=True) as running:
        yield running


@pytest.fixture
def http(server: FhirServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=server.auth_headers, timeout=30) as c:
        yield c


@pytest.fixture
def fhir(server: FhirServer) -> SyncFHIRClient:
    return SyncFHIRClient(server.base_url, extra_headers=server.auth_headers)


def _follow(http: httpx.Client, url: str) -> tuple[list[dict[str, Any]], list[int]]:
    """Every entry of a search, page after page by its ``next`` links; and each page's total."""
    entries: list[dict[str, Any]] = []
    totals: list[int] = []
    next_url: str | None = url
    while next_url is not None:
        page = http.get(next_url)
        assert page.status_code == 200
        bundle = page.json()
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
        entries += bundle.get("entry", [])
        totals.append(bundle["total"])
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert links["self"].startswith(f"{http.base_url}".rstrip("/") + "/")
        next_url = links.get("next")
    return entries, totals


def test_every_request_needs_the_api_key(server: FhirServer) -> None:
    patient = RAW_PATIENTS[0]["id"]
    for path in ("/metadata", "/Patient", f"/Patient/{patient}", "/$export", "/_test/error"):
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
            answer = httpx.get(server.base_url + path, headers=headers)
            assert answer.status_code == 401, (path, headers)
            assert answer.headers["content-type"] == FHIR_JSON
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert answer.json()["resourceType"] == "OperationOutcome"
            assert API_KEY not in answer.text
    for good in ({"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}):
        assert httpx.get(server.base_url + "/metadata", headers=good).status_code == 200
    with pytest.raises(AuthorizationError):
        SyncFHIRClient(server.base_url).resources("Patient").fetch()


def test_the_key_header_is_configurable() -> None:
    with FhirServer(API_KEY, header="X-Upstream-Token", bearer=False) as custom:
        url = custom.base_url + "/Patient"
        assert httpx.get(url, headers={"X-Upstream-Token": API_KEY}).status_code == 200
        assert httpx.get(url, headers={"X-API-Key": API_KEY}).status_code == 401
        assert httpx.get(url, headers={"Authorization": f"Bearer {API_KEY}"}).status_code == 401


def test_binds_loopback_only_and_needs_a_key() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FhirServer(API_KEY, host="0.0.0.0")
    with pytest.raises(ValueError, match="key"):
        FhirServer("")


def test_capability_statement(http: httpx.Client) -> None:
    answer = http.get("/metadata", params={"_format": "xml"})  # _format is ignored
    assert answer.headers["content-type"] == FHIR_JSON
    statement = answer.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    patient_params = {p["name"] for p in resources["Patient"]["searchParam"]}
    assert {"_id", "name", "family", "given", "birthdate", "identifier", "gender"} <= patient_params
    assert "Observation:patient" in resources["Observation"]["searchInclude"]


def test_read(http: httpx.Client, fhir: SyncFHIRClient) -> None:
    raw = RAW_PATIENTS[0]
    answer = http.get(f"/Patient/{raw['id']}")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == FHIR_JSON
    served = answer.json()
    assert served["name"] == raw["name"] and served["identifier"] == raw["identifier"]
    patient = fhir.reference("Patient", raw["id"]).to_resource()
    assert patient["birthDate"] == raw["birthDate"]
    # a transaction's urn:uuid: references are served as relative references
    observation = fhir.resources("Observation").search(patient=raw["id"]).first()
    assert observation is not None
    assert observation["subject"]["reference"] == f"Patient/{raw['id']}"
    assert observation["encounter"]["reference"].startswith("Encounter/")
    with pytest.raises(ResourceNotFound):
        fhir.reference("Patient", "no-such-patient").to_resource()


@pytest.mark.parametrize("path", ["/Patient/no-such-patient", "/Nothing/1", "/Nothing"])
def test_unknown_is_404_with_an_outcome(http: httpx.Client, path: str) -> None:
    answer = http.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == FHIR_JSON
    assert answer.json()["resourceType"] == "OperationOutcome"


def test_search_by_name(fhir: SyncFHIRClient) -> None:
    raw = RAW_PATIENTS[3]
    family, given = raw["name"][0]["family"], raw["name"][0]["given"][0]
    want = {p["id"] for p in RAW_PATIENTS if p["name"][0]["family"] == family}
    found = fhir.resources("Patient").search(family=family).fetch_all()
    assert {p["id"] for p in found} == want
    by_prefix = fhir.resources("Patient").search(name=given[:3].lower()).fetch_all()
    assert raw["id"] in {p["id"] for p in by_prefix}
    both = fhir.resources("Patient").search(family=family, given=given).fetch_all()
    assert raw["id"] in {p["id"] for p in both}
    assert fhir.resources("Patient").search(name="Zzzyzx").fetch_all() == []


def test_search_by_identifier(fhir: SyncFHIRClient) -> None:
    raw = RAW_PATIENTS[5]
    ssn = next(i for i in raw["identifier"] if i["system"] == "http://hl7.org/fhir/sid/us-ssn")
    found = fhir.resources("Patient").search(identifier=f"{ssn['system']}|{ssn['value']}").get()
    assert found["id"] == raw["id"]
    assert fhir.resources("Patient").search(identifier=ssn["value"]).get()["id"] == raw["id"]
    wrong_system = f"http://hospital.smarthealthit.org|{ssn['value']}"
    assert fhir.resources("Patient").search(identifier=wrong_system).fetch() == []


def test_search_by_birthdate_and_gender(fhir: SyncFHIRClient, http: httpx.Client) -> None:
    raw = RAW_PATIENTS[7]
    on_day = fhir.resources("Patient").search(birthdate=raw["birthDate"]).fetch_all()
    assert raw["id"] in {p["id"] for p in on_day}
    assert all(p["birthDate"] == raw["birthDate"] for p in on_day)
    born = sorted(p["birthDate"] for p in RAW_PATIENTS)
    low, high = born[5], born[20]
    between = fhir.resources("Patient").search(birthdate__ge=low, birthdate__le=high).fetch_all()
    assert sorted(p["birthDate"] for p in between) == [d for d in born if low <= d <= high]
    year = raw["birthDate"][:4]
    in_year = http.get("/Patient", params={"birthdate": year, "_count": 200}).json()
    assert in_year["total"] == sum(d.startswith(year) for d in born)
    females = fhir.resources("Patient").search(gender="female").count()
    assert females == sum(p["gender"] == "female" for p in RAW_PATIENTS)


def test_paging_through_a_patient_search(http: httpx.Client, fhir: SyncFHIRClient) -> None:
    entries, totals = _follow(http, "/Patient?_count=7")
    assert totals == [len(RAW_PATIENTS)] * 5  # 7 + 7 + 7 + 7 + 2
    assert len(entries) == len(RAW_PATIENTS)
    assert {e["resource"]["id"] for e in entries} == {p["id"] for p in RAW_PATIENTS}
    assert all(e["search"]["mode"] == "match" for e in entries)
    assert all(e["fullUrl"].endswith(f"/Patient/{e['resource']['id']}") for e in entries)
    second = http.get("/Patient", params={"_count": 7, "_offset": 7}).json()
    links = {link["relation"]: link["url"] for link in second["link"]}
    assert set(links) == {"self", "next", "previous"}
    first = http.get("/Patient?_count=7").json()["entry"]
    assert http.get(links["previous"]).json()["entry"] == first
    assert len(fhir.resources("Patient").limit(4).fetch_all()) == len(RAW_PATIENTS)


def test_counts_and_limits(http: httpx.Client, fhir: SyncFHIRClient) -> None:
    summary = http.get("/Patient", params={"_summary": "count"}).json()
    assert summary["total"] == len(RAW_PATIENTS) and "entry" not in summary
    assert fhir.resources("Patient").count() == len(RAW_PATIENTS)
    assert len(http.get("/Observation").json()["entry"]) == 20  # the default page
    assert len(http.get("/Observation", params={"_count": 5000}).json()["entry"]) == 200
    # unknown parameters are ignored, and left out of the links
    lenient = http.get("/Patient", params={"no-such-param": "x", "_format": "xml"}).json()
    assert lenient["total"] == len(RAW_PATIENTS)
    assert "no-such-param" not in json.dumps(lenient["link"])
    for bad in ({"_count": "many"}, {"name:fuzzy": "x"}, {"birthdate": "ge-last-week"}):
        refused = http.get("/Patient", params=bad)
        assert refused.status_code == 400
        assert refused.json()["resourceType"] == "OperationOutcome"


def test_search_by_patient_with_include(http: httpx.Client, fhir: SyncFHIRClient) -> None:
    raw = RAW_PATIENTS[2]
    resources = [e["resource"] for e in _patient_bundle(raw["id"])["entry"]]
    want = {r["id"] for r in resources if r["resourceType"] == "Observation"}
    search = fhir.resources("Observation").search(patient=raw["id"]).limit(200)
    assert {o["id"] for o in search.fetch_all()} == want
    by_subject = http.get("/Observation", params={"subject": f"Patient/{raw['id']}"}).json()
    assert by_subject["total"] == len(want)

    page = search.limit(10).include("Observation", "patient").fetch_raw()
    modes = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in page["entry"]]
    assert modes == [("Observation", "match")] * 10 + [("Patient", "include")]
    assert page["total"] == len(want)  # includes are not counted
    encounters = http.get(
        "/Encounter", params={"subject": raw["id"], "_include": "Encounter:subject"}
    ).json()
    included = [e for e in encounters["entry"] if e["search"]["mode"] == "include"]
    assert [e["resource"]["id"] for e in included] == [raw["id"]]


def test_search_by_date_and_code(fhir: SyncFHIRClient) -> None:
    raw = RAW_PATIENTS[1]
    obs = next(
        e["resource"]
        for e in _patient_bundle(raw["id"])["entry"]
        if e["resource"]["resourceType"] == "Observation"
    )
    coding = obs["code"]["coding"][0]
    day = obs["effectiveDateTime"][:10]
    mine = fhir.resources("Observation").search(patient=raw["id"]).limit(200)
    by_code = mine.search(code=f"{coding['system']}|{coding['code']}").fetch_all()
    assert obs["id"] in {o["id"] for o in by_code}
    assert all(o["code"]["coding"][0]["code"] == coding["code"] for o in by_code)
    assert obs["id"] in {o["id"] for o in mine.search(date=day).fetch_all()}
    assert obs["id"] not in {o["id"] for o in mine.search(date__lt=day).fetch_all()}
    assert obs["id"] in {o["id"] for o in mine.search(date__ge=day[:4]).fetch_all()}


def test_everything(http: httpx.Client) -> None:
    raw = RAW_PATIENTS[4]
    resources = [e["resource"] for e in _patient_bundle(raw["id"])["entry"]]
    want = {raw["id"]} | {r["id"] for r in resources if _mentions(r, raw["id"])}
    entries, totals = _follow(http, f"/Patient/{raw['id']}/$everything?_count=50")
    assert {e["resource"]["id"] for e in entries} == want
    assert totals[0] == len(want) == len(entries)
    assert entries[0]["resource"]["resourceType"] == "Patient"
    assert http.get("/Patient/no-such-patient/$everything").status_code == 404


def _export(http: httpx.Client, path: str) -> dict[str, list[dict[str, Any]]]:
    assert http.get(path).status_code == 400  # without Prefer: respond-async
    kick_off = http.get(path, headers={"Prefer": "respond-async", "Accept": FHIR_JSON})
    assert kick_off.status_code == 202
    status_url = kick_off.headers["content-location"]
    assert status_url.startswith(str(http.base_url))
    first = http.get(status_url)
    assert first.status_code == 202 and first.headers["x-progress"]
    manifest = http.get(status_url)
    assert manifest.status_code == 200
    body = manifest.json()
    assert body["requiresAccessToken"] is True and body["error"] == []
    files: dict[str, list[dict[str, Any]]] = {}
    for item in body["output"]:
        assert httpx.get(item["url"]).status_code == 401  # the files need the key too
        answer = http.get(item["url"])
        assert answer.headers["content-type"] == "application/fhir+ndjson"
        assert "urn:uuid:" not in answer.text
        lines = [json.loads(line) for line in answer.text.splitlines()]
        assert len(lines) == item["count"]
        assert {r["resourceType"] for r in lines} == {item["type"]}
        files[item["type"]] = lines
    assert http.delete(status_url).status_code == 202
    assert http.get(status_url).status_code == 404
    return files


def test_bulk_export(http: httpx.Client) -> None:
    files = _export(http, "/$export")
    for kind in ("Patient", "Observation", "Encounter", "Claim", "Organization"):
        want = {r["id"] for r in fhir_data.resources_of(kind)}
        assert {r["id"] for r in files[kind]} == want


def test_patient_export(http: httpx.Client) -> None:
    files = _export(http, "/Patient/$export")
    assert "Organization" not in files and "Practitioner" not in files
    assert len(files["Patient"]) == len(RAW_PATIENTS)
    only = _export(http, "/Patient/$export?_type=Patient,Immunization")
    assert set(only) == {"Patient", "Immunization"}
    unknown = http.get("/$export?_type=Nothing", headers={"Prefer": "respond-async"})
    assert unknown.status_code == 400


@pytest.mark.parametrize("path", ["/_test/malformed", "/_test/error", "/_test/huge", "/_test/slow"])
def test_misbehaviour_needs_the_flag(http: httpx.Client, path: str) -> None:
    assert http.get(path).status_code == 404


def test_malformed_and_error(misbehaving: FhirServer) -> None:
    headers = misbehaving.auth_headers
    malformed = httpx.get(misbehaving.base_url + "/_test/malformed", headers=headers)
    assert malformed.status_code == 200 and malformed.headers["content-type"] == FHIR_JSON
    with pytest.raises(json.JSONDecodeError):
        malformed.json()
    error = httpx.get(misbehaving.base_url + "/_test/error", headers=headers)
    assert error.status_code == 503
    assert error.json()["resourceType"] == "OperationOutcome"
    assert httpx.get(misbehaving.base_url + "/_test/error").status_code == 401


def test_huge(misbehaving: FhirServer) -> None:
    url, headers = misbehaving.base_url + "/_test/huge", misbehaving.auth_headers
    received, head, tail = 0, b"", b""
    with httpx.stream("GET", url, headers=headers, timeout=60) as answer:
        assert answer.headers["content-length"] == str(HUGE_BYTES)
        for chunk in answer.iter_bytes():
            head = head or chunk[:40]
            tail = (tail + chunk)[-2:]
            received += len(chunk)
    assert received == HUGE_BYTES
    assert head.startswith(b'{"resourceType":"Bundle"') and tail == b"]}"
    small = httpx.get(url, params={"bytes": 150_000, "chunked": 1}, headers=headers)
    assert "content-length" not in small.headers and len(small.content) == 150_000
    assert all(e["resource"]["resourceType"] == "Patient" for e in small.json()["entry"])


def test_slow(misbehaving: FhirServer) -> None:
    url, headers = misbehaving.base_url + "/_test/slow", misbehaving.auth_headers
    started = time.monotonic()
    answer = httpx.get(url, params={"seconds": 1}, headers=headers)
    assert answer.status_code == 200 and time.monotonic() - started >= 1.0
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, params={"seconds": 1.5}, headers=headers, timeout=0.3)


def test_stopping_ends_a_slow_answer() -> None:
    answers: list[int] = []
    with running_fhir_server(API_KEY, misbehave=True) as running:
        url = running.base_url + "/_test/slow"
        call = threading.Thread(
            target=lambda: answers.append(
                httpx.get(url, params={"seconds": 60}, headers=running.auth_headers).status_code
            )
        )
        call.start()
        time.sleep(0.3)
        started = time.monotonic()
    assert time.monotonic() - started < 3
    call.join(5)
    assert answers == [503]

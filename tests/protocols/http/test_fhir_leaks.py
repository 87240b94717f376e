"""Issue 15, FHIR: the ways around the masker, tried as the engineer (alice, masked) against the
development FHIR server through the gateway; the clinician (bob) still gets what policy allows.

- the ``$export`` rule read the path before percent-decoding: every spelling of one request gets
  one decision, ambiguous spellings are refused (400);
- a bulk export's NDJSON files passed unmasked, and anyone could fetch anyone's;
- an answer the gateway cannot parse (plain text) passed raw;
- 404 and 405 diagnostics echoed the real id behind a ``pid-`` pseudonym;
- the Host header chose the links in Bundles and ``Content-Location``;
- search parameters on masked elements were an oracle (a birth date in 9 requests).
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator

import httpx
import pytest
import yaml

from tests.gateway_harness import RunningGateway, running
from tests.protocols.http.test_fhir_gateway import base, human_tokens, identifiers, leaks
from wardgate.config import loads
from wardgate.demo.fhir import running_fhir_server
from wardgate.demo.fhir_data import resources_of
from wardgate.pki import ensure_dev_pki

API_KEY = "fhir-upstream-key-" + "q" * 24
DENIED = "engineers export no patient compartment"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("fhirleaks")
    pki = ensure_dev_pki(tmp_path_factory.mktemp("pki"))
    with running_fhir_server(API_KEY, misbehave=True) as fhir:
        raw = {
            "listeners": {"http": {"host": "127.0.0.1", "port": 0, "tls": {
                "cert": str(pki.server_cert), "key": str(pki.server_key)}}},
            "apis": [{"name": "ehr", "kind": "fhir", "url": fhir.base_url,
                      "auth": {"api_key": {"header": "X-API-Key", "value": API_KEY}}}],
            "identity": {"state": "state.db"},
            "masking": {"roles": {"clinician": {"raw": ["NAME", "DATE"]}}},
            "policy": {"rules": [{"name": "patient export", "roles": ["engineer"],
                                  "resources": ["Patient"], "operations": ["$export"],
                                  "action": "deny", "reason": DENIED}]},
            "audit": {"path": str(tmp / "audit.jsonl")},
        }  # fmt: skip
        path = tmp / "wardgate.yaml"
        path.write_text(yaml.safe_dump(raw))
        yield from running(loads(path.read_text(), path), pki.ca_cert)


@pytest.fixture(scope="module")
def tokens(gateway: RunningGateway) -> dict[str, str]:
    return human_tokens(gateway, alice="engineer", bob="clinician")


def client(gw: RunningGateway, token: str) -> httpx.Client:
    tls = ssl.create_default_context(cafile=str(gw.ca))
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(headers=headers, verify=tls, timeout=30)


ASYNC = {"Prefer": "respond-async"}


# ---- 1. one decision per request, whatever its spelling ------------------------------------


@pytest.mark.parametrize(
    ("path", "status"),
    [("/Patient/%24export", 403), ("/Patient/%24EXPORT", 403), ("/Patient/$Export", 403),
     ("/patient/$export", 403), ("/PATIENT/%24export", 403), ("/%50atient/$export", 403),
     ("//Patient/$export", 403), ("/Patient//$export", 403), ("/Patient/$export/", 403),
     ("/Patient/$export?_type=Patient&_type=Observation", 403),
     ("/Patient;x=1/$export", 400), ("/Patient/$export;x", 400), ("/Patient/%3Bx/$export", 400),
     ("/Patient/%2524export", 400), ("/Patient/%24export%00", 400), ("/Patient/%ff", 400),
     ("/Patient%2F$export", 400)],
)  # fmt: skip
def test_every_spelling_of_an_export_gets_the_same_decision(
    gateway: RunningGateway, tokens: dict[str, str], path: str, status: int
) -> None:
    with client(gateway, tokens["alice"]) as c:
        answer = c.get(base(gateway) + path, headers=ASYNC)
    assert answer.status_code == status, answer.text
    if status == 403:
        assert DENIED in answer.text


def test_the_clinician_may_still_export_patients(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    with client(gateway, tokens["bob"]) as c:
        answer = c.get(base(gateway) + "/Patient/%24export", headers=ASYNC)
    assert answer.status_code == 202, answer.text


# ---- 2. export files masked per line, and bound to who asked for them ----------------------


def export(gw: RunningGateway, c: httpx.Client, types: str) -> tuple[str, list[str]]:
    """(status URL, file URLs) of a finished system export of ``types``."""
    kick = c.get(base(gw) + "/$export", params={"_type": types}, headers=ASYNC)
    assert kick.status_code == 202, kick.text
    status_url = kick.headers["content-location"]
    assert status_url.startswith(base(gw) + "/")
    for _ in range(20):
        polled = c.get(status_url)
        if polled.status_code == 200:
            files = [o["url"] for o in polled.json()["output"]]
            assert files and all(u.startswith(base(gw) + "/") for u in files)
            assert polled.json()["request"].startswith(base(gw) + "/")
            return status_url, files
        assert polled.status_code == 202, polled.text
        time.sleep(0.1)
    raise AssertionError("the export did not finish")


def test_export_files_are_masked_line_by_line_for_the_requester(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    values = identifiers()
    with client(gateway, tokens["alice"]) as alice, client(gateway, tokens["bob"]) as bob:
        _, files = export(gateway, alice, "Patient,Observation")
        texts = []
        for url in files:
            got = alice.get(url)
            assert got.status_code == 200, got.text
            assert got.headers["content-type"].startswith("application/fhir+ndjson")
            lines = [json.loads(line) for line in got.text.splitlines()]
            assert lines and all("resourceType" in r for r in lines)
            texts.append(got.text)
        every = [json.loads(line) for text in texts for line in text.splitlines()]
        patients = [r for r in every if r["resourceType"] == "Patient"]
        assert len(patients) == 30 and all(p["id"].startswith("pid-") for p in patients)
        found = leaks("\n".join(texts), values, ("id", "identifier", "name", "phone", "line"))
        assert not found, found[:10]

        _, bobs = export(gateway, bob, "Patient")  # the clinician: names raw, SSNs not
        text = bob.get(bobs[0]).text
        assert leaks(text, values, ("name",))
        ssns = {i["value"] for p in resources_of("Patient") for i in p.get("identifier", ())
                if i.get("system") == "http://hl7.org/fhir/sid/us-ssn"}  # fmt: skip
        assert ssns and not any(s in text for s in ssns)


def test_an_export_job_is_readable_by_its_requester_only(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    with client(gateway, tokens["alice"]) as alice, client(gateway, tokens["bob"]) as bob:
        status_url, files = export(gateway, alice, "Patient")
        bob_status, bob_files = export(gateway, bob, "Patient")
        respelled = (status_url.replace("/_export/", "//%5Fexport/"), files[0] + "/")
        for url in (status_url, *files, *respelled):
            stolen = bob.get(url)  # bob's view is raw for names: alice's job must stay hers
            assert stolen.status_code == 403, (url, stolen.text)
            assert "another caller" in stolen.text
        assert bob.delete(status_url).status_code == 403
        for url in (bob_status, *bob_files):
            assert alice.get(url).status_code == 403
        assert alice.get(files[0]).status_code == 200


def test_an_answer_that_cannot_be_masked_is_refused(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    name = sorted(identifiers()["name"])[0]
    with client(gateway, tokens["alice"]) as alice:
        answer = alice.get(base(gateway) + "/_test/text", params={"say": f"patient {name}"})
    assert answer.status_code == 502 and name not in answer.text
    assert "text/plain" in answer.json()["issue"][0]["diagnostics"]


# ---- 3. errors never echo the id behind a pseudonym ---------------------------------------


def test_error_diagnostics_never_hold_a_decoded_id(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    ids = identifiers()["id"]
    with client(gateway, tokens["alice"]) as alice:
        first = alice.get(base(gateway) + "/Patient", params={"_count": 1}).json()
        pid = first["entry"][0]["resource"]["id"]
        answers = [
            alice.get(f"{base(gateway)}/Patient/{pid}/_history"),  # 404 from the router
            alice.delete(f"{base(gateway)}/Patient/{pid}"),  # 405
            alice.get(f"{base(gateway)}/Observation/{pid}"),  # 404 "Observation/<id>"
            alice.get(f"{base(gateway)}/Patient/{pid}/$everything", params={"_count": "x"}),
        ]
    assert [a.status_code for a in answers] == [404, 405, 404, 400]
    for answer in answers:
        assert not [i for i in ids if i.lower() in answer.text.lower()], answer.text
        assert not [i for i in ids if any(i in v for v in answer.headers.values())]
    assert pid in answers[0].text  # the caller's own word comes back as they sent it


# ---- 4. links from the configured public URL, never the Host header -----------------------


def test_links_never_follow_the_host_header(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    forged = {"Host": "attacker.example:8443"}
    with client(gateway, tokens["bob"]) as bob:
        bundle = bob.get(base(gateway) + "/Observation", params={"_count": 2}, headers=forged)
        kick = bob.get(base(gateway) + "/$export", params={"_type": "Patient"},
                       headers={**forged, **ASYNC})  # fmt: skip
    assert bundle.status_code == 200 and kick.status_code == 202
    assert "attacker.example" not in bundle.text + json.dumps(dict(kick.headers)) + kick.text
    assert all(link["url"].startswith(base(gateway)) for link in bundle.json()["link"])
    assert kick.headers["content-location"].startswith(base(gateway) + "/")


# ---- 5. no search on masked elements --------------------------------------------------------


REFUSED = [
    "Patient?family=Sm", "Patient?family:exact=Smith", "Patient?FAMILY=Smith",
    "Patient?name:contains=an", "Patient?given=Ann", "Patient?birthdate=ge1980-06-15",
    "Patient?birthdate=lt2000", "Patient?birthdate:missing=true", "Patient?address-city=Boston",
    "Patient?address=Main", "Patient?address-postalcode=021", "Patient?phone=555",
    "Patient?email=a@b.example", "Patient?telecom=555", "Patient?identifier=999-12-3456",
    "Patient?_sort=birthdate", "Patient?_sort=-family", "Patient?_content=Smith",
    "Patient?_text=Boston", "Patient?_filter=family%20sw%20S",
    "Observation?subject:Patient.family=Smith", "Observation?patient.birthdate=ge1970",
    "Patient?_has:RelatedPerson:patient:name=Ann", "Practitioner?name=Jones",
    "Patient?_id=0b9b2c3c-0000-4000-8000-000000000000", "Patient/0b9b2c3c-0000-4000-8000-0000",
    "Observation?patient=0b9b2c3c-0000-4000-8000-000000000000",
    "Observation?subject=Patient/0b9b2c3c-0000-4000-8000-000000000000",
]  # fmt: skip


@pytest.mark.parametrize("query", REFUSED)
def test_the_engineer_cannot_search_masked_elements(
    gateway: RunningGateway, tokens: dict[str, str], query: str
) -> None:
    with client(gateway, tokens["alice"]) as alice:
        answer = alice.get(f"{base(gateway)}/{query}")
    assert answer.status_code == 403, answer.text


def test_searches_that_stay_allowed(gateway: RunningGateway, tokens: dict[str, str]) -> None:
    with client(gateway, tokens["alice"]) as alice, client(gateway, tokens["bob"]) as bob:
        pid = alice.get(base(gateway) + "/Patient", params={"_count": 1}).json()
        pid = pid["entry"][0]["resource"]["id"]
        for query in (f"Patient?_id={pid}", f"Patient?identifier={pid}", "Patient?gender=female",
                      f"Observation?patient={pid}", f"Observation?subject=Patient/{pid}",
                      "Observation?code=8302-2&_count=3"):  # fmt: skip
            answer = alice.get(f"{base(gateway)}/{query}")
            assert answer.status_code == 200, (query, answer.text)
            assert not leaks(answer.text, identifiers(), ("id",)), query  # self links too
        assert alice.get(f"{base(gateway)}/Patient?_id={pid}").json()["total"] == 1
        family = next(iter(resources_of("Patient")))["name"][0]["family"]
        found = bob.get(base(gateway) + "/Patient", params={"family": family})
        assert found.status_code == 200 and found.json()["total"] >= 1  # NAME is raw for bob
        assert bob.get(base(gateway) + "/Patient?birthdate=ge1980").status_code == 200
        assert bob.get(base(gateway) + "/Patient?phone=555").status_code == 403
        posted = alice.post(base(gateway) + "/Patient/_search", data={"family": "Sm"})
        assert posted.status_code == 403 and "GET" in posted.text


def test_searches_hidden_in_bodies_headers_and_operations_are_refused(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Patient?birthdate=ge1980"}}],
    }
    match = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": {
        "resourceType": "Patient", "name": [{"family": "Smith"}]}}]}  # fmt: skip
    with client(gateway, tokens["alice"]) as alice:
        answers = [
            alice.post(base(gateway), json=batch),
            alice.post(base(gateway) + "/Patient/$match", json=match),
            alice.post(base(gateway) + "/Patient/%24MATCH", json=match),
            alice.get(base(gateway) + "/$graphql", params={"query": "{PatientList{id}}"}),
            alice.post(
                base(gateway) + "/Patient",
                json={"resourceType": "Patient"},
                headers={"If-None-Exist": "family=Smith"},
            ),
            alice.delete(base(gateway) + "/Patient", params={"birthdate": "ge1980"}),
        ]
    assert [a.status_code for a in answers] == [403, 403, 403, 403, 400, 403]


def test_the_method_is_the_one_policy_judged(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    """h11 takes ``post`` as sent and httpx sends it on as ``POST``: policy must judge that."""
    port = gateway.gateway.addresses["http"][1]
    body = b"family=S"
    head = (
        f"post /ehr/Patient/_search HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {tokens['alice']}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    tls = ssl.create_default_context(cafile=str(gateway.ca))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with tls.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        conn.sendall(head + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert b"search with GET" in answer


def test_the_birth_date_oracle_of_the_issue_is_closed(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    """The attack as reported: a binary search on ``birthdate=ge...`` for one pseudonymous
    patient rebuilt the date the engineer sees masked. Now the first probe is refused."""
    from datetime import date, timedelta

    url = base(gateway) + "/Patient"
    with client(gateway, tokens["alice"]) as alice:
        patient = alice.get(url, params={"_count": 1}).json()["entry"][0]["resource"]
        assert "birthDate" not in patient or len(patient["birthDate"]) == 4  # masked
        low, high, probes = date(1900, 1, 1), date(2030, 1, 1), []
        while low < high:
            middle = low + (high - low) / 2 + timedelta(days=1)
            answer = alice.get(url, params={"_id": patient["id"], "birthdate": f"ge{middle}"})
            probes.append(answer.status_code)
            if answer.status_code != 200:
                break
            low, high = (middle, high) if answer.json()["total"] else (low, middle - timedelta(1))
    assert probes == [403], f"{len(probes)} probes rebuilt {low}"

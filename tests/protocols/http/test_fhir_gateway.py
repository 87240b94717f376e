"""The patient-record API through the gateway: the development FHIR server (Synthea data) behind
wardgate's HTTP listener, called with httpx and with fhirpy.

The engineer (alice) gets no raw identifier of any patient in the loaded bundles; the clinician
(bob) sees names and birth dates, not SSNs; a bulk `$export` waits for the compliance officer
(carol) and runs once; the API key the gateway injects reaches no client.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import fhirpy
import httpx
import pytest
import yaml

from tests.gateway_harness import RunningGateway, running
from tests.protocols.postgres.raw import wait_for_event
from wardgate.approvals.store import Approval, ApprovalStore
from wardgate.audit.events import identity_event
from wardgate.config import loads
from wardgate.demo.fhir import running_fhir_server
from wardgate.demo.fhir_data import resources_of
from wardgate.identity.credentials import issue
from wardgate.identity.state import StateStore
from wardgate.pki import ensure_dev_pki
from wardgate.recording.addon import locations
from wardgate.recording.keys import FileKeyProvider
from wardgate.recording.reader import records, verify

API_KEY = "fhir-upstream-key-" + "k" * 24


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("fhirgw")
    pki = ensure_dev_pki(tmp_path_factory.mktemp("pki"))
    with running_fhir_server(API_KEY) as fhir:
        raw = {
            "listeners": {"http": {"host": "127.0.0.1", "port": 0, "tls": {
                "cert": str(pki.server_cert), "key": str(pki.server_key)}}},
            "apis": [{"name": "ehr", "kind": "fhir", "url": fhir.base_url,
                      "auth": {"api_key": {"header": "X-API-Key", "value": API_KEY}}},
                     # the same server as a plain JSON API, masked by path rules alone
                     {"name": "plain", "kind": "json", "url": fhir.base_url,
                      "auth": {"api_key": {"header": "X-API-Key", "value": API_KEY}},
                      "phi": {"$.entry[*].resource.name[*].family": "NAME"}}],
            "identity": {"state": "state.db"},
            "masking": {"roles": {"clinician": {"raw": ["NAME", "DATE"]}}},
            "policy": {"rules": [{"name": "bulk export", "operations": ["$export"],
                                  "action": "require_approval",
                                  "reason": "a bulk export of patient records"}]},
            "approvals": {"approver_roles": ["compliance"], "wait": 10},
            "recording": {"enabled": True},
            "audit": {"path": str(tmp / "audit.jsonl")},
        }  # fmt: skip
        path = tmp / "wardgate.yaml"
        path.write_text(yaml.safe_dump(raw))
        yield from running(loads(path.read_text(), path), pki.ca_cert)


@pytest.fixture(scope="module")
def tokens(gateway: RunningGateway) -> dict[str, str]:
    return human_tokens(gateway, alice="engineer", bob="clinician", carol="compliance")


def human_tokens(gateway: RunningGateway, **roles: str) -> dict[str, str]:
    """A gateway credential for each human named, with their one role."""
    state = gateway.gateway.config.identity.state
    assert state is not None
    store = StateStore(state)
    out = {}
    for name, role in roles.items():
        human = store.add_human(name, None, (role,), source="test")
        out[name] = issue(store, "human", name, human, 3600, _created()).secret
    store.close()
    return out


def base(gw: RunningGateway) -> str:
    return f"https://127.0.0.1:{gw.gateway.addresses['http'][1]}/ehr"


def client(gw: RunningGateway, token: str) -> httpx.Client:
    tls = ssl.create_default_context(cafile=str(gw.ca))
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=base(gw), headers=headers, verify=tls, timeout=30)


def identifiers() -> dict[str, set[str]]:
    """Every identifying value of every patient in the loaded bundles, by kind."""
    found: dict[str, set[str]] = {k: set() for k in ("id", "identifier", "name", "phone", "line")}
    for patient in resources_of("Patient"):
        found["id"].add(patient["id"])
        found["identifier"] |= {i["value"] for i in patient.get("identifier", ())}
        for name in patient.get("name", ()):
            found["name"] |= {n for n in (name.get("family"), *name.get("given", ())) if n}
        found["phone"] |= {t["value"] for t in patient.get("telecom", ())}
        for address in patient.get("address", ()):
            found["line"] |= set(address.get("line", ()))
    found["name"] = {n for n in found["name"] if len(n) > 2}
    return found


def leaks(text: str, values: dict[str, set[str]], kinds: tuple[str, ...]) -> list[str]:
    return [v for kind in kinds for v in values[kind] if v in text]


def test_engineer_sees_no_identifier_of_any_patient(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    seen: list[str] = []
    with client(gateway, tokens["alice"]) as c:
        search = c.get("/Patient", params={"_count": 200})
        assert search.status_code == 200, search.text
        seen.append(search.text)
        bundle = search.json()
        ids = [e["resource"]["id"] for e in bundle["entry"]]
        assert len(ids) == bundle["total"] == 30 and all(i.startswith("pid-") for i in ids)
        for patient_id in ids:
            read = c.get(f"/Patient/{patient_id}")  # the pseudonym leads to the patient
            assert read.status_code == 200 and read.json()["id"] == patient_id
            seen.append(read.text)
        everything = c.get(f"/Patient/{ids[0]}/$everything", params={"_count": 200})
        assert everything.status_code == 200 and len(everything.json()["entry"]) > 10
        seen.append(everything.text)
        seen.append(c.get("/Observation", params={"patient": ids[1], "_count": 50}).text)
    text = "\n".join(seen)
    values = identifiers()
    found = leaks(text, values, ("id", "identifier", "name", "phone", "line"))
    assert not found, found[:10]
    event = wait_for_event(gateway, type="api_call", path="/ehr/Patient", status=200)
    assert event["who"]["subject"] == "alice" and event["masking"]["masked"]["SSN"] == 30


def test_a_fhir_client_library_through_the_gateway(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    fhir = fhirpy.SyncFHIRClient(
        base(gateway), authorization=f"Bearer {tokens['alice']}",
        requests_config={"verify": str(gateway.ca)},
    )  # fmt: skip
    patients = fhir.resources("Patient").limit(10).fetch()
    assert len(patients) == 10
    first = patients[0]
    assert first["id"].startswith("pid-") and first["name"][0]["family"] == "[NAME]"
    again = fhir.reference("Patient", first["id"]).to_resource()
    assert again["id"] == first["id"]
    assert fhir.resources("Patient").count() == 30


def test_clinician_sees_names_and_birth_dates_not_ssns(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    values = identifiers()
    with client(gateway, tokens["bob"]) as c:
        text = c.get("/Patient", params={"_count": 200}).text
    assert leaks(text, values, ("name",))
    births = {p["birthDate"] for p in resources_of("Patient")}
    assert any(b in text for b in births)
    ssns = {i["value"] for p in resources_of("Patient") for i in p.get("identifier", ())
            if i.get("system") == "http://hl7.org/fhir/sid/us-ssn"}  # fmt: skip
    assert ssns and not any(s in text for s in ssns)


def test_export_waits_for_approval_and_runs_once(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    store = gateway.gateway.approvals
    assert store is not None
    answers: list[httpx.Response] = []

    def ask() -> None:
        with client(gateway, tokens["alice"]) as c:
            answers.append(c.get("/$export", headers={"Prefer": "respond-async"}))

    first = threading.Thread(target=ask)
    first.start()
    request = _pending(store, set())
    assert request.requester == "alice" and request.target == "ehr"
    store.approve(request.id, "carol", ("compliance",), "annual audit extract")
    first.join(15)
    assert answers[0].status_code == 202, answers[0].text
    assert answers[0].headers["content-location"].startswith(base(gateway))

    second = threading.Thread(target=ask)
    second.start()
    again = _pending(store, {request.id})
    store.deny(again.id, "carol", ("compliance",), "one extract a year")
    second.join(15)
    assert answers[1].status_code == 403 and "one extract a year" in answers[1].text


def test_the_upstream_key_reaches_no_client(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    responses: list[httpx.Response] = []
    with client(gateway, tokens["alice"]) as c:
        for path in (
            "/metadata",
            "/Patient?_count=3",
            "/Patient/nope",
            "/Nothing",
            "/Patient/pid-x",
        ):
            responses.append(c.get(path))
    with client(gateway, "wgc_0123456789abcdef_" + "A" * 43) as c:
        responses.append(c.get("/Patient"))
    for response in responses:
        assert API_KEY not in response.text
        assert all(API_KEY not in v for v in response.headers.values())
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 403, 404, 403, 401]  # a real-looking patient id: refused


def _pending(store: ApprovalStore, known: set[str], timeout: float = 10) -> Approval:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = [a for a in store.listing() if a.id not in known]
        if fresh:
            return fresh[0]
        time.sleep(0.05)
    raise AssertionError("no approval request appeared")


def test_the_recording_holds_the_masked_answers(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    with client(gateway, tokens["alice"]) as c:
        answer = c.get("/Patient", params={"_count": 5})
    assert answer.status_code == 200
    keys = FileKeyProvider(locations(gateway.gateway.config)[1])
    values = identifiers()
    deadline = time.monotonic() + 5
    while True:  # the session ends (and its recording closes) just after the connection
        documents = []
        for event in gateway.events():
            if event.get("type") != "session.end" or "recording" not in event:
                continue
            if event["who"].get("subject") != "alice":
                continue
            path = Path(event["recording"]["path"])
            assert verify(path, keys).sha256 == event["recording"]["sha256"]
            states = list(records(path, keys))
            documents += [s["body"] for s in states if s["type"] == "document"]
            assert not leaks(json.dumps(states), values, ("id", "identifier", "name", "phone"))
        if answer.json() in documents or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer.json() in documents  # recorded exactly as the client got it


def _created() -> dict[str, object]:
    return identity_event("credential.created", "test", time.time())


def test_a_json_api_is_masked_by_its_path_rules(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    tls = ssl.create_default_context(cafile=str(gateway.ca))
    url = f"https://127.0.0.1:{gateway.gateway.addresses['http'][1]}/plain/Patient?_count=3"
    answer = httpx.get(url, headers={"Authorization": f"Bearer {tokens['alice']}"}, verify=tls)
    assert answer.status_code == 200, answer.text
    names = [e["resource"]["name"][0] for e in answer.json()["entry"]]
    assert all(n["family"] == "[NAME]" for n in names)
    assert all(n["given"][0] != "[NAME]" for n in names)  # only the rule's path is masked

"""The FHIR findings of the red-team run of 2026-12-07 against ``wardgate demo``, through a real
gateway configured as the demo configures itself (its masking, policy and approvals sections,
from ``demo.run.write_config``), in front of the development FHIR server:

1. clinical dates (encounters, observations, conditions, procedures, immunizations...) reached
   the engineer raw, while SQL shows her only their year: an infant's birth date could be read
   off them. Now every date of a resource about a person keeps its year for her, and a search
   that compares one with more than its year is refused; the clinician still sees them all;
2. ``$everything`` (a patient's whole record) ran at once, while ``$export`` waits for an
   approver: now it waits too, however it is spelled;
3. ``/metadata`` named the API's internal address: no answer, body or header, names it now.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.gateway_harness import RunningGateway, running
from tests.protocols.http.test_fhir_gateway import _pending, human_tokens
from wardgate.config import loads
from wardgate.demo.fhir import FhirServer, running_fhir_server
from wardgate.demo.fhir_data import resources_of
from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.run import write_config

API_KEY = "fhir-upstream-key-" + "r" * 24
# A date, dateTime or instant with more than its year.
FINE_DATE = re.compile(r"\d{4}-\d{2}(-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:\d{2})?)?)?")
MASKED_INSTANT = re.compile(r"\d{4}-01-01T12:00:00Z")  # an instant keeps its year only
CLINICAL = (
    "Encounter", "Observation", "Condition", "Procedure", "Immunization", "MedicationRequest",
    "DiagnosticReport", "Claim", "ExplanationOfBenefit", "CarePlan", "Goal",
)  # fmt: skip


@pytest.fixture(scope="module")
def fhir() -> Iterator[FhirServer]:
    with running_fhir_server(API_KEY, misbehave=True) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fhir: FhirServer) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("fhirred")
    target = LocalPostgres("127.0.0.1", 5432, "nobody", None, embedded=False)  # never reached
    passwords = {"alice": "a" * 16, "bob": "b" * 16, "carol": "c" * 16}
    written = write_config(
        tmp, target, 0, passwords, issuer="http://127.0.0.1:9", api_port=0,
        fhir=(fhir.base_url, API_KEY), http_port=0,
    )  # fmt: skip
    demo = yaml.safe_load(written.read_text())
    raw = {
        "listeners": {"http": demo["listeners"]["http"]},
        "apis": demo["apis"],
        "identity": {"state": "state.db"},
        "masking": demo["masking"],
        "policy": demo["policy"],
        "approvals": {**demo["approvals"], "wait": 20},
        "audit": {"path": str(tmp / "audit.jsonl")},
    }
    path = tmp / "wardgate.yaml"
    path.write_text(yaml.safe_dump(raw))
    yield from running(loads(path.read_text(), path), tmp / "pki" / "ca.pem")


@pytest.fixture(scope="module")
def tokens(gateway: RunningGateway) -> dict[str, str]:
    return human_tokens(gateway, alice="engineer", bob="clinician", carol="compliance")


def base(gw: RunningGateway) -> str:
    return f"https://127.0.0.1:{gw.gateway.addresses['http'][1]}/ehr"


def client(gw: RunningGateway, token: str) -> httpx.Client:
    tls = ssl.create_default_context(cafile=str(gw.ca))
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=base(gw), headers=headers, verify=tls, timeout=30)


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def youngest(bob: httpx.Client) -> tuple[str, str]:
    """(pseudonym, raw birth date) of the youngest patient: the clinician sees birth dates."""
    patients = [e["resource"] for e in bob.get("/Patient", params={"_count": 100}).json()["entry"]]
    patient = max(patients, key=lambda p: p["birthDate"])
    return patient["id"], patient["birthDate"]


# ---- 1. clinical dates ------------------------------------------------------------------------


def test_the_engineer_sees_every_clinical_date_as_its_year(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    with client(gateway, tokens["alice"]) as alice, client(gateway, tokens["bob"]) as bob:
        pid, born = youngest(bob)
        answers = {kind: alice.get(f"/{kind}", params={"patient": pid, "_count": 100})
                   for kind in CLINICAL}  # fmt: skip
        answers["Patient"] = alice.get(f"/Patient/{pid}")
        clinician = {kind: bob.get(f"/{kind}", params={"patient": pid, "_count": 100})
                     for kind in ("Encounter", "Observation")}  # fmt: skip
    assert all(a.status_code == 200 for a in answers.values()), answers
    docs = {kind: answer.json() for kind, answer in answers.items()}
    assert docs["Encounter"]["total"] > 0 and docs["Observation"]["total"] > 0
    text = json.dumps(docs)
    assert born not in text  # the birth date cannot be read off the first encounter
    fine = [s for s in strings(docs) if FINE_DATE.fullmatch(s) and not MASKED_INSTANT.fullmatch(s)]
    assert not fine, fine[:10]

    # The year is kept, as SQL keeps it; the clinician sees the dates as they are.
    mine = [e["resource"] for e in docs["Encounter"]["entry"]]
    theirs = [e["resource"] for e in clinician["Encounter"].json()["entry"]]
    assert [e["period"]["start"] for e in mine] == [e["period"]["start"][:4] for e in theirs]
    raw = {e["period"]["start"] for e in resources_of("Encounter")}
    assert {e["period"]["start"] for e in theirs} <= raw
    assert any(FINE_DATE.fullmatch(s) for s in strings(clinician["Observation"].json()))
    for observation in (e["resource"] for e in docs["Observation"]["entry"]):
        assert re.fullmatch(r"\d{4}", observation["effectiveDateTime"])
        assert MASKED_INSTANT.fullmatch(observation["issued"])
        assert MASKED_INSTANT.fullmatch(observation["meta"]["lastUpdated"])
    event = next(e for e in reversed(gateway.events())
                 if e.get("type") == "api_call" and e["path"] == "/ehr/Observation"
                 and e["who"].get("subject") == "alice")  # fmt: skip
    assert event["masking"]["masked"]["DATE"] >= 2 * docs["Observation"]["total"]


@pytest.mark.parametrize(
    ("query", "engineer"),
    [("date=ge{year}-06-15", 403), ("date=ge{year}", 200), ("date=ap{year}", 403),
     ("_sort=-date", 403), ("_lastUpdated=gt{year}-01-02T00:00:00Z", 403),
     ("date=lt{year}-02,gt{year}-11", 403)],
)  # fmt: skip
def test_searching_a_masked_date_beyond_its_year_is_refused(
    gateway: RunningGateway, tokens: dict[str, str], query: str, engineer: int
) -> None:
    """Encounter?date=ge... answers about a date the engineer sees as its year: 12 requests
    would find an infant's day of birth. A comparison with a year tells her nothing more."""
    with client(gateway, tokens["alice"]) as alice, client(gateway, tokens["bob"]) as bob:
        pid, born = youngest(bob)
        url = f"/Encounter?patient={pid}&" + query.format(year=born[:4])
        answer = alice.get(url)
        assert answer.status_code == engineer, answer.text
        if engineer == 403:
            assert "date" in answer.json()["issue"][0]["diagnostics"]
        assert bob.get(url).status_code in (200, 400)  # bob sees dates: no refusal by masking


# ---- 2. $everything waits for an approver -----------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/Patient/{pid}/$everything", "/Patient/{pid}/%24everything", "/patient/{pid}/$EVERYTHING",
     "//Patient/{pid}/$Everything/", "/Patient/{pid}/$everything?_count=5"],
)  # fmt: skip
def test_everything_waits_for_an_approver_however_spelled(
    gateway: RunningGateway, tokens: dict[str, str], path: str
) -> None:
    store = gateway.gateway.approvals
    assert store is not None
    known = {a.id for a in store.listing()}
    with client(gateway, tokens["bob"]) as bob:
        pid, _ = youngest(bob)
    answers: list[httpx.Response] = []

    def ask() -> None:
        with client(gateway, tokens["alice"]) as alice:
            answers.append(alice.get(base(gateway) + path.format(pid=pid)))

    asker = threading.Thread(target=ask)
    asker.start()
    request = _pending(store, known)
    assert request.requester == "alice" and "$everything" in request.statement
    store.deny(request.id, "carol", ("compliance",), "one record at a time")
    asker.join(15)
    assert answers[0].status_code == 403, answers[0].text
    assert "one record at a time" in answers[0].text


def test_an_approved_everything_runs_masked(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    store = gateway.gateway.approvals
    assert store is not None
    known = {a.id for a in store.listing()}
    with client(gateway, tokens["bob"]) as bob:
        pid, born = youngest(bob)
    answers: list[httpx.Response] = []

    def ask() -> None:
        with client(gateway, tokens["alice"]) as alice:
            answers.append(alice.get(f"/Patient/{pid}/$everything", params={"_count": 200}))

    asker = threading.Thread(target=ask)
    asker.start()
    request = _pending(store, known)
    store.approve(request.id, "carol", ("compliance",), "a support case")
    asker.join(15)
    assert answers[0].status_code == 200, answers[0].text
    everything = answers[0].json()
    assert len(everything["entry"]) > 10 and born not in answers[0].text
    fine = [s for s in strings(everything) if FINE_DATE.fullmatch(s)
            and not MASKED_INSTANT.fullmatch(s)]  # fmt: skip
    assert not fine, fine[:10]


# ---- 3. the API's internal address reaches no client -----------------------------------------


def test_no_answer_names_the_apis_internal_address(
    gateway: RunningGateway, tokens: dict[str, str], fhir: FhirServer
) -> None:
    upstream = fhir.base_url.partition("://")[2].rstrip("/")  # 127.0.0.1:PORT
    store = gateway.gateway.approvals
    assert store is not None
    seen: list[httpx.Response] = []
    with client(gateway, tokens["alice"]) as alice, client(gateway, tokens["bob"]) as bob:
        for c in (alice, bob):
            metadata = c.get("/metadata")
            assert metadata.status_code == 200
            assert metadata.json()["implementation"]["url"] == base(gateway)
            seen += [
                metadata,
                c.get("/Patient", params={"_count": 2}),  # paging links, fullUrls
                c.get("/Observation", params={"_count": 3, "_include": "Observation:patient"}),
                c.get("/Nothing/1"),  # an OperationOutcome
                c.get("/_test/base"),  # the base in references, text and headers
                c.get("/_test/base", params={"outcome": "1"}),
            ]
        base_answer = bob.get("/_test/base")
        assert base_answer.status_code == 201
        assert base_answer.headers["location"].startswith(base(gateway) + "/Observation/")
        assert base_answer.json()["subject"]["reference"] == base(gateway) + "/Observation/base-0"

        # A bulk export, approved: its status URL, its manifest and its files.
        known = {a.id for a in store.listing()}
        kicked: list[httpx.Response] = []
        asker = threading.Thread(target=lambda: kicked.append(
            bob.get("/$export", params={"_type": "Patient"}, headers={"Prefer": "respond-async"})
        ))  # fmt: skip
        asker.start()
        store.approve(_pending(store, known).id, "carol", ("compliance",), "a test export")
        asker.join(15)
        assert kicked[0].status_code == 202, kicked[0].text
        seen.append(kicked[0])
        status_url = kicked[0].headers["content-location"]
        for _ in range(20):
            polled = bob.get(status_url)
            seen.append(polled)
            if polled.status_code == 200:
                break
            time.sleep(0.1)
        assert polled.status_code == 200, polled.text
        seen += [bob.get(o["url"]) for o in polled.json()["output"]]
    for answer in seen:
        assert upstream not in answer.text, (answer.url, answer.text[:500])
        leaked = [(k, v) for k, v in answer.headers.items() if upstream in v]
        assert not leaked, (answer.url, leaked)

"""The HTTP reverse proxy end to end: httpx through a real gateway (TLS, dev PKI) to a real API
of our own on loopback, with gateway credentials as bearer tokens."""

from __future__ import annotations

import concurrent.futures
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.audit.siem.test_ocsf import _validate
from tests.gateway_harness import RunningGateway, running
from tests.protocols.http.upstream import API_KEY, BEARER, BIG, Seen, serving
from wardgate.audit.events import identity_event
from wardgate.audit.siem import to_ocsf
from wardgate.config import loads
from wardgate.core.model import ApiCall, Decision, Hold, Verdict
from wardgate.core.pipeline import Addon
from wardgate.identity.credentials import issue
from wardgate.identity.state import StateStore
from wardgate.masking.entities import Entity
from wardgate.pki import ensure_dev_pki

# Every answer any test got, to check the credentials never reached a client.
ANSWERS: list[bytes] = []


class Probe(Addon):
    """Denies paths with "forbidden", holds requests with "held", and changes Patients."""

    name = "probe"

    def __init__(self) -> None:
        self.holds: list[Hold] = []
        self.documents: list[Any] = []

    def api_call(self, request: ApiCall) -> Decision | None:
        if "forbidden" in request.path:
            return Decision(Verdict.DENY, "forbidden things are forbidden", "probe")
        if "held" in request.text:
            hold = Hold("waiting for a human")
            self.holds.append(hold)
            return Decision(Verdict.HOLD, "needs a human", "probe", hold=hold)
        return None

    def document(self, request: ApiCall, body: Any) -> Any:
        self.documents.append(body)
        if isinstance(body, dict) and body.get("resourceType") == "Patient":
            return {**body, "name": [{"family": "MASKED"}]}
        return body


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Seen]]:
    with serving() as found:
        yield found


@pytest.fixture(scope="module")
def probe() -> Probe:
    return Probe()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: tuple[str, Seen], probe: Probe
) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("gw")
    pki = ensure_dev_pki(tmp_path_factory.mktemp("pki"))
    url = upstream[0]
    raw = {
        "listeners": {
            "http": {
                "host": "127.0.0.1",
                "port": 0,
                "tls": {"cert": str(pki.server_cert), "key": str(pki.server_key)},
                "max_request_bytes": 1 << 20,
            }
        },
        "identity": {"state": "state.db"},
        "apis": [
            {"name": "fhir", "kind": "fhir", "url": url, "timeout": 1,
             "auth": {"api_key": {"header": "X-Api-Key", "value": API_KEY}}},
            {"name": "plain", "kind": "json", "url": url, "auth": {"bearer": BEARER}},
            {"name": "small", "kind": "json", "url": url, "max_response_bytes": 4096,
             "auth": {"api_key": {"header": "X-Api-Key", "value": API_KEY}}},
        ],
        "audit": {"path": str(tmp / "audit.jsonl")},
        # These tests are about the proxy: the callers see every entity raw, so what reaches
        # them is what the probe addon made (masking of API answers: test_fhir_gateway.py).
        "masking": {"roles": {"engineer": {"raw": [e.value for e in Entity] + ["TEXT"]}},
                    "agents_see_raw": True},
    }  # fmt: skip
    path = tmp / "wardgate.yaml"
    path.write_text(yaml.safe_dump(raw))
    yield from running(loads(path.read_text(), path), pki.ca_cert, [probe])


@pytest.fixture(scope="module")
def tokens(gateway: RunningGateway) -> dict[str, str]:
    state = gateway.gateway.config.identity.state
    assert state is not None
    store = StateStore(state)
    alice = store.add_human("alice", "alice@example.com", ("engineer",), source="test")
    carol = store.add_human("carol", None, ("engineer",), source="test")
    out = {
        "alice": issue(store, "human", "alice", alice, 3600, _created()).secret,
        "cursor": issue(store, "agent", "cursor", alice, 3600, _created()).secret,
        "carol": issue(store, "human", "carol", carol, 3600, _created()).secret,
    }
    store.close()
    return out


def _keep(response: httpx.Response) -> None:
    response.read()
    ANSWERS.append(json.dumps(list(response.headers.multi_items())).encode() + response.content)


def client(gw: RunningGateway, token: str | None = None) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    port = gw.gateway.addresses["http"][1]
    return httpx.Client(
        base_url=f"https://127.0.0.1:{port}", verify=ssl.create_default_context(cafile=gw.ca),
        headers=headers, timeout=30,
        event_hooks={"response": [_keep]},
    )  # fmt: skip


def api_calls(gw: RunningGateway, **match: Any) -> list[dict[str, Any]]:
    out = []
    for event in gw.events():
        if event.get("type") == "api_call" and all(event.get(k) == v for k, v in match.items()):
            out.append(event)
    return out


def wait_call(gw: RunningGateway, **match: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = api_calls(gw, **match)
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no api_call event with {match}")


# ---- the path through ---------------------------------------------------------------------------


def test_read_masks_and_injects(
    gateway: RunningGateway, tokens: dict[str, str], upstream: tuple[str, Seen], probe: Probe
) -> None:
    with client(gateway, tokens["alice"]) as c:
        first = c.get("/fhir/Patient/7", headers={"cookie": "mine=1"})
        second = c.get("/fhir/Patient/8")  # the same connection (keep-alive)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith("application/fhir+json")
    assert first.json() == {"resourceType": "Patient", "id": "7", "name": [{"family": "MASKED"}]}
    assert second.json()["id"] == "8"
    assert {
        "resourceType": "Patient",
        "id": "7",
        "name": [{"family": "Smith", "given": ["Ann"]}],
    } in probe.documents
    got = upstream[1].headers[-2]
    assert got["x-api-key"] == API_KEY
    assert "authorization" not in got and "cookie" not in got
    event = wait_call(gateway, path="/fhir/Patient/7")
    assert event["method"] == "GET" and event["status"] == 200
    assert event["resource_type"] == "Patient" and event["decision"] == "allow"
    assert event["who"]["subject"] == "alice" and event["who"]["verified"] is True
    assert event["session"]["target"] == "fhir" and event["session"]["protocol"] == "http"
    assert event["bytes"] == len(first.content)
    sessions = {
        e["session"]["id"] for e in api_calls(gateway) if e["path"].startswith("/fhir/Patient/")
    }
    assert len(sessions) == 1  # both requests in one session


def test_agent_on_behalf_of_and_ocsf(gateway: RunningGateway, tokens: dict[str, str]) -> None:
    with client(gateway, tokens["cursor"]) as c:
        assert c.get("/fhir/Patient/9").status_code == 200
    event = wait_call(gateway, path="/fhir/Patient/9")
    assert event["who"]["subject"].startswith("agent:") or event["who"]["on_behalf_of"] == ["alice"]
    assert event["who"]["on_behalf_of"] == ["alice"]
    out = to_ocsf(event)
    assert out["class_uid"] == 6003 and out["http_response"] == {"code": 200}
    _validate(out)


def test_post_chunked_and_bearer_injection(
    gateway: RunningGateway, tokens: dict[str, str], upstream: tuple[str, Seen]
) -> None:
    def parts() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    with client(gateway, tokens["alice"]) as c:
        answer = c.post("/plain/echo", content=parts())
        again = c.put("/plain/echo", content=b'{"a": 1}')
    assert answer.status_code == 200 and answer.json() == {"length": 10_000, "method": "POST"}
    assert again.json() == {"length": 8, "method": "PUT"}
    assert upstream[1].bodies[-2] == b"x" * 10_000
    # the plain API is authenticated by bearer: the upstream got the gateway's, not alice's
    assert upstream[1].headers[-1]["authorization"] == f"Bearer {BEARER}"


def test_links_rewritten_and_headers_filtered(
    gateway: RunningGateway, tokens: dict[str, str], upstream: tuple[str, Seen], probe: Probe
) -> None:
    port = gateway.gateway.addresses["http"][1]
    with client(gateway, tokens["alice"]) as c:
        answer = c.get("/fhir/Patient", params={"family": "smith"})
    assert answer.status_code == 200
    bundle = answer.json()
    public = f"https://127.0.0.1:{port}/fhir"
    assert [link["url"] for link in bundle["link"]] == [
        f"{public}/Patient?family=smith", f"{public}/Patient?page=2",
        "https://elsewhere.example/Patient",
    ]  # fmt: skip
    assert bundle["entry"][0]["fullUrl"] == f"{public}/Patient/1"
    assert probe.documents[-1]["resourceType"] == "Bundle"  # the document hook saw it whole
    assert "set-cookie" not in answer.headers and answer.headers["x-upstream"] == "yes"
    assert answer.headers["location"] == f"{public}/Patient/1"
    assert upstream[0] not in answer.text


def test_text_streams_through(gateway: RunningGateway, tokens: dict[str, str]) -> None:
    with client(gateway, tokens["alice"]) as c:
        answer = c.get("/fhir/misbehave/text")
    assert answer.status_code == 200 and answer.text == "plain text answer"


# ---- who may call -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "reason"),
    [(None, "no bearer token"), ("wgc_0000000000000000_" + "a" * 43, "credential: unknown"),
     ("not.a.jwt", "oidc: no identity provider")],
)  # fmt: skip
def test_unauthenticated(gateway: RunningGateway, token: str | None, reason: str) -> None:
    with client(gateway, token) as c:
        answer = c.get("/fhir/Patient/1", params={"tag": len(reason)})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith('Bearer realm="wardgate"')
    assert answer.json()["resourceType"] == "OperationOutcome"
    event = wait_call(gateway, request=f"GET /fhir/Patient/1?tag={len(reason)}")
    assert event["status"] == 401 and event["decision"] == "deny"
    assert event["reason"].startswith(reason) and event["who"]["verified"] is False


def test_unknown_api_after_authentication(gateway: RunningGateway, tokens: dict[str, str]) -> None:
    with client(gateway) as c:
        assert c.get("/nope/x").status_code == 401
    with client(gateway, tokens["alice"]) as c:
        answer = c.get("/nope/x")
        dots = c.get("/fhir/%2e%2e/admin")
    assert answer.status_code == 404 and "nope" in answer.json()["error"]["message"]
    assert dots.status_code == 400
    assert wait_call(gateway, path="/nope/x", status=404)["who"]["subject"] == "alice"


def test_revoked_owner_refused_at_next_request(
    gateway: RunningGateway, tokens: dict[str, str]
) -> None:
    state = gateway.gateway.config.identity.state
    assert state is not None
    with client(gateway, tokens["carol"]) as c:
        assert c.get("/fhir/Patient/1").status_code == 200
        store = StateStore(state)
        store.revoke_human("carol", "offboarded", {"type": "user.revoked"})
        store.close()
        refused = c.get("/fhir/Patient/2")
    assert refused.status_code == 401
    event = wait_call(gateway, path="/fhir/Patient/2", status=401)
    assert event["who"]["claimed_user"] == "carol"
    assert event["reason"] == "credential: owner 'carol' is revoked"


# ---- the pipeline decides -----------------------------------------------------------------------


def test_denied_by_addon(gateway: RunningGateway, tokens: dict[str, str]) -> None:
    with client(gateway, tokens["alice"]) as c:
        answer = c.get("/fhir/forbidden/1")
        plain = c.get("/plain/forbidden")
    assert answer.status_code == 403
    issue_ = answer.json()["issue"][0]
    assert issue_["code"] == "forbidden"
    assert issue_["diagnostics"] == "forbidden things are forbidden"
    assert plain.json() == {"error": {"status": 403, "message": "forbidden things are forbidden"}}
    event = wait_call(gateway, path="/fhir/forbidden/1")
    assert event["decision"] == "deny" and event["reason"] == "forbidden things are forbidden"
    assert event["status"] == 403 and event["outcome"] == "failure"


@pytest.mark.parametrize("approve", [True, False])
def test_held_until_decided(
    gateway: RunningGateway, tokens: dict[str, str], probe: Probe, approve: bool
) -> None:
    before = len(probe.holds)
    with client(gateway, tokens["alice"]) as c, concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(c.post, "/plain/echo", params={"held": approve}, content=b"abc")
        deadline = time.monotonic() + 10
        while len(probe.holds) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert not pending.done()  # the client waits
        hold = probe.holds[-1]
        final = Decision(Verdict.ALLOW, "approved") if approve else Decision(
            Verdict.DENY, "denied by the compliance officer", "approvals"
        )  # fmt: skip
        gateway.call(hold.resolve, final)
        answer = pending.result(10)
    if approve:
        assert answer.status_code == 200 and answer.json()["length"] == 3
    else:
        assert answer.status_code == 403
        assert answer.json()["error"]["message"] == "denied by the compliance officer"


# ---- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "status", "message"),
    [
        ("malformed", 502, "the upstream answered with malformed JSON"),
        ("unavailable", 503, "failed (it answered 503)"),
        ("crash", 502, "failed (it answered 500)"),
        ("slow", 504, "did not answer within 1 s"),
        ("big", 502, "response too large"),
        ("big-declared", 502, "response too large"),
        ("leak", 502, "contained the gateway's credential"),
        ("leak-header", 502, "contained the gateway's credential"),
    ],
)
def test_failures(
    gateway: RunningGateway, tokens: dict[str, str], how: str, status: int, message: str
) -> None:
    with client(gateway, tokens["alice"]) as c:
        answer = c.get(f"/fhir/misbehave/{how}")
        after = c.get("/fhir/Patient/1")  # the gateway goes on serving
    assert answer.status_code == status, answer.text
    outcome = answer.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert message in outcome["issue"][0]["diagnostics"]
    assert "Smith" not in answer.text and "Traceback" not in answer.text
    assert after.status_code == 200
    event = wait_call(gateway, path=f"/fhir/misbehave/{how}")
    assert event["status"] == status and event["outcome"] == "failure"
    assert event["error"]["code"] == str(status)


def test_big_binary_cut_off(gateway: RunningGateway, tokens: dict[str, str]) -> None:
    with client(gateway, tokens["alice"]) as c, pytest.raises(httpx.HTTPError):
        c.get("/small/misbehave/big-binary")
    event = wait_call(gateway, path="/small/misbehave/big-binary")
    assert "response too large" in event["error"]["message"] and event["bytes"] <= 4096
    assert BIG > 4096


def test_request_too_large(gateway: RunningGateway, tokens: dict[str, str]) -> None:
    with client(gateway, tokens["alice"]) as c:
        declared = c.post("/plain/echo", content=b"x" * (2 << 20))

        def parts() -> Iterator[bytes]:
            for _ in range(40):
                yield b"y" * 65536

        chunked = c.post("/plain/echo", content=parts())
    assert declared.status_code == 413 and chunked.status_code == 413
    assert wait_call(gateway, path="/plain/echo", status=413)["who"]["subject"] == "alice"


def test_unreachable(tmp_path: Path, gateway: RunningGateway, tokens: dict[str, str]) -> None:
    config = gateway.gateway.config
    dead = config.apis[0].model_copy(update={"name": "dead", "url": "http://127.0.0.1:9/base"})
    server = gateway.gateway.http
    assert server is not None
    from wardgate.protocols.http.upstream import Upstream

    server.apis["dead"] = dead
    server.upstreams["dead"] = Upstream(dead)
    with client(gateway, tokens["alice"]) as c:
        answer = c.get("/dead/Patient")
    assert answer.status_code == 502 and "cannot be reached" in answer.text
    assert wait_call(gateway, path="/dead/Patient")["status"] == 502


def test_zz_credentials_never_reached_a_client() -> None:
    assert len(ANSWERS) > 20
    for answer in ANSWERS:
        assert API_KEY.encode() not in answer
        assert BEARER.encode() not in answer


def _created() -> dict[str, object]:
    return identity_event("credential.created", "test", time.time())

"""SCIM provisioning over loopback: the app mounted at /scim/v2 as the API listener mounts it,
served by ``AsgiListener`` on its own event loop in a background thread, called with httpx.

The request bodies follow what Okta and Entra ID send (their SCIM provisioning references):
Okta deactivates with a PATCH whose value is ``{"active": false}`` and no path, and updates with
PUT; Entra ID capitalises ``op``, sends ``"False"`` as a string, and uses value paths such as
``emails[type eq "work"].value``.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from wardgate.api.asgi import AsgiListener
from wardgate.config import ScimSettings
from wardgate.core.model import Identity, SessionInfo
from wardgate.identity.credentials import CredentialRefused, issue, verify
from wardgate.identity.revocation import RevocationWatcher
from wardgate.identity.scim import scim_app
from wardgate.identity.state import Human, StateStore

TOKEN = "scim-test-token-" + "x" * 32
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
MAPPING = {"PHI Engineer": ("engineer",), "Clinician": ("clinician", "reader")}


@dataclass
class Scim:
    url: str
    store: StateStore
    refused: list[dict[str, Any]] = field(default_factory=list)

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        headers["Content-Type"] = "application/scim+json"
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.store.outbox() if e["type"] == kind]


def human_of(scim: Scim, subject: str) -> Human:
    found = scim.store.human(subject)
    assert found is not None, subject
    return found


def _serve(tmp_path: Path, settings: ScimSettings) -> Iterator[Scim]:
    store = StateStore(tmp_path / "state.db")
    scim = Scim("", store)
    app = scim_app(store, settings, scim.refused.append, MAPPING)
    outer = Starlette(routes=[Mount("/scim/v2", app=app)])
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    listener = AsgiListener("api", outer, "127.0.0.1", 0, None)
    host, port = asyncio.run_coroutine_threadsafe(listener.start(), loop).result(10)
    scim.url = f"http://{host}:{port}/scim/v2"
    try:
        yield scim
    finally:
        asyncio.run_coroutine_threadsafe(listener.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        store.close()


@pytest.fixture
def scim(tmp_path: Path) -> Iterator[Scim]:
    yield from _serve(tmp_path, ScimSettings.model_validate({"token": TOKEN}))


def okta_user(login: str = "dana.lee@example.com", okta_id: str = "00u1ab2cd3EF4gh5i6j7") -> Any:
    return {
        "schemas": [USER],
        "userName": login,
        "name": {"givenName": "Dana", "familyName": "Lee"},
        "emails": [{"primary": True, "value": login, "type": "work"}],
        "displayName": "Dana Lee",
        "locale": "en-US",
        "externalId": okta_id,
        "groups": [],
        "password": "Tr0ub4dor&3-okta-sends-one",
        "active": True,
    }


def entra_user(upn: str, object_id: str, roles: tuple[str, ...] = ()) -> Any:
    return {
        "schemas": [USER, ENTERPRISE],
        "externalId": object_id,
        "userName": upn,
        "active": True,
        "emails": [{"primary": True, "type": "work", "value": upn}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Sam Ortiz", "familyName": "Ortiz", "givenName": "Sam"},
        "roles": [
            {"primary": "True", "type": "WindowsAzureActiveDirectoryRole", "value": r}
            for r in roles
        ],
        ENTERPRISE: {"department": "Cardiology", "employeeNumber": "4711"},
    }


def scim_error(response: httpx.Response, status: int, scim_type: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type


# ---- Okta ---------------------------------------------------------------------------------------


def test_okta_lifecycle(scim: Scim) -> None:
    with scim.client() as c:
        probe = c.get("/Users", params={"startIndex": 1, "count": 2})  # "Test connector"
        assert probe.status_code == 200
        assert probe.headers["content-type"].startswith("application/scim+json")
        assert probe.json()["totalResults"] == 0 and probe.json()["Resources"] == []
        lookup = c.get(
            "/Users",
            params={"filter": 'userName eq "dana.lee@example.com"', "startIndex": 1, "count": 100},
        )
        assert lookup.json()["totalResults"] == 0

        created = c.post("/Users", json=okta_user())
        assert created.status_code == 201, created.text
        user = created.json()
        assert created.headers["location"] == f"{scim.url}/Users/{user['id']}"
        assert created.headers["etag"] == user["meta"]["version"]
        assert user["active"] is True and user["externalId"] == "00u1ab2cd3EF4gh5i6j7"
        assert "password" not in user and "groups" not in user
        assert user["meta"]["resourceType"] == "User"

        human = scim.store.human("00u1ab2cd3EF4gh5i6j7")  # the OIDC subject (Okta's sub)
        assert human is not None and human.active and human.source == "scim"
        assert human.email == "dana.lee@example.com"
        (provisioned,) = scim.events("user.provisioned")
        assert provisioned["who"]["claimed_user"] == "scim" and provisioned["source"] == "scim"
        assert provisioned["subject"] == "00u1ab2cd3EF4gh5i6j7"
        assert "Tr0ub4dor" not in scim.store.path.read_bytes().decode("latin-1")

        found = c.get("/Users", params={"filter": 'userName eq "Dana.Lee@example.com"'}).json()
        assert [r["id"] for r in found["Resources"]] == [user["id"]]
        assert c.get(f"/Users/{user['id']}").json()["userName"] == "dana.lee@example.com"

        # Okta updates a profile with PUT (the whole user, active included)
        body = okta_user()
        body["name"]["givenName"] = "Danielle"
        body["id"] = user["id"]
        replaced = c.put(f"/Users/{user['id']}", json=body)
        assert replaced.status_code == 200, replaced.text
        assert replaced.json()["name"] == {"givenName": "Danielle", "familyName": "Lee"}
        (updated,) = scim.events("user.updated")
        assert updated["changed"] == ["name"]

        # Okta deactivates: no path, the value is an object
        off = c.patch(
            f"/Users/{user['id']}",
            json={
                "schemas": [PATCH],
                "Operations": [{"op": "replace", "value": {"active": False}}],
            },
        )
        assert off.status_code == 200, off.text
        assert off.json()["active"] is False
        human = scim.store.human("00u1ab2cd3EF4gh5i6j7")
        assert human is not None and not human.active and human.reason == "deactivated by SCIM"
        assert "00u1ab2cd3EF4gh5i6j7" in scim.store.revoked_names()
        (revoked,) = scim.events("user.revoked")
        assert revoked["source"] == "scim" and revoked["who"]["claimed_user"] == "scim"
        assert revoked["subject"] == "00u1ab2cd3EF4gh5i6j7"

        on = c.patch(
            f"/Users/{user['id']}",
            json={"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": True}}]},
        )
        assert on.json()["active"] is True
        assert human_of(scim, "00u1ab2cd3EF4gh5i6j7").active
        assert len(scim.events("user.reactivated")) == 1

        # the same PUT again changes nothing and queues nothing
        before = len(scim.store.outbox())
        again = c.put(f"/Users/{user['id']}", json=body)
        assert again.status_code == 200 and len(scim.store.outbox()) == before


# ---- Entra ID -----------------------------------------------------------------------------------


def test_entra_lifecycle(scim: Scim) -> None:
    oid = "5f1c9a1e-2b7d-4c3e-9f20-6a8b7c6d5e4f"
    with scim.client() as c:
        none = c.get("/Users", params={"filter": 'userName eq "nobody@contoso.example"'})
        assert none.json() == {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": 0,
            "startIndex": 1,
            "itemsPerPage": 0,
            "Resources": [],
        }
        created = c.post("/Users", json=entra_user("sam@contoso.example", oid, ("PHI Engineer",)))
        assert created.status_code == 201, created.text
        user = created.json()
        assert user["schemas"] == [USER, ENTERPRISE]
        assert user[ENTERPRISE]["department"] == "Cardiology"
        assert user["roles"][0]["primary"] is True  # "True" taken as a boolean
        human = scim.store.human(oid)
        assert human is not None and human.roles == ("engineer",)
        assert human.email == "sam@contoso.example"

        by_external = c.get("/Users", params={"filter": f'externalId eq "{oid}"'}).json()
        assert by_external["totalResults"] == 1

        # attribute updates the way Entra ID sends them
        changed = c.patch(
            f"/Users/{user['id']}",
            json={
                "schemas": [PATCH],
                "Operations": [
                    {
                        "op": "Replace",
                        "path": 'emails[type eq "work"].value',
                        "value": "s.ortiz@contoso.example",
                    },
                    {"op": "Replace", "path": "name.familyName", "value": "Ortiz-Diaz"},
                    {
                        "op": "Add",
                        "path": "roles",
                        "value": [{"primary": "False", "value": "Clinician"}],
                    },
                    {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Oncology"},
                    {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "a1b2c3"},
                    {
                        "op": "replace",
                        "value": {"name.givenName": "Samuel", "displayName": "Sam O."},
                    },
                ],
            },
        )
        assert changed.status_code == 200, changed.text
        body = changed.json()
        assert body["emails"] == [
            {"primary": True, "type": "work", "value": "s.ortiz@contoso.example"}
        ]
        assert body["name"]["familyName"] == "Ortiz-Diaz" and body["name"]["givenName"] == "Samuel"
        assert body["displayName"] == "Sam O."
        assert body[ENTERPRISE] == {
            "department": "Oncology",
            "employeeNumber": "4711",
            "manager": {"value": "a1b2c3"},
        }
        human = scim.store.human(oid)
        assert human is not None and human.email == "s.ortiz@contoso.example"
        assert human.roles == ("engineer", "clinician", "reader")

        removed = c.patch(
            f"/Users/{user['id']}",
            json={
                "schemas": [PATCH],
                "Operations": [
                    {"op": "Remove", "path": "roles", "value": [{"value": "PHI Engineer"}]}
                ],
            },
        )
        assert [r["value"] for r in removed.json()["roles"]] == ["Clinician"]
        assert human_of(scim, oid).roles == ("clinician", "reader")

        # Entra ID disables with a capitalised op and the string "False"
        off = c.patch(
            f"/Users/{user['id']}",
            json={
                "schemas": [PATCH],
                "Operations": [{"op": "Replace", "path": "active", "value": "False"}],
            },
        )
        assert off.status_code == 200 and off.json()["active"] is False
        assert not human_of(scim, oid).active

        gone = c.delete(f"/Users/{user['id']}")
        assert gone.status_code == 204 and gone.content == b""
        scim_error(c.get(f"/Users/{user['id']}"), 404)
        scim_error(c.delete(f"/Users/{user['id']}"), 404)
        assert (
            c.get("/Users", params={"filter": f'externalId eq "{oid}"'}).json()["totalResults"] == 0
        )
        human = scim.store.human(oid)
        assert human is not None and not human.active  # kept, revoked, for the audit
        assert [e["type"] for _, e in scim.store.outbox()] == [
            "user.provisioned",
            "user.updated",
            "user.updated",
            "user.revoked",
            "user.deleted",
        ]


def test_delete_revokes_an_active_human(scim: Scim) -> None:
    with scim.client() as c:
        user = c.post("/Users", json=okta_user()).json()
        assert c.delete(f"/Users/{user['id']}").status_code == 204
    human = scim.store.human("00u1ab2cd3EF4gh5i6j7")
    assert human is not None and not human.active and human.reason == "deleted by SCIM"
    revoked, deleted = scim.events("user.revoked"), scim.events("user.deleted")
    assert len(revoked) == 1 and len(deleted) == 1 and revoked[0]["source"] == "scim"
    assert scim.store.humans() == [human]


@dataclass
class AgentSession:
    info: SessionInfo
    ended: list[str] = field(default_factory=list)

    def terminate(self, sqlstate: str, message: str, reason: str = "") -> None:
        self.ended.append(f"{sqlstate} {message}")


def test_the_revocation_watcher_acts_on_a_scim_deactivation(scim: Scim) -> None:
    subject = "00u1ab2cd3EF4gh5i6j7"
    agent = Identity("agent:cursor", ("engineer",), on_behalf_of=(subject,), method="credential")
    session = AgentSession(SessionInfo("s1", "postgresql", "127.0.0.1:5", "pg", identity=agent))
    audited: list[dict[str, Any]] = []
    watcher = RevocationWatcher(scim.store, lambda: [session], audited.extend)
    with scim.client() as c:
        user = c.post("/Users", json=okta_user()).json()
        watcher.refresh()
        assert watcher.sweep() == [] and session.ended == []
        deactivate = {
            "schemas": [PATCH],
            "Operations": [{"op": "replace", "value": {"active": False}}],
        }
        c.patch(f"/Users/{user['id']}", json=deactivate)
    assert watcher.refresh()
    (terminated,) = watcher.sweep()
    assert session.ended == [f"57P01 terminating connection: access of {subject!r} was revoked"]
    assert terminated["who"]["on_behalf_of"] == [subject]
    assert [e["type"] for e in audited] == ["user.provisioned", "user.revoked"]
    assert scim.store.outbox() == []  # drained into the audit


# ---- what deactivation and reactivation do to credentials ----------------------------------------


def test_reactivation_does_not_revive_old_credentials(scim: Scim) -> None:
    subject = "00u1ab2cd3EF4gh5i6j7"
    with scim.client() as c:
        user = c.post("/Users", json=okta_user()).json()
        owner = scim.store.human(subject)
        assert owner is not None
        own = issue(scim.store, "human", subject, owner, 3600, {})
        agent = issue(scim.store, "agent", "cursor", owner, 3600, {})
        assert verify(scim.store, own.secret, subject).subject == subject
        assert verify(scim.store, agent.secret, "cursor").on_behalf_of == (subject,)

        deactivate = {
            "schemas": [PATCH],
            "Operations": [{"op": "replace", "value": {"active": False}}],
        }
        assert c.patch(f"/Users/{user['id']}", json=deactivate).status_code == 200
        for secret, login in ((own.secret, subject), (agent.secret, "cursor")):
            with pytest.raises(CredentialRefused, match="is revoked"):
                verify(scim.store, secret, login)

        reactivate = {
            "schemas": [PATCH],
            "Operations": [{"op": "replace", "value": {"active": True}}],
        }
        assert c.patch(f"/Users/{user['id']}", json=reactivate).json()["active"] is True
        owner = scim.store.human(subject)
        assert owner is not None and owner.active
        for secret, login in ((own.secret, subject), (agent.secret, "cursor")):
            with pytest.raises(CredentialRefused, match="credential revoked"):
                verify(scim.store, secret, login)
        fresh = issue(scim.store, "agent", "cursor2", owner, 3600, {})
        assert verify(scim.store, fresh.secret, "cursor2").on_behalf_of == (subject,)


def test_an_administrators_revocation_outlasts_routine_updates(scim: Scim) -> None:
    with scim.client() as c:
        user = c.post("/Users", json=okta_user()).json()
        scim.store.revoke_human("00u1ab2cd3EF4gh5i6j7", "offboarded", {"type": "user.revoked"})
        body = okta_user()
        body["displayName"] = "Dana L."
        put = c.put(f"/Users/{user['id']}", json=body)  # carries active: true
        assert put.json()["active"] is False  # the human is revoked, and SCIM says so
        assert not human_of(scim, "00u1ab2cd3EF4gh5i6j7").active
        assert scim.events("user.reactivated") == []
        # the provider turning the user off and on again is a deliberate reactivation
        for active in (False, True):
            c.patch(
                f"/Users/{user['id']}",
                json={
                    "schemas": [PATCH],
                    "Operations": [{"op": "replace", "path": "active", "value": active}],
                },
            )
        assert human_of(scim, "00u1ab2cd3EF4gh5i6j7").active


def test_recreated_after_delete_is_reactivated(scim: Scim) -> None:
    with scim.client() as c:
        first = c.post("/Users", json=okta_user()).json()
        c.delete(f"/Users/{first['id']}")
        again = c.post("/Users", json=okta_user())
        assert again.status_code == 201 and again.json()["id"] != first["id"]
        assert again.json()["active"] is True
    assert human_of(scim, "00u1ab2cd3EF4gh5i6j7").active
    assert len(scim.events("user.reactivated")) == 1


# ---- adoption, uniqueness, subjects ------------------------------------------------------------


def test_adopts_a_human_registered_by_other_means(scim: Scim) -> None:
    scim.store.add_human("dave@example.com", "dave@example.com", ("engineer",), source="cli")
    body = okta_user("dave@example.com")
    del body["externalId"]  # then the subject is the userName
    with scim.client() as c:
        created = c.post("/Users", json=body)
        assert created.status_code == 201, created.text
    assert [h.subject for h in scim.store.humans()] == ["dave@example.com"]
    human = scim.store.human("dave@example.com")
    assert human is not None and human.roles == ("engineer",) and human.source == "cli"
    (event,) = scim.events("user.provisioned")
    assert event["adopted"] is True


def test_user_name_is_unique_without_regard_to_case(scim: Scim) -> None:
    with scim.client() as c:
        assert c.post("/Users", json=okta_user()).status_code == 201
        scim_error(
            c.post("/Users", json=okta_user("DANA.LEE@example.com", "00uother")), 409, "uniqueness"
        )
        scim_error(c.post("/Users", json=okta_user("other@example.com")), 409, "uniqueness")
        other = c.post("/Users", json=okta_user("other@example.com", "00uother")).json()
        renamed = {
            "schemas": [PATCH],
            "Operations": [{"op": "replace", "path": "userName", "value": "Dana.Lee@Example.com"}],
        }
        scim_error(c.patch(f"/Users/{other['id']}", json=renamed), 409, "uniqueness")
    assert len(scim.store.humans()) == 2


def test_a_new_external_id_rebinds_the_user(scim: Scim) -> None:
    with scim.client() as c:
        user = c.post("/Users", json=okta_user()).json()
        moved = c.patch(
            f"/Users/{user['id']}",
            json={
                "schemas": [PATCH],
                "Operations": [{"op": "replace", "path": "externalId", "value": "00unew"}],
            },
        )
        assert moved.status_code == 200 and moved.json()["externalId"] == "00unew"
    old, new = scim.store.human("00u1ab2cd3EF4gh5i6j7"), scim.store.human("00unew")
    assert old is not None and not old.active
    assert new is not None and new.active


# ---- listing and filters -------------------------------------------------------------------------


def test_filters_and_paging(scim: Scim) -> None:
    with scim.client() as c:
        ids = [
            c.post("/Users", json=okta_user(f"u{i}@example.com", f"00u{i}")).json()["id"]
            for i in range(5)
        ]

        def found(expression: str, **params: Any) -> list[str]:
            response = c.get("/Users", params={"filter": expression, **params})
            assert response.status_code == 200, response.text
            return [r["id"] for r in response.json()["Resources"]]

        assert found('userName eq "U3@EXAMPLE.COM"') == [ids[3]]
        assert found('externalId eq "00u2"') == [ids[2]]
        assert found('externalId eq "00U2"') == []  # case-exact
        assert found('emails.value eq "u1@example.com"') == [ids[1]]
        assert found('emails[type eq "work" and value eq "u4@example.com"]') == [ids[4]]
        assert found(f'id eq "{ids[0]}"') == [ids[0]]
        assert found(f'id eq "{ids[0]}" and userName eq "u1@example.com"') == []
        assert found('userName eq "u0@example.com" or externalId eq "00u4"') == [ids[0], ids[4]]
        assert found('userName sw "u" and not (externalId eq "00u0")') == ids[1:]
        assert found("active eq true") == ids
        assert found('meta.resourceType eq "User"', count=2, startIndex=2) == ids[1:3]
        page = c.get("/Users", params={"startIndex": 5, "count": 10}).json()
        assert page["totalResults"] == 5 and page["startIndex"] == 5
        assert page["itemsPerPage"] == 1 and page["Resources"][0]["id"] == ids[4]
        assert c.get("/Users", params={"count": 0}).json()["Resources"] == []

        for bad in (
            "userName eq",
            'userName xx "a"',
            '(userName eq "a"',
            'emails[type eq "w"',
            'userName eq "a" and',
            '"a" eq userName',
            "(" * 40 + 'userName eq "a"' + ")" * 40,
            "userName eq 'single'",
        ):
            scim_error(c.get("/Users", params={"filter": bad}), 400, "invalidFilter")
        scim_error(c.get("/Users", params={"count": "many"}), 400, "invalidValue")


# ---- hostile input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer wrong",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Basic {TOKEN}",
        f"bearer{TOKEN}",
        "Bearer " + "A" * 4000,
    ],
)
def test_refused_without_the_right_bearer(scim: Scim, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    with httpx.Client(base_url=scim.url, timeout=10) as c:
        for method, path in (
            ("GET", "/Users"),
            ("POST", "/Users"),
            ("GET", "/Nowhere"),
            ("DELETE", "/Users/x"),
            ("GET", "/ServiceProviderConfig"),
        ):
            response = c.request(method, path, headers=headers, json=okta_user())
            scim_error(response, 401)
            assert response.headers["www-authenticate"] == 'Bearer realm="wardgate-scim"'
            assert response.json()["detail"] == "a valid bearer token is required"
    assert len(scim.refused) == 5
    for event in scim.refused:
        assert event["type"] == "scim.refused" and event["outcome"] == "failure"
        assert event["session"]["client_addr"].startswith("127.0.0.1:")
        assert event["reason"] in ("no bearer token", "wrong bearer token")
        assert TOKEN not in str(event)
    assert scim.refused[0]["path"] == "/scim/v2/Users"
    assert scim.store.humans() == [] and scim.store.outbox() == []


def test_token_sha256(tmp_path: Path) -> None:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    for scim in _serve(tmp_path, ScimSettings.model_validate({"token_sha256": digest})):
        with scim.client() as c:
            assert c.get("/Users").status_code == 200
        with scim.client(digest) as c:
            scim_error(c.get("/Users"), 401)
        assert [e["reason"] for e in scim.refused] == ["wrong bearer token"]


def test_hostile_bodies(scim: Scim) -> None:
    with scim.client() as c:
        huge = b'{"schemas": ["' + USER.encode() + b'"], "userName": "' + b"a" * (1 << 20) + b'"}'
        scim_error(c.post("/Users", content=huge), 413)

        def chunks() -> Iterator[bytes]:
            yield b'{"userName": "'
            for _ in range(20):
                yield b"a" * 65536

        scim_error(c.post("/Users", content=chunks()), 413)
        scim_error(c.post("/Users", content=b"{not json"), 400, "invalidSyntax")
        scim_error(c.post("/Users", content=b"\xff\xfe"), 400, "invalidSyntax")
        scim_error(c.post("/Users", content=b"[" * 100000 + b"]" * 100000), 400, "invalidSyntax")
        scim_error(c.post("/Users", json=[okta_user()]), 400, "invalidSyntax")
        no_schema = okta_user()
        del no_schema["schemas"]
        scim_error(c.post("/Users", json=no_schema), 400, "invalidValue")
        scim_error(c.post("/Users", json={"schemas": [USER]}), 400, "invalidValue")
        for bad in (
            {"userName": 42},
            {"userName": ""},
            {"userName": "a\nb"},
            {"userName": "x" * 300},
            {"active": "maybe"},
            {"emails": 5},
            {"emails": [{"value": 1}]},
            {"name": "Dana"},
        ):
            scim_error(c.post("/Users", json=okta_user() | bad), 400, "invalidValue")

        user = c.post("/Users", json=okta_user()).json()
        url = f"/Users/{user['id']}"
        for operations in (
            None,
            [],
            [{"op": "move", "path": "active"}],
            [{"path": "active"}],
            [{"op": "replace", "value": "x"}],
            ["replace"],
            [{"op": "replace", "path": "active", "value": None}],
            [{"op": "remove", "path": "active"}],
            [{"op": "remove", "path": "userName"}],
        ):
            scim_error(c.patch(url, json={"schemas": [PATCH], "Operations": operations}), 400)
        scim_error(
            c.patch(url, json={"Operations": [{"op": "replace", "value": {"active": False}}]}),
            400,
            "invalidValue",
        )
        bad_path = {
            "schemas": [PATCH],
            "Operations": [
                {"op": "replace", "path": 'emails[type eq "work"', "value": "a@b.example"}
            ],
        }
        scim_error(c.patch(url, json=bad_path), 400, "invalidPath")
        no_target = {
            "schemas": [PATCH],
            "Operations": [
                {"op": "replace", "path": 'emails[type co "zz"].value', "value": "a@b.example"}
            ],
        }
        scim_error(c.patch(url, json=no_target), 400, "noTarget")
        assert c.get(url).json()["active"] is True  # nothing above changed anything
        assert human_of(scim, "00u1ab2cd3EF4gh5i6j7").active

        scim_error(c.get("/Users/does-not-exist"), 404)
        scim_error(c.put("/Users/does-not-exist", json=okta_user()), 404)
        scim_error(
            c.patch(
                "/Users/does-not-exist",
                json={
                    "schemas": [PATCH],
                    "Operations": [{"op": "replace", "value": {"active": False}}],
                },
            ),
            404,
        )
        scim_error(c.get("/Groups"), 404)
        not_allowed = c.post("/ServiceProviderConfig", json={})
        scim_error(not_allowed, 405)
        assert "GET" in not_allowed.headers["allow"]
        stale = c.put(url, json=okta_user(), headers={"If-Match": 'W/"stale"'})
        scim_error(stale, 412)
        fresh = c.get(url).headers["etag"]
        assert c.put(url, json=okta_user(), headers={"If-Match": fresh}).status_code == 200


def test_unavailable_state_fails_closed(scim: Scim) -> None:
    with scim.client() as c:
        user = c.post("/Users", json=okta_user()).json()
        scim.store.close()
        scim_error(c.get("/Users"), 503)
        scim_error(c.get(f"/Users/{user['id']}"), 503)
        scim_error(c.delete(f"/Users/{user['id']}"), 503)
        scim_error(c.post("/Users", json=okta_user("x@example.com", "00ux")), 503)


def test_discovery(scim: Scim) -> None:
    with scim.client() as c:
        config = c.get("/ServiceProviderConfig").json()
        assert config["patch"]["supported"] is True and config["bulk"]["supported"] is False
        assert config["authenticationSchemes"][0]["type"] == "oauthbearertoken"
        types = c.get("/ResourceTypes").json()
        assert types["Resources"][0]["endpoint"] == "/Users"
        schemas = c.get("/Schemas").json()["Resources"]
        assert [s["id"] for s in schemas] == [USER, ENTERPRISE]
        user_name = next(a for a in schemas[0]["attributes"] if a["name"] == "userName")
        assert user_name["required"] is True and user_name["uniqueness"] == "server"

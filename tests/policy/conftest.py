"""A gateway with policy rules in front of the demo schema (seeded patients) and a table of 250
rows, and users for every rule: alice the engineer, bob the clinician, dan the DBA, and robot,
an agent acting for bob."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.databases import temporary_database
from tests.gateway_harness import RunningGateway, build_config, running
from tests.protocols.postgres.conftest import target_entry
from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.seed import DEMO_LABELS, seed
from wardgate.identity.authenticator import (
    AuthExchange,
    AuthStep,
    StaticAuthenticator,
    StaticUser,
)
from wardgate.masking.entities import Entity

BIG = 250
CAP = 100
PHI_CAP = 10

POLICY: dict[str, Any] = {
    "admin_roles": ["dba"],
    "rules": [
        {"name": "agents never write", "roles": "*", "agents": True,
         "kinds": ["write", "ddl", "dcl"], "action": "deny",
         "reason": "agents have read-only access"},
        {"name": "engineers read only", "roles": ["engineer"],
         "kinds": ["write", "ddl", "dcl"], "action": "deny",
         "reason": "engineers have read-only access"},
        {"name": "no secrets", "tables": ["secrets"], "action": "deny",
         "reason": "the secrets table is off limits"},
        {"name": "explicitly allowed", "roles": ["engineer"], "tables": ["big"],
         "unfiltered": False, "action": "allow"},
        {"name": "bulk reads capped", "tables": ["big"], "unfiltered": True, "cap_rows": CAP},
        {"name": "PHI pulls capped", "roles": ["engineer"], "phi": True, "unfiltered": True,
         "cap_rows": PHI_CAP},
        {"name": "no copy for engineers", "roles": ["engineer"], "kinds": ["copy"],
         "action": "deny", "reason": "engineers do not export"},
    ],
}  # fmt: skip

USERS: list[dict[str, Any]] = [
    {"name": "dan", "password": "dan-secret", "roles": ["dba"]},
    {"name": "robot", "password": "robot-secret", "roles": ["clinician"]},
]


class AgentAuthenticator:
    """The configuration's users, where ``robot`` acts for bob (as an agent credential would)."""

    def __init__(self, users: list[StaticUser]) -> None:
        self.inner = StaticAuthenticator(users)

    def begin(self, user: str, *, tls: bool, mechanism: str) -> AuthExchange:
        exchange = self.inner.begin(user, tls=tls, mechanism=mechanism)
        return _ActingFor(exchange) if user == "robot" else exchange


class _ActingFor:
    def __init__(self, inner: AuthExchange) -> None:
        self.inner = inner
        self.mechanism = inner.mechanism

    def step(self, data: bytes) -> AuthStep:
        step = self.inner.step(data)
        if step.identity is None:
            return step
        identity = dataclasses.replace(step.identity, on_behalf_of=("bob",), method="agent")
        return dataclasses.replace(step, identity=identity)


@pytest.fixture(scope="module")
def database(pg_server: LocalPostgres) -> Iterator[str]:
    with temporary_database(pg_server, "wardgate_policy") as name:
        seed(pg_server.dsn(name), patients=30)
        with psycopg.connect(pg_server.dsn(name), autocommit=True) as conn:
            conn.execute(f"CREATE TABLE big AS SELECT g AS id, 'row ' || g AS label"
                         f" FROM generate_series(1, {BIG}) g")  # fmt: skip
            conn.execute("CREATE TABLE secrets (id int, value text)")
            conn.execute("CREATE TABLE scratch (id int)")
        yield name


def policy_gateway(
    tmp: Path, pki: Path, pg: LocalPostgres, database: str, policy: dict[str, Any]
) -> Iterator[RunningGateway]:
    def with_policy(raw: dict[str, Any]) -> None:
        raw["targets"][0]["phi"] = DEMO_LABELS
        raw["users"] += USERS
        raw["policy"] = policy
        # the administrator sees PHI raw: procedural code is refused to any masked role
        raw["masking"] = {
            "roles": {"dba": {"raw": [*(e.value for e in Entity), "TEXT", "UNRESOLVED"]}}
        }

    config = build_config(tmp, pki, target_entry(pg, database), edit=with_policy)
    users = [StaticUser(u.name, u.verifier(), u.roles) for u in config.users]
    for gw in running(config, pki / "ca.pem", authenticator=AgentAuthenticator(users)):
        gw.password.update({str(u["name"]): str(u["password"]) for u in USERS})
        yield gw


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, pg_server: LocalPostgres, database: str
) -> Iterator[RunningGateway]:
    tmp, pki = tmp_path_factory.mktemp("policy"), tmp_path_factory.mktemp("pki")
    yield from policy_gateway(tmp, pki, pg_server, database, POLICY)

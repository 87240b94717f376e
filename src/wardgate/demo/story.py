"""``wardgate demo --story``: the offboarded contractor's AI assistant, told by the running system.

alice is registered; she signs in at the development provider; she gives her AI assistant
"cursor" an agent credential; cursor reads patient records through the gateway; alice is
revoked (as ``wardgate users revoke`` does it); the gateway ends cursor's live session within
seconds and refuses its credential from then on; the audit shows each step with the
on-behalf-of chain. Nothing waits for a person; the exit status says whether every step behaved.

The story keeps its configuration, identity state and audit in ``story/`` under the demo folder,
made afresh at each run, so that revoking alice there leaves the interactive demo's alice alone.
It shares the embedded PostgreSQL, the certificates and the provider's keys, and takes free ports.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from wardgate.app import Gateway
from wardgate.audit.events import identity_event
from wardgate.config import Config, load
from wardgate.demo.idp import DevProviderServer
from wardgate.demo.idp_tokens import DevProvider
from wardgate.demo.postgres import LocalPostgres
from wardgate.identity.credentials import issue
from wardgate.identity.state import StateStore

OWNER, AGENT = "alice", "cursor"
ACTOR = "admin:demo-story"
REASON = "contractor offboarded"
TERMINATION_LIMIT = 5.0
AUDITED = ("credential.created", "session.start", "user.revoked", "session.terminated")
STEPS = 8


def tell_story(
    base: Path, pg: LocalPostgres, passwords: dict[str, str], idp: DevProviderServer
) -> int:
    from wardgate.demo.run import write_config

    work = base / "story"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700, parents=True)
    path = write_config(base, pg, 0, passwords, issuer=idp.issuer, api_port=0, work_dir=work)
    config = load(path)
    print(f"wardgate demo --story: configuration {path}", flush=True)
    print(f"identity provider (DEVELOPMENT ONLY): {idp.issuer}", flush=True)
    return asyncio.run(_with_gateway(config, idp.provider, base / "pki" / "ca.pem"))


async def _with_gateway(config: Config, provider: DevProvider, ca: Path) -> int:
    gateway = Gateway(config)
    await gateway.start()
    try:
        _host, port = gateway.addresses["postgres"]
        print(f"gateway: 127.0.0.1:{port} (TLS)", flush=True)
        return await asyncio.to_thread(_Story(config, provider, port, ca).tell)
    finally:
        await gateway.close()


class _Story:
    def __init__(self, config: Config, provider: DevProvider, port: int, ca: Path) -> None:
        self.config, self.provider, self.port, self.ca = config, provider, port, ca
        self.failures: list[str] = []
        self._step = 0

    def step(self, title: str) -> None:
        self._step += 1
        print(f"\n[{self._step}/{STEPS}] {title}", flush=True)

    @staticmethod
    def say(text: str) -> None:
        print(f"      {text}", flush=True)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)
            self.say(f"!! unexpected: {what}")

    def connect(self, user: str, password: str) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            dbname="clinic",
            user=user,
            password=password,
            sslmode="verify-full",
            sslrootcert=str(self.ca),
            connect_timeout=10,
            autocommit=True,
            application_name=f"demo-story-{user}",
        )

    def tell(self) -> int:
        assert self.config.identity.state is not None
        store = StateStore(self.config.identity.state)
        try:
            self._tell(store)
        except (psycopg.Error, OSError, ValueError) as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")
            self.say(f"!! the story stopped: {exc}")
        finally:
            store.close()
        if self.failures:
            print(f"\nThe story did not go as it should: {'; '.join(self.failures)}", flush=True)
            return 1
        print("\nThe story went as it should: no credential outlived the human it belonged to.")
        return 0

    def _tell(self, store: StateStore) -> None:
        self.step("alice joins: the gateway registers her")
        self.say("$ wardgate users add alice --email alice@clinic.example --roles engineer")
        owner = store.add_human(OWNER, f"{OWNER}@clinic.example", ("engineer",), source="demo")
        self.say(f"{owner.subject} <{owner.email}>: {owner.status}, roles {', '.join(owner.roles)}")

        self.step("alice signs in at the identity provider and connects with her ID token")
        id_token = self.provider.mint(OWNER)["id_token"]
        self.say(f"ID token from {self.provider.issuer}: {id_token[:24]}... (RS256, signed)")
        with self.connect(OWNER, id_token) as conn:
            count = conn.execute("SELECT count(*) FROM patients").fetchone()
        self.say(f"alice (OIDC, role engineer) sees {count[0] if count else '?'} patients")

        self.step("alice gives her AI assistant an agent credential")
        self.say("$ wardgate agent create --name cursor --owner alice --ttl 8h")
        event = identity_event("credential.created", ACTOR, time.time())
        issued = issue(store, "agent", AGENT, owner, 8 * 3600.0, event)
        expires = dt.datetime.fromtimestamp(issued.record.expires, dt.UTC)
        self.say(
            f"{issued.record.subject} acting for {OWNER}, expires {expires:%Y-%m-%d %H:%M} UTC"
        )
        self.say(f"credential {issued.secret[:21]}... (shown once; cursor keeps it)")

        self.step("cursor connects through the gateway and reads patient records")
        agent = self.connect(AGENT, issued.secret)
        rows = agent.execute("SELECT mrn, first_name, last_name FROM patients ORDER BY id LIMIT 3")
        for mrn, first, last in rows.fetchall():
            self.say(f"{mrn}  {first} {last}   (synthetic)")
        self.say("cursor starts another query and waits for it: SELECT pg_sleep(60)")
        running = _Query(agent, "SELECT pg_sleep(60)")
        time.sleep(0.5)

        self.step("alice is offboarded")
        self.say("$ wardgate users revoke alice@clinic.example --reason 'contractor offboarded'")
        revoked = identity_event(
            "user.revoked", ACTOR, time.time(), subject=owner.subject, email=owner.email,
            reason=REASON, source="demo",
        )  # fmt: skip
        store.revoke_human(owner.subject, REASON, revoked)
        started = time.monotonic()
        self.say("alice: revoked; the gateway watches the identity state every second")

        self.step("the gateway ends cursor's live session")
        error = running.wait(TERMINATION_LIMIT + 5)
        elapsed = time.monotonic() - started
        sqlstate = getattr(error, "sqlstate", None)
        message = str(error).strip().splitlines()[0] if error else "(no error)"
        self.say(f"cursor's query failed after {elapsed:.1f} s: {sqlstate} {message}")
        self.check(sqlstate == "57P01", f"expected FATAL 57P01, got {sqlstate} {message}")
        self.check(elapsed <= TERMINATION_LIMIT, f"terminated after {elapsed:.1f} s, not within 5")
        agent.close()

        self.step("cursor reconnects with its credential, alice with her token: both refused")
        for user, password in ((AGENT, issued.secret), (OWNER, id_token)):
            try:
                self.connect(user, password).close()
                self.check(False, f"{user} could connect after the revocation")
            except psycopg.OperationalError as exc:
                self.say(f"{user}: {str(exc).strip().splitlines()[-1]}")

        self.step("the audit trail of the story")
        self._audit()

    def _audit(self) -> None:
        path = self.config.audit.path
        assert path is not None
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            events = [json.loads(line) for line in path.read_text().splitlines() if line]
            types = {e.get("type") for e in events}
            if set(AUDITED) | {"session.refused"} <= types:
                break
            time.sleep(0.2)
        self.say(f"from {path} (also in the signed store; wardgate audit verify)")
        shown = [e for e in events if e.get("type") in (*AUDITED, "session.refused")]
        for event in sorted(shown, key=lambda e: str(e.get("time"))):
            self.say(_describe(event))
        types = {e.get("type") for e in events}
        for kind in (*AUDITED, "session.refused"):
            self.check(kind in types, f"no {kind} event in the audit")
        chained = [
            e
            for e in events
            if e.get("type") == "session.start" and e["who"].get("on_behalf_of") == [OWNER]
        ]
        self.check(bool(chained), "no session.start of cursor on behalf of alice")


def _describe(event: dict[str, Any]) -> str:
    when = str(event.get("time", ""))[11:23]
    who = event.get("who", {})
    if event.get("type") in ("user.revoked", "credential.created"):
        actor = f"by {who.get('claimed_user')}"
    elif who.get("verified"):
        chain = " for " + " for ".join(who["on_behalf_of"]) if who.get("on_behalf_of") else ""
        roles = ", ".join(who.get("roles", [])) or "no roles"
        actor = f"{who['subject']}{chain} ({who.get('method')}; {roles})"
    else:
        actor = f"claimed {who.get('claimed_user')!r}"
    detail = ""
    if event.get("type") == "user.revoked":
        detail = f"{event.get('subject')}: {event.get('reason')}"
    elif event.get("type") == "credential.created":
        credential = event.get("credential", {})
        detail = f"{credential.get('subject')} owned by {credential.get('owner')}"
    elif event.get("reason"):
        detail = str(event["reason"])
    return f"{when}  {event.get('type', ''):<19} {actor}  {detail}".rstrip()


class _Query:
    """A statement running on a thread of its own; ``wait`` returns the error that ended it."""

    def __init__(self, conn: psycopg.Connection[Any], statement: str) -> None:
        self._conn = conn
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(statement,), daemon=True)
        self._thread.start()

    def _run(self, statement: str) -> None:
        try:
            self._conn.execute(statement)
        except psycopg.Error as exc:
            self.error = exc

    def wait(self, timeout: float) -> BaseException | None:
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._conn.cancel()
            self._thread.join(5)
        return self.error

"""``wardgate credential``, ``agent``, ``service``, ``credentials`` and ``users``
(``add``, ``list``, ``revoke``, ``restore``).

An administrator's tool, run on the gateway host against the state store named by the
configuration (``identity.state``). Each change is queued for the audit in the same transaction
(the running gateway drains the queue). Secrets go to stdout, everything else to stderr.
Exit status: 0 done, 1 refused (a revoked or unknown human), 2 a usage or configuration problem.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
import time
from typing import Any

from wardgate.audit.events import identity_event
from wardgate.config import Config, ConfigError, config_path, load
from wardgate.identity import login_cli
from wardgate.identity.credentials import check_request, describe, issue, parse_duration
from wardgate.identity.state import Human, Kind, StateError, StateStore

COMMANDS = ("credential", "agent", "service", "credentials", "users", "login", "logout")


class _Refused(Exception):
    """Exit status 1."""


def _roles(text: str) -> tuple[str, ...]:
    return tuple(r.strip() for r in text.split(",") if r.strip())


def add_parsers(sub: Any) -> None:
    def command(parent: Any, name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help)
        p.add_argument("-c", "--config", default=None, help="configuration file")
        return p

    login_cli.add_parsers(sub)
    cred = command(sub, "credential", "print a short-lived gateway credential for a human")
    cred.add_argument(
        "--user", default=None, help="as an administrator: the human (default: the signed-in one)"
    )
    cred.add_argument("--ttl", default=None, help="lifetime, e.g. 30m or 1h (default from config)")

    for kind, ttl_help in (("agent", "default 8h"), ("service", "required")):
        group = sub.add_parser(kind, help=f"{kind} credentials bound to a human owner")
        actions = group.add_subparsers(dest=f"{kind}_command", required=True, metavar="ACTION")
        create = command(actions, "create", f"create a {kind} credential acting for its owner")
        create.add_argument("--name", required=True)
        create.add_argument(
            "--owner", default=None, help="as an administrator: the human it acts for"
            " (default: the signed-in human, through the gateway)",
        )  # fmt: skip
        create.add_argument("--ttl", required=kind == "service", default="8h", help=ttl_help)
        create.add_argument("--roles", type=_roles, default=None, help="a subset of the owner's")

    creds = sub.add_parser("credentials", help="list credentials and their owners' status")
    actions = creds.add_subparsers(dest="credentials_command", required=True, metavar="ACTION")
    listing = command(actions, "list", "list credentials")
    listing.add_argument("--orphaned", action="store_true", help="only those of revoked owners")
    listing.add_argument("--json", action="store_true")

    users = sub.add_parser("users", help="register, list and revoke humans")
    actions = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = command(actions, "add", "register a human")
    add.add_argument("subject")
    add.add_argument("--email", default=None)
    add.add_argument("--roles", type=_roles, default=())
    command(actions, "list", "list humans").add_argument("--json", action="store_true")
    revoke = command(actions, "revoke", "revoke a human: their credentials and sessions end")
    revoke.add_argument("who", metavar="EMAIL", help="subject or e-mail address")
    revoke.add_argument("--reason", default="revoked by an administrator")
    restore = command(actions, "restore", "restore a suspended human (never a revoked one)")
    restore.add_argument("who", metavar="EMAIL", help="subject or e-mail address")
    restore.add_argument("--reason", default="restored by an administrator")


def run(args: argparse.Namespace) -> int:
    if args.command in ("login", "logout"):
        return login_cli.run(args)
    if args.command == "credential" and args.user is None:
        return login_cli.run(args, "human")
    if args.command in ("agent", "service") and args.owner is None:
        return login_cli.run(args, args.command)
    try:
        config = load(config_path(args.config))
        if config.identity.state is None:
            raise ConfigError("identity.state is not configured: there is no credential store")
        store = StateStore(config.identity.state)
        try:
            return _dispatch(args, config, store)
        finally:
            store.close()
    except (ConfigError, StateError, ValueError) as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 2
    except _Refused as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 1


def _actor() -> str:
    return f"admin:{getpass.getuser()}"


def _owner(config: Config, store: StateStore, name: str) -> Human:
    """A registered human; one listed in the configuration's users is registered on first use."""
    human = store.human(name)
    if human is None:
        user = next((u for u in config.users if u.name == name), None)
        if user is None:
            raise _Refused(f"unknown human {name!r}; register them with 'wardgate users add'")
        human = store.add_human(name, roles=user.roles, source="config")
    if not human.active:
        raise _Refused(f"{human.subject} is {human.status} ({human.reason})")
    return human


def _dispatch(args: argparse.Namespace, config: Config, store: StateStore) -> int:
    ident = config.identity
    if args.command == "credential":
        ttl = parse_duration(args.ttl) if args.ttl else ident.credential_ttl
        return _issue(store, "human", _owner(config, store, args.user), None, ttl, None, ident)
    if args.command in ("agent", "service"):
        owner = _owner(config, store, args.owner)
        ttl = parse_duration(args.ttl)
        return _issue(store, args.command, owner, args.name, ttl, args.roles, ident)
    if args.command == "credentials":
        return _list_credentials(store, orphaned=args.orphaned, as_json=args.json)
    if args.users_command == "add":
        human = store.add_human(args.subject, args.email, args.roles, source="cli")
        print(f"{human.subject}: {human.status}, roles {','.join(human.roles) or '-'}")
        return 0
    if args.users_command == "list":
        return _list_users(store, as_json=args.json)
    if args.users_command == "restore":
        return _restore(store, args.who, args.reason)
    return _revoke(store, args.who, args.reason)


def _restore(store: StateStore, who: str, reason: str) -> int:
    """Suspended -> active, with their agents; a revocation is permanent and is refused."""
    human = store.human(who)
    if human is None:
        raise _Refused(f"unknown human {who!r}")
    if human.revoked:
        raise _Refused(f"{human.subject} is revoked ({human.reason}); a revocation is permanent")
    if human.active:
        print(f"{human.subject} is active; nothing to restore", file=sys.stderr)
        return 0
    event = identity_event(
        "user.restored", _actor(), time.time(), subject=human.subject, email=human.email,
        reason=reason, suspended_for=human.reason, source="cli",
    )  # fmt: skip
    if not store.restore_human(human.subject, event):
        raise _Refused(f"{human.subject} changed meanwhile; see 'wardgate users list'")
    print(f"restored {human.subject}: their credentials and their agents' work again",
          file=sys.stderr)  # fmt: skip
    return 0


def _revoke(store: StateStore, who: str, reason: str) -> int:
    human = store.human(who)
    if human is None:
        # Someone who signed in only with provider tokens, or never yet: revoke them ahead, so
        # that no sign-in as them (and no credential for them) succeeds from now on.
        email = who if "@" in who else None
        human = store.add_human(who, email, source="cli")
        print(f"{who} was not registered; registered as revoked", file=sys.stderr)
    event = identity_event(
        "user.revoked", _actor(), time.time(), subject=human.subject, email=human.email,
        reason=reason, source="cli",
    )  # fmt: skip
    store.revoke_human(human.subject, reason, event)
    print(f"revoked {human.subject}: their credentials and live sessions end", file=sys.stderr)
    return 0


def _issue(
    store: StateStore,
    kind: Kind,
    owner: Human,
    name: str | None,
    ttl: float,
    roles: tuple[str, ...] | None,
    ident: Any,
) -> int:
    check_request(
        kind, name, ttl, max_ttl=ident.credential_max_ttl, service_max_ttl=ident.service_max_ttl
    )
    event = identity_event("credential.created", _actor(), time.time())
    issued = issue(store, kind, name or owner.subject, owner, ttl, event, roles=roles)
    record = issued.record
    expires = dt.datetime.fromtimestamp(record.expires, dt.UTC).isoformat(timespec="seconds")
    acting = f" acting for {owner.subject}" if kind != "human" else ""
    print(f"{record.subject}{acting}; expires {expires}; id {record.id}", file=sys.stderr)
    print(issued.secret)
    return 0


def _list_credentials(store: StateStore, *, orphaned: bool, as_json: bool) -> int:
    humans = {h.subject: h for h in store.humans()}
    now = time.time()
    rows = []
    for record in store.credentials():
        owner = humans.get(record.owner)
        row = describe(record, owner)
        row["orphaned"] = owner is None or owner.revoked
        row["expired"] = record.expires <= now
        if orphaned and not row["orphaned"]:
            continue
        rows.append(row)
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        state = (
            "orphaned" if r["orphaned"] else "expired" if r["expired"]
            else "suspended" if r["owner_status"] == "suspended" else "valid"
        )  # fmt: skip
        print(f"{r['id']}  {r['kind']:<7} {r['subject']:<24} owner {r['owner']}"
              f" ({r['owner_status']})  {state}")  # fmt: skip
    return 0


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds")


def _list_users(store: StateStore, *, as_json: bool) -> int:
    humans = store.humans()
    if as_json:
        print(json.dumps([h.__dict__ for h in humans], indent=2, default=list))
        return 0
    for h in humans:
        since = h.suspended_at if h.suspended else h.revoked_at
        when = f" since {_iso(since)}" if since else ""
        why = f"  {h.reason}{when}" if h.reason or when else ""
        print(f"{h.subject:<24} {h.status:<9} roles {','.join(h.roles) or '-'}{why}")
    return 0

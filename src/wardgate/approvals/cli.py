"""``wardgate approvals list|approve|deny``.

A signed-in approver (``wardgate login``) acts through the gateway's API, which checks their
token and roles. On the gateway host an administrator may instead name the approver with
``--as NAME`` (a registered human, whose roles the state store holds): the store is written
directly and the audit records ``NAME`` as the approver and the administrator as the actor.
Exit status: 0 done, 1 refused (not an approver, self-approval, not pending), 2 usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from wardgate.approvals.store import Approval, ApprovalError, ApprovalStore
from wardgate.config import ConfigError, config_path, load
from wardgate.identity.login import LoginError, call, gateway_error
from wardgate.identity.login import load as load_session
from wardgate.identity.state import StateError, StateStore


def add_parsers(sub: Any) -> None:
    group = sub.add_parser("approvals", help="list, approve and deny held statements")
    actions = group.add_subparsers(dest="approvals_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="pending requests (all with --all)")
    listing.add_argument("--all", action="store_true")
    listing.add_argument("--json", action="store_true")
    for name in ("approve", "deny"):
        vote = actions.add_parser(name, help=f"{name} a request")
        vote.add_argument("id")
        vote.add_argument("--reason", required=True, help="why (recorded in the audit)")
    for parser in actions.choices.values():
        parser.add_argument("-c", "--config", default=None, help="configuration (with --as)")
        parser.add_argument(
            "--as", dest="approver", default=None,
            help="as an administrator on the gateway host: the approver",
        )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    try:
        if args.approver is None:
            return _through_api(args)
        return _direct(args)
    except (ConfigError, StateError, LoginError) as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return exc.status if isinstance(exc, LoginError) else 2
    except ApprovalError as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 1


def _direct(args: argparse.Namespace) -> int:
    config = load(config_path(args.config))
    state_path = config.identity.state
    if state_path is None:
        raise ConfigError("identity.state is not configured: approvals live in the state store")
    state = StateStore(state_path)
    try:
        human = state.human(args.approver)
    finally:
        state.close()
    if human is None or not human.active:
        raise ApprovalError(f"{args.approver!r} is not an active registered human")
    store = ApprovalStore(state_path)
    try:
        if args.approvals_command == "list":
            _print(store.listing(pending_only=not args.all), as_json=args.json)
            return 0
        vote = store.approve if args.approvals_command == "approve" else store.deny
        done = vote(args.id, human.subject, human.roles, args.reason)
    finally:
        store.close()
    _say(done)
    return 0


def _through_api(args: argparse.Namespace) -> int:
    session = load_session()
    if args.approvals_command == "list":
        response = call(session, "GET", "/api/v1/approvals" + ("?all=1" if args.all else ""))
        if response.status_code != 200:
            raise ApprovalError(f"the gateway refused: {gateway_error(response)}")
        items = response.json()
        if args.json:
            print(json.dumps(items, indent=2))
        else:
            for item in items:
                print(_line(item))
        return 0
    path = f"/api/v1/approvals/{args.id}/{args.approvals_command}"
    response = call(session, "POST", path, {"reason": args.reason})
    if response.status_code != 200:
        raise ApprovalError(f"the gateway refused: {gateway_error(response)}")
    print(f"{args.id}: {response.json()['status']}", file=sys.stderr)
    return 0


def _line(a: dict[str, Any]) -> str:
    created = dt.datetime.fromtimestamp(a["created"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    chain = f" for {','.join(a['on_behalf'])}" if a["on_behalf"] else ""
    votes = sum(1 for v in a["votes"] if v["approve"])
    return (
        f"{a['id']}  {a['status']:<9} {created}  {a['requester']}{chain} on {a['target']}: "
        f"{a['why']} ({votes}/{a['needed']} approvals)\n    {a['statement'][:200]}"
    )


def _print(items: list[Approval], *, as_json: bool) -> None:
    described = [a.describe() for a in items]
    if as_json:
        print(json.dumps(described, indent=2))
        return
    for item in described:
        print(_line(item))


def _say(approval: Approval) -> None:
    print(f"{approval.id}: {approval.status}", file=sys.stderr)

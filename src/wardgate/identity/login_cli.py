"""The signed-in human's side of the command line: ``wardgate login``, ``logout``, and
``credential`` / ``agent create`` / ``service create`` without ``--user`` / ``--owner``, which
ask the gateway's API as that human instead of writing the state store as an administrator.

Secrets (credentials) go to stdout, everything else to stderr. Exit status: 0 done, 1 refused
(by the provider or the gateway), 2 a usage problem or no sign-in.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from wardgate.identity.login import (
    Login,
    LoginError,
    call,
    gateway_error,
    load,
    save,
    session_path,
)

GATEWAY_ENV = "WARDGATE_GATEWAY"


def add_parsers(sub: Any) -> None:
    login = sub.add_parser("login", help="sign in at the identity provider for a gateway")
    login.add_argument("--gateway", default=None, help=f"the API's URL (or ${GATEWAY_ENV})")
    login.add_argument("--ca", default=None, help="CA file that signed the gateway's certificate")
    login.add_argument("--device", action="store_true", help="device code flow (no browser here)")
    login.add_argument("--no-browser", action="store_true", help="only print the address")
    login.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (300)")
    sub.add_parser("logout", help="forget this machine's sign-in")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _gateway(args: argparse.Namespace) -> tuple[str, str | None]:
    if args.gateway or os.environ.get(GATEWAY_ENV):
        return args.gateway or os.environ[GATEWAY_ENV], args.ca
    try:
        previous = load()
    except LoginError as exc:
        raise LoginError(f"which gateway? pass --gateway URL or set {GATEWAY_ENV}", 2) from exc
    return previous.gateway, args.ca or previous.ca


def login(args: argparse.Namespace) -> int:
    gateway, ca = _gateway(args)
    flow = Login(gateway, ca, say)
    try:
        if args.device:
            tokens = flow.device_flow(args.timeout)
        else:
            tokens = flow.code_flow(not args.no_browser, args.timeout)
        session = flow.register(tokens)
    finally:
        flow.close()
    path = save(session)
    check = (
        "the gateway re-validates you with the provider"
        if session.revalidation
        else "no refresh token: the gateway cannot re-validate you with the provider"
    )
    say(f"signed in as {session.subject} at {session.gateway} ({check}); saved to {path}")
    return 0


def logout() -> int:
    path = session_path()
    path.unlink(missing_ok=True)
    say(f"signed out (removed {path})")
    return 0


def create(kind: str, name: str | None, ttl: str | None, roles: tuple[str, ...] | None) -> int:
    """A credential from the gateway for the signed-in human (``human``) or one acting for them."""
    session = load()
    body: dict[str, Any] = {"kind": kind}
    if name is not None:
        body["name"] = name
    if ttl is not None:
        body["ttl"] = ttl
    if roles is not None:
        body["roles"] = list(roles)
    response = call(session, "POST", "/api/v1/credentials", body)
    if response.status_code != 201:
        say(f"wardgate: the gateway refused: {gateway_error(response)}")
        return 1
    issued = response.json()
    acting = f" acting for {', '.join(issued['on_behalf_of'])}" if issued["on_behalf_of"] else ""
    say(f"{issued['subject']}{acting}; connect as user {issued['user']!r}; "
        f"expires {issued['expires']}; id {issued['id']}")  # fmt: skip
    print(issued["credential"])
    return 0


def run(args: argparse.Namespace, kind: str | None = None) -> int:
    try:
        if args.command == "login":
            return login(args)
        if args.command == "logout":
            return logout()
        assert kind is not None
        try:
            return create(kind, getattr(args, "name", None), args.ttl, getattr(args, "roles", None))
        except LoginError as exc:
            if exc.status == 2:  # not signed in: an administrator may have meant the other way
                flag = "--user" if kind == "human" else "--owner"
                raise LoginError(f"{exc}; or, as an administrator, pass {flag}", 2) from exc
            raise
    except LoginError as exc:
        say(f"wardgate: {exc}")
        return exc.status

"""Gateway answers turned into text an assistant can act on."""

from __future__ import annotations

import psycopg


class Refusal(Exception):
    """The gateway, or the path to it, said no. The message is for the assistant."""


def explain_sql(exc: psycopg.Error, user: str) -> Refusal:
    diag = exc.diag
    message = diag.message_primary or str(exc).strip() or type(exc).__name__
    state = exc.sqlstate or diag.sqlstate
    if state == "28P01" or "password authentication failed" in message:
        # The gateway's 28P01 is deliberately generic: say the likely causes.
        return Refusal(
            f"the gateway refused the agent credential for user {user!r} (28P01: {message}). "
            "The credential is wrong or expired, or it or its owner was revoked. Ask the owner "
            "for a new one (`wardgate agent create --name <agent>`)."
        )
    if state == "57P01":
        return Refusal(
            f"the gateway ended the session (57P01: {message}). A new call signs in again, "
            "which fails if access was revoked."
        )
    if state == "42501":
        return Refusal(f"refused by the gateway (42501): {message}")
    if state is None and isinstance(exc, psycopg.OperationalError):
        return Refusal(f"no answer from the gateway's PostgreSQL listener: {message}")
    return Refusal(f"{state or 'error'}: {message}")

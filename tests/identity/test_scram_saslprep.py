"""Passwords are prepared as PostgreSQL prepares them (SASLprep), so a verifier made here for a
non-ASCII password equals the one PostgreSQL stores for it, salt and iterations alike."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from wardgate.demo.postgres import LocalPostgres
from wardgate.identity.scram import ScramClient, ScramServer, Verifier

# Each changes under SASLprep: a soft hyphen maps to nothing, a Roman numeral and a ligature
# are normalised (NFKC), a no-break space becomes a space.
PASSWORDS = ["I\u00adX", "\u2168-secret", "\ufb01sh", "p\u00e4ss\u00a0w\u00f6rd"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_the_verifier_equals_postgresqls(pg_server: LocalPostgres, password: str) -> None:
    role = "wardgate_saslprep"
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        try:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(password)
                )
            )
            found = conn.execute(
                "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)
            ).fetchone()
        finally:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    assert found is not None
    stored = Verifier.parse(found[0])
    made = Verifier.from_password(password, stored.salt, stored.iterations)
    assert made == stored
    naive = Verifier.from_password(password.encode().decode("latin-1"), stored.salt)
    assert naive != stored  # the check can fail: other bytes, other keys


@pytest.mark.parametrize("password", PASSWORDS)
def test_client_and_server_agree(password: str) -> None:
    client, server = ScramClient(password), ScramServer(Verifier.from_password(password))
    final = server.final(client.final(server.first(client.first())))
    client.verify(final)

"""Least privilege upstream: the login a target is reached with must not own the server.

The trust boundary (docs/policy.md) refuses procedural code, server files and programs to every
role that is not an administrator; a superuser login, or one holding the roles that read and
write server files or run programs, would make any gap in that refusal a shell on the database
host. So the gateway checks each PostgreSQL target's login through a connection of its own, at
start-up and in ``wardgate check``, and refuses a login that is a superuser, holds (directly or
through other roles) ``pg_execute_server_program``, ``pg_read_server_files`` or
``pg_write_server_files``, or, before PostgreSQL 16, has CREATEROLE (which could grant itself
those roles) -- unless the target sets ``allow_superuser: true``.

A target that cannot be reached is reported, not refused: its sessions fail on their own, and
the check runs again at the next start.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterable
from dataclasses import dataclass

from wardgate.config import ConfigError, Target

RISKY_ROLES = ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files")

_QUERY = """
SELECT r.rolsuper, r.rolcreaterole, current_setting('server_version_num')::int,
       ARRAY(SELECT g FROM unnest(%s::text[]) AS g
             WHERE pg_has_role(r.oid, g, 'MEMBER'))
  FROM pg_roles r WHERE r.rolname = current_user
"""


@dataclass(frozen=True, slots=True)
class LoginPrivileges:
    user: str
    superuser: bool
    createrole: bool
    version: int  # server_version_num
    risky: tuple[str, ...]  # the RISKY_ROLES the login is a member of

    def problems(self) -> list[str]:
        if self.superuser:
            return ["is a superuser"]
        out = [f"is a member of {role}" for role in self.risky]
        if self.createrole and self.version < 160000:
            out.append("has CREATEROLE, with which it could grant itself any of those roles")
        return out


class UnsafeUpstream(ConfigError):
    """A target's login has more privilege than the gateway accepts."""


def inspect(target: Target) -> LoginPrivileges:
    """The privileges of ``target``'s login; raises ``psycopg.Error`` or ``OSError``."""
    import psycopg

    from wardgate.masking.catalogs import conninfo

    params = {**conninfo(target), "application_name": "wardgate-check"}
    with psycopg.connect(**params, autocommit=True) as conn:
        row = conn.execute(_QUERY, (list(RISKY_ROLES),)).fetchone()
    if row is None:
        raise OSError(f"the login {target.user!r} is not in pg_roles")
    superuser, createrole, version, risky = row
    return LoginPrivileges(target.user, bool(superuser), bool(createrole), int(version),
                           tuple(risky))  # fmt: skip


def verdict(target: Target) -> tuple[str | None, str | None]:
    """(why the target's login is refused, why it could not be checked); both None if fine."""
    import psycopg

    if target.allow_superuser:
        return None, None  # accepted as configured: not even looked at
    try:
        privileges = inspect(target)
    except (psycopg.Error, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"target {target.name!r}: cannot check its login's privileges: {first}"
    problems = privileges.problems()
    if not problems:
        return None, None
    return (
        f"target {target.name!r}: its login {target.user!r} {' and '.join(problems)}; the "
        "gateway reaches targets with least privilege (no superuser, no "
        f"{', '.join(RISKY_ROLES)}): use another login, or set allow_superuser: true on the "
        "target to accept this",
        None,
    )


def check_targets(targets: Iterable[Target]) -> tuple[list[str], list[str]]:
    """(refusals, warnings) over the PostgreSQL targets, checked in parallel."""
    postgres = [t for t in targets if t.kind == "postgres"]
    if not postgres:
        return [], []
    with concurrent.futures.ThreadPoolExecutor(min(8, len(postgres))) as pool:
        found = list(pool.map(verdict, postgres))
    return [r for r, _ in found if r], [w for _, w in found if w]

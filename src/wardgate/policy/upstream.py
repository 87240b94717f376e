"""Least privilege upstream: the login a target is reached with must not own the server.

The trust boundary (docs/policy.md) refuses procedural code, server files and programs to every
role that is not an administrator; a superuser login, or one holding the roles that read and
write server files or run programs, would make any gap in that refusal a shell on the database
host. So the gateway checks each PostgreSQL target's login through a connection of its own, at
start-up and in ``wardgate check``, and refuses a login that is a superuser, holds (directly or
through other roles) ``pg_execute_server_program``, ``pg_read_server_files`` or
``pg_write_server_files``, or, before PostgreSQL 16, has CREATEROLE (which could grant itself
those roles) -- unless the target sets ``allow_superuser: true``.

A target that cannot be reached at start-up does not stop the gateway (its sessions fail on
their own), but it is not trusted either: `UpstreamGuard` keeps it pending, the policy refuses
its statements, and the first statement after it comes back starts the check again in the
background (at most every `RECHECK_SECONDS`); once verified, it is served. A login found
privileged then is refused until the gateway restarts, and logged as an error.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from wardgate.config import ConfigError, Target

log = logging.getLogger(__name__)

RECHECK_SECONDS = 5.0
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
    found = _verdicts(targets)
    return [r for _, r, _ in found if r], [w for _, _, w in found if w]


def _verdicts(targets: Iterable[Target]) -> list[tuple[str, str | None, str | None]]:
    """(name, refusal, warning) of each PostgreSQL target."""
    postgres = [t for t in targets if t.kind == "postgres"]
    if not postgres:
        return []
    with concurrent.futures.ThreadPoolExecutor(min(8, len(postgres))) as pool:
        found = list(pool.map(verdict, postgres))
    return [(t.name, r, w) for t, (r, w) in zip(postgres, found, strict=True)]


class UpstreamGuard:
    """Which PostgreSQL targets' logins are verified; the policy asks `problem` per statement."""

    def __init__(self, targets: Iterable[Target]) -> None:
        self._targets = {t.name: t for t in targets if t.kind == "postgres"}
        self._pending = {n for n, t in self._targets.items() if not t.allow_superuser}
        self._refused: dict[str, str] = {}
        self._lock = threading.Lock()
        self._checking = False
        self._last = 0.0

    def check(self) -> tuple[list[str], list[str]]:
        """Check the pending targets (blocking): (refusals, warnings), as `check_targets`."""
        with self._lock:
            pending = [self._targets[n] for n in sorted(self._pending)]
        found = _verdicts(pending)
        with self._lock:
            for name, refusal, warning in found:
                if refusal is not None:
                    self._refused[name] = refusal
                if warning is None:
                    self._pending.discard(name)
            self._last = time.monotonic()
        return [r for _, r, _ in found if r], [w for _, _, w in found if w]

    def problem(self, target: str) -> str | None:
        """Why statements to ``target`` are refused now, or None."""
        refused = self._refused.get(target)
        if refused is not None:
            return refused
        if target not in self._pending:
            return None
        self._recheck()
        return (
            f"the gateway has not yet verified that target {target!r} is reached with least "
            "privilege (it could not connect to check); try again in a moment"
        )

    def _recheck(self) -> None:
        with self._lock:
            if self._checking or time.monotonic() - self._last < RECHECK_SECONDS:
                return
            self._checking = True

        def run() -> None:
            try:
                refused, _ = self.check()
                for reason in refused:
                    log.error("%s", reason)
            finally:
                with self._lock:
                    self._checking = False

        threading.Thread(target=run, name="wardgate-upstream-check", daemon=True).start()

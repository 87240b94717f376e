"""The catalogs of the targets that hold labelled PHI, loaded by the gateway itself.

Lineage needs to know every table, view and column of the target. The gateway reads them with
its own credentials (the target's ``user``), at start and every ``masking.catalog_refresh``
seconds, and soon after a session runs DDL. Until a target's catalog has loaded once, statements
to it are refused (fail closed); a reload that fails keeps the previous catalog, whose unknown
tables then make unknown (masked) columns.

With the catalog, the values the target stores in its labelled name, address, MRN, member id,
e-mail, phone and account columns are read too: the detectors then find them in the target's
free text (``detectors.known``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from psycopg import sql

from wardgate.config import Target
from wardgate.masking.detectors.known import ENTITIES, KnownValues
from wardgate.masking.entities import Entity
from wardgate.masking.views import Labels
from wardgate.sql.catalog import Catalog, load_catalog

MAX_KNOWN = 500_000  # distinct values read per column

log = logging.getLogger(__name__)


def conninfo(target: Target) -> dict[str, Any]:
    params: dict[str, Any] = {
        "host": target.host,
        "port": target.port,
        "dbname": target.database,
        "user": target.user,
        "connect_timeout": max(1, int(target.connect_timeout)),
        "sslmode": target.tls,
        "application_name": "wardgate-catalog",
    }
    if target.password is not None:
        params["password"] = target.password.get_secret_value()
    if target.ca is not None:
        params["sslrootcert"] = str(target.ca)
    return params


class Catalogs:
    def __init__(
        self, targets: Iterable[Target], refresh: float, labels: dict[str, Labels] | None = None
    ) -> None:
        self.targets = {t.name: t for t in targets}
        self.labels = labels or {}
        self.known = {name: KnownValues() for name in self.targets}
        self.refresh = refresh
        self._catalogs: dict[str, Catalog] = {}
        self._loaded_at: dict[str, float] = {}
        self._stale: set[str] = set()
        # when a session last changed each target's schema, and when the last load that
        # succeeded began: the catalog is current when it began after the change
        self._changed_at: dict[str, float] = {}
        self._began_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self.errors: dict[str, str] = {}

    def get(self, target: str) -> Catalog | None:
        return self._catalogs.get(target)

    def stale(self, target: str) -> None:
        """A session changed the schema: reload soon."""
        with self._lock:
            self._stale.add(target)
            self._changed_at[target] = time.monotonic()

    def current(self, target: str) -> bool:
        """No session changed the target's schema since the loaded catalog was read."""
        with self._lock:
            changed = self._changed_at.get(target)
            began = self._began_at.get(target)
        return began is not None and (changed is None or began > changed)

    def due(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        with self._lock:
            stale, self._stale = self._stale, set()
        return [
            name
            for name in self.targets
            if name in stale
            or name not in self._catalogs
            or now - self._loaded_at.get(name, 0.0) >= self.refresh
        ]

    def load(self, name: str) -> bool:
        """Blocking (a connection to the target): run it off the event loop."""
        import psycopg

        target = self.targets[name]
        began = time.monotonic()
        try:
            with psycopg.connect(**conninfo(target), autocommit=False) as conn:
                catalog = load_catalog(conn)
                values = self._values(conn, name, catalog)
        except (psycopg.Error, OSError) as exc:
            self.errors[name] = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            self._loaded_at[name] = time.monotonic() - self.refresh + 5.0  # retry in 5 s
            log.error("masking: cannot read the catalog of target %s: %s", name, self.errors[name])
            return False
        # The known values first: what is scanned with a catalog never predates it (the
        # masking addon keeps column names' scans per catalog).
        self.known[name].replace(values)
        # Then the catalog, then when its reading began: a look-up trusts a catalog begun after
        # the last DDL it knows of, so the time must never be newer than the catalog published.
        self._catalogs[name] = catalog
        with self._lock:
            self._began_at[name] = began
        self._loaded_at[name] = time.monotonic()
        self.errors.pop(name, None)
        log.info("masking: catalog of target %s: %d relations", name, len(catalog.relations))
        return True

    def _values(self, conn: Any, target: str, catalog: Catalog) -> dict[Entity, list[str]]:
        labels = self.labels.get(target)
        found: dict[Entity, list[str]] = {}
        if labels is None:
            return found
        wanted = {e.value: e for e in ENTITIES}
        for column, label in labels.columns.items():
            relation = catalog.relation(column.schema, column.table)
            entity = wanted.get(label)
            if entity is None or relation is None or not relation.column(column.column):
                continue
            query = sql.SQL("SELECT DISTINCT {}::text FROM {}.{} WHERE {} IS NOT NULL LIMIT {}")
            ident = sql.Identifier(column.column)
            rows = conn.execute(
                query.format(
                    ident, sql.Identifier(column.schema), sql.Identifier(column.table), ident,
                    sql.Literal(MAX_KNOWN),
                )
            ).fetchall()  # fmt: skip
            found.setdefault(entity, []).extend(str(r[0]) for r in rows)
        return found

    def load_due(self) -> None:
        for name in self.due():
            self.load(name)

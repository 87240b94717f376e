"""Scratch databases on the test PostgreSQL: made for a test or a module, dropped after it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.seed import create_database_if_missing


@contextmanager
def temporary_database(pg: LocalPostgres, prefix: str = "wardgate_test") -> Iterator[str]:
    """The name of a new, empty database on ``pg``; dropped (sessions and all) on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = pg.dsn("postgres")
    create_database_if_missing(admin, name)
    try:
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))

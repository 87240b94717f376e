"""The version matrix runs where it says it does."""

from __future__ import annotations

import os

import psycopg

from wardgate.demo.postgres import LocalPostgres


def test_the_server_is_the_requested_version(pg_server: LocalPostgres) -> None:
    with psycopg.connect(pg_server.dsn("postgres")) as conn:
        version = conn.info.server_version
    major = {"13": 13, "18": 18, "embedded": 18}.get(os.environ.get("WARDGATE_TEST_POSTGRES", ""))
    if major is None:  # the running server or the wheel's: any supported version
        assert version >= 130000
    else:
        assert version // 10000 == major, f"asked for PostgreSQL {major}, got {version}"

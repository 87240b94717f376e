"""Bad input from clients and failing targets: each ends in a clear PostgreSQL error (or a clean
close), is audited, and leaves every other session alone."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.gateway_harness import RunningGateway, build_config, running
from tests.protocols.postgres.conftest import target_entry
from tests.protocols.postgres.raw import (
    GSSENC_REQUEST,
    SSL_REQUEST,
    Message,
    Raw,
    auth_code,
    connect,
    connect_tls,
    fields,
    login,
    message,
    query,
    scram_login,
    startup,
    wait_for_event,
)
from wardgate.config import Target
from wardgate.demo.postgres import LocalPostgres


@contextmanager
def undisturbed(gw: RunningGateway) -> Iterator[None]:
    """A session open across the block, still on the same server backend after it."""
    with psycopg.connect(gw.dsn(), autocommit=True) as conn:
        before = conn.execute("SELECT pg_backend_pid()").fetchone()
        yield
        assert conn.execute("SELECT pg_backend_pid()").fetchone() == before


def only_fatal(messages: list[Message]) -> dict[str, str]:
    """The single FATAL error the gateway sent before closing."""
    assert [kind for kind, _ in messages][-1:] == ["E"], messages
    error = fields(messages[-1][1])
    assert error["S"] == "FATAL" and error["V"] == "FATAL"
    return error


def refused(gw: RunningGateway, conn: Raw, sqlstate: str) -> dict[str, Any]:
    event = wait_for_event(gw, type="session.refused", session__client_addr=conn.addr)
    assert event["outcome"] == "failure"
    assert event["sqlstate"] == sqlstate
    assert event["reason"]
    return event


# ---- before authentication ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "sqlstate", "text"),
    [
        (b"GET / HTTP/1.1\r\nHost: db\r\n\r\n", "08P01", "invalid length of startup packet"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40), "08P01", "invalid length"),
        (struct.pack("!ii", 8, 12345678), "08P01", "terminator"),
        (startup({"database": "test"}), "28000", "no PostgreSQL user name"),
        (startup({"user": "alice"}, protocol=2 << 16), "0A000", "unsupported frontend protocol"),
        (startup({"user": "al\xefce"})[:-3] + b"\xff\xfe\x00\x00", "22021", "UTF-8"),
    ],
    ids=["http", "tls-without-sslrequest", "unknown-code", "no-user", "protocol-2", "not-utf8"],
)
def test_garbage_first_packet(
    gateway: RunningGateway, data: bytes, sqlstate: str, text: str
) -> None:
    with undisturbed(gateway), connect(gateway) as conn:
        conn.send(data)
        error = only_fatal(conn.rest())
        assert error["C"] == sqlstate and text in error["M"]
        assert text in refused(gateway, conn, sqlstate)["reason"]


def test_truncated_startup_is_closed_and_audited(gateway: RunningGateway) -> None:
    with undisturbed(gateway):
        conn = connect(gateway)
        addr = conn.addr
        packet = startup({"user": "alice", "database": "test"})
        conn.send(packet[: len(packet) // 2])
        conn.sock.shutdown(socket.SHUT_WR)
        assert conn.rest() == []  # nothing to say to a client that is gone
        conn.close()
        event = wait_for_event(gateway, type="session.refused", session__client_addr=addr)
        assert event["sqlstate"] == "08006" and "closed" in event["reason"]


def test_two_gigabyte_startup_length_is_refused_at_once(gateway: RunningGateway) -> None:
    with undisturbed(gateway), connect(gateway) as conn:
        started = time.monotonic()
        conn.send(struct.pack("!ii", 0x7FFFFFFF, 3 << 16))
        error = only_fatal(conn.rest())
        assert time.monotonic() - started < 1.5  # well before the 2 s start-up timeout
        assert error["C"] == "08P01" and "2147483647" in error["M"]
        refused(gateway, conn, "08P01")


def test_two_gigabyte_message_during_authentication(gateway: RunningGateway) -> None:
    with undisturbed(gateway), connect_tls(gateway) as conn:
        conn.send(startup({"user": "alice", "database": "test"}))
        first = conn.message()
        assert first is not None and auth_code(first) == 10
        started = time.monotonic()
        conn.send(b"p\x7f\xff\xff\xff")
        error = only_fatal(conn.rest())
        assert time.monotonic() - started < 1.5
        assert error["C"] == "54000" and "more than the limit" in error["M"]
        refused(gateway, conn, "54000")


def test_stall_in_the_startup_packet_times_out(gateway: RunningGateway) -> None:
    with undisturbed(gateway), connect(gateway) as conn:
        started = time.monotonic()
        conn.send(startup({"user": "alice", "database": "test"})[:10])
        error = only_fatal(conn.rest())
        elapsed = time.monotonic() - started
        assert 1.5 < elapsed < 5
        assert error["C"] == "08006" and "in time" in error["M"]
        assert refused(gateway, conn, "08006")["reason"] == "start-up timed out"


def test_stall_before_the_tls_handshake_times_out(gateway: RunningGateway) -> None:
    with undisturbed(gateway), connect(gateway) as conn:
        started = time.monotonic()
        conn.send(SSL_REQUEST)
        assert conn.byte() == b"S"
        # No ClientHello follows: the gateway gives up and closes; there is no channel to
        # carry an error message on.
        assert conn.byte() == b""
        assert 1.5 < time.monotonic() - started < 5
        assert refused(gateway, conn, "08006")["reason"] == "start-up timed out"


def test_stall_in_the_middle_of_authentication_times_out(gateway: RunningGateway) -> None:
    with undisturbed(gateway), connect_tls(gateway) as conn:
        started = time.monotonic()
        conn.send(startup({"user": "alice", "database": "test"}))
        first = conn.message()
        assert first is not None and auth_code(first) == 10
        conn.send(message("p", b"SCRAM-SHA-256\x00")[:-3])  # a message cut short, then silence
        error = only_fatal(conn.rest())
        assert 1.5 < time.monotonic() - started < 5
        assert error["C"] == "08006"
        refused(gateway, conn, "08006")


def test_plaintext_startup_when_tls_is_required(gateway: RunningGateway) -> None:
    with undisturbed(gateway), connect(gateway) as conn:
        conn.send(startup({"user": "alice", "database": "test"}))
        error = only_fatal(conn.rest())
        assert error["C"] == "28000"
        assert error["M"] == "wardgate accepts only encrypted connections"
        assert "sslmode" in error["H"]
        assert refused(gateway, conn, "28000")["reason"] == "client did not request TLS"


def test_libpq_with_sslmode_disable_sees_the_hint(gateway: RunningGateway) -> None:
    with pytest.raises(psycopg.OperationalError) as excinfo:
        psycopg.connect(gateway.dsn(sslmode="disable"))
    assert "wardgate accepts only encrypted connections" in str(excinfo.value)
    assert "sslmode=verify-full" in str(excinfo.value)


def test_gssenc_request_is_declined_and_tls_follows(gateway: RunningGateway) -> None:
    with undisturbed(gateway), connect(gateway) as conn:
        conn.send(GSSENC_REQUEST)
        assert conn.byte() == b"N"
        conn.tls(gateway)
        got = scram_login(conn, "alice", gateway.password["alice"])
        assert got[-1] == ("Z", b"I")
        conn.send(query("SELECT 'after gssenc'"))
        answer = conn.until_ready()
        rows = [body for kind, body in answer if kind == "D"]
        assert rows == [struct.pack("!hi", 1, 12) + b"after gssenc"]


def test_bytes_after_ssl_request_are_refused(gateway: RunningGateway) -> None:
    """CVE-2021-23214: bytes queued behind SSLRequest could be injected by anyone on the path."""
    with undisturbed(gateway), connect(gateway) as conn:
        conn.send(SSL_REQUEST + query("SELECT 'injected'"))
        assert conn.buf == b""
        error = only_fatal(conn.rest())  # no 'S': the gateway answers in plaintext and closes
        assert error["C"] == "08P01" and "unencrypted data after SSL request" in error["M"]
        assert "unencrypted data" in refused(gateway, conn, "08P01")["reason"]


def test_replication_connection_is_refused(gateway: RunningGateway) -> None:
    with undisturbed(gateway), connect_tls(gateway) as conn:
        conn.send(startup({"user": "alice", "database": "test", "replication": "database"}))
        error = only_fatal(conn.rest())  # refused before any authentication request
        assert error["C"] == "28000" and "replication" in error["M"]
        refused(gateway, conn, "28000")
    with pytest.raises(psycopg.OperationalError, match="replication connections are not"):
        psycopg.connect(gateway.dsn(replication="database"))


# ---- authentication -----------------------------------------------------------------------------


def failed_login(gw: RunningGateway, user: str, password: str) -> tuple[list[Message], str]:
    with connect_tls(gw) as conn:
        return scram_login(conn, user, password), conn.addr


def test_wrong_password_and_unknown_user_look_the_same(gateway: RunningGateway) -> None:
    with undisturbed(gateway):
        wrong, wrong_addr = failed_login(gateway, "alice", "not-alices-password")
        unknown, unknown_addr = failed_login(gateway, "mallory", "whatever")
    for got, user in ((wrong, "alice"), (unknown, "mallory")):
        # The full exchange runs for both: SASL, SASLContinue, then the FATAL.
        assert [auth_code(m) for m in got[:2]] == [10, 11]
        error = only_fatal(got[2:])
        assert error["C"] == "28P01"
        assert error["M"] == f'password authentication failed for user "{user}"'
    assert set(fields(wrong[-1][1])) == set(fields(unknown[-1][1]))
    for addr in (wrong_addr, unknown_addr):
        event = refused_at(gateway, addr)
        assert event["sqlstate"] == "28P01" and event["who"]["verified"] is False
    assert "unknown user" in refused_at(gateway, unknown_addr)["reason"]
    assert "unknown user" not in refused_at(gateway, wrong_addr)["reason"]
    with pytest.raises(psycopg.OperationalError, match='authentication failed for user "alice"'):
        psycopg.connect(gateway.dsn(password="wrong"))
    with pytest.raises(psycopg.OperationalError, match='authentication failed for user "eve"'):
        psycopg.connect(gateway.dsn(user="eve", password="wrong"))


def refused_at(gw: RunningGateway, addr: str) -> dict[str, Any]:
    return wait_for_event(gw, type="session.refused", session__client_addr=addr)


def server_first(gw: RunningGateway, user: str) -> dict[str, str]:
    """The attributes of the gateway's SCRAM server-first message for ``user``."""
    with connect_tls(gw) as conn:
        got = scram_login(conn, user, "not-the-password")
    text = got[1][1][4:].decode()
    return dict(part.split("=", 1) for part in text.split(","))


def test_unknown_user_salt_does_not_reveal_that_the_user_is_unknown(
    gateway: RunningGateway,
) -> None:
    # A known user's salt is the same at every attempt; so must an unknown user's be, and two
    # unknown users must not share one, or comparing salts tells which names exist.
    alice = [server_first(gateway, "alice")["s"] for _ in range(2)]
    mallory = [server_first(gateway, "mallory")["s"] for _ in range(2)]
    trudy = server_first(gateway, "trudy")["s"]
    assert alice[0] == alice[1]
    assert mallory[0] == mallory[1]
    assert len({alice[0], mallory[0], trudy}) == 3
    assert server_first(gateway, "mallory")["i"] == server_first(gateway, "alice")["i"]


def test_unknown_database_after_authentication(gateway: RunningGateway) -> None:
    with undisturbed(gateway), connect_tls(gateway) as conn:
        got = scram_login(conn, "alice", gateway.password["alice"], database="nope")
        codes = [auth_code(m) for m in got if m[0] == "R"]
        assert codes == [10, 11, 12, 0]  # authenticated first: no database list for strangers
        error = only_fatal(got)
        assert error["C"] == "3D000" and error["M"] == 'database "nope" does not exist'
        event = refused(gateway, conn, "3D000")
        assert event["who"]["verified"] is True and event["who"]["subject"] == "alice"


# ---- after authentication -----------------------------------------------------------------------


def backend_gone(pg: LocalPostgres, pid: int, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    with psycopg.connect(pg.dsn("postgres"), autocommit=True) as admin:
        while time.monotonic() < deadline:
            found = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
            if found.fetchone() == (0,):
                return True
            time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    ("data", "sqlstate", "text"),
    [
        (message("!", b""), "08P01", "invalid frontend message type"),
        (b"Q\x7f\xff\xff\xff", "54000", "more than the limit"),
        (b"d\x7f\xff\xff\xff", "54000", "more than the limit"),
        (message("Q", b"SELECT 1"), "08P01", "without terminator"),
        (message("E", b"\x00"), "08P01", "too short"),
    ],
    ids=["garbage-type", "2gb-query", "2gb-copydata", "unterminated-query", "short-execute"],
)
def test_bad_message_after_authentication_ends_the_session(
    gateway: RunningGateway, pg_server: LocalPostgres, data: bytes, sqlstate: str, text: str
) -> None:
    with undisturbed(gateway), login(gateway) as conn:
        conn.send(query("SELECT pg_backend_pid()"))
        answer = conn.until_ready()
        [row] = [body for kind, body in answer if kind == "D"]
        backend = int(row[6:])
        conn.send(data)
        error = only_fatal(conn.rest())
        assert error["C"] == sqlstate and text in error["M"]
        event = wait_for_event(gateway, type="session.end", session__client_addr=conn.addr)
        assert event["reason"].startswith("protocol violation: ") and text in event["reason"]
        assert backend_gone(pg_server, backend)  # the target's backend does not linger


# ---- targets that fail --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, so no one else takes it, not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def failing_targets(
    tmp_path_factory: pytest.TempPathFactory,
    pki_dir: Path,
    pg_server: LocalPostgres,
    target_db: str,
    closed_port: int,
) -> Iterator[RunningGateway]:
    """A gateway with a working target ``test``, one that is down and one that refuses us."""
    tmp = tmp_path_factory.mktemp("gw-failing")
    config = build_config(tmp, pki_dir, target_entry(pg_server, target_db))
    down = Target.model_validate(
        {**target_entry(pg_server, target_db, "down"), "port": closed_port, "connect_timeout": 3}
    )
    missing = Target.model_validate(target_entry(pg_server, "no_such_database_here", "missing"))
    config = config.model_copy(update={"targets": (*config.targets, down, missing)})
    yield from running(config, pki_dir / "ca.pem")


def test_upstream_down(failing_targets: RunningGateway, closed_port: int) -> None:
    gw = failing_targets
    with undisturbed(gw), connect_tls(gw) as conn:
        started = time.monotonic()
        got = scram_login(conn, "alice", gw.password["alice"], database="down")
        assert time.monotonic() - started < 2.5  # refused at once, no waiting for the timeout
        error = only_fatal(got)
        assert error["C"] == "08001" and error["M"] == 'could not connect to target "down"'
        event = refused(gw, conn, "08001")
        assert event["reason"].startswith(f"target down (127.0.0.1:{closed_port}) unreachable")
        assert event["session"]["target"] == "down"
        assert str(closed_port) not in error["M"]  # where targets live is not the client's business
    with pytest.raises(psycopg.OperationalError, match='could not connect to target "down"'):
        psycopg.connect(gw.dsn(dbname="down"))


def test_upstream_refuses_the_login(failing_targets: RunningGateway) -> None:
    gw = failing_targets
    with undisturbed(gw), connect_tls(gw) as conn:
        got = scram_login(conn, "alice", gw.password["alice"], database="missing")
        error = only_fatal(got)
        assert error["C"] == "08001"
        assert error["M"] == 'target "missing" refused the connection'
        event = refused(gw, conn, "08001")
        assert event["reason"].startswith("target missing: 3D000 ")
        assert "no_such_database_here" in event["reason"]
        assert "no_such_database_here" not in error["M"]
    with pytest.raises(psycopg.OperationalError, match='target "missing" refused the connection'):
        psycopg.connect(gw.dsn(dbname="missing"))

"""Recording through a real gateway with psycopg, over the demo schema with masking labels.

What the recording holds is compared with what the client received, byte for byte (psycopg's
``pgresult`` gives the raw values, text or binary); the CLI (a subprocess, as an administrator
runs it) verifies, replays, deletes and kills.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.databases import temporary_database
from tests.gateway_harness import RunningGateway, build_config, running
from tests.masking.test_masking_gateway import EVASIONS, Seeded, demo_masking
from tests.protocols.postgres.conftest import target_entry
from tests.protocols.postgres.raw import wait_for_event
from wardgate.demo.postgres import LocalPostgres
from wardgate.demo.seed import seed
from wardgate.recording.addon import locations
from wardgate.recording.keys import FileKeyProvider
from wardgate.recording.reader import records, verify
from wardgate.recording.replay import value_text

PATIENTS = 30
Rows = list[list[bytes | None]]


@pytest.fixture(scope="module")
def database(pg_server: LocalPostgres) -> Iterator[str]:
    with temporary_database(pg_server, "wardgate_rec") as name:
        seed(pg_server.dsn(name), patients=PATIENTS)
        yield name


@pytest.fixture(scope="module")
def seeded(pg_server: LocalPostgres, database: str) -> Seeded:
    return Seeded.load(pg_server.dsn(database))


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, pg_server: LocalPostgres, database: str
) -> Iterator[RunningGateway]:
    def recorded(raw: dict[str, Any]) -> None:
        demo_masking(raw)
        raw["recording"] = {"enabled": True}
        raw["identity"] = {"state": "state.db", "watch_interval": 0.5}

    pki = tmp_path_factory.mktemp("pki")
    config = build_config(
        tmp_path_factory.mktemp("rec"), pki, target_entry(pg_server, database), edit=recorded
    )
    yield from running(config, pki / "ca.pem")


def cli(gw: RunningGateway, *args: str) -> subprocess.CompletedProcess[str]:
    state = gw.gateway.config.identity.state
    assert state is not None
    env = {**os.environ, "WARDGATE_CONFIG": str(state.parent / "wardgate.yaml")}
    return subprocess.run(
        [sys.executable, "-m", "wardgate", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


def keys(gw: RunningGateway) -> FileKeyProvider:
    return FileKeyProvider(locations(gw.gateway.config)[1])


def raw_rows(cur: psycopg.Cursor[Any]) -> Rows:
    """The values as the client received them."""
    result = cur.pgresult
    assert result is not None
    return [[result.get_value(r, c) for c in range(result.nfields)] for r in range(result.ntuples)]


def recorded(gw: RunningGateway, tag: str) -> tuple[dict[str, Any], Path]:
    """The session-end audit event of the session named ``tag``, and its recording."""
    ended = wait_for_event(gw, type="session.end", session__application=tag)
    return ended, Path(ended["recording"]["path"])


def results(states: list[dict[str, Any]]) -> dict[str, Rows]:
    """Rows by statement text."""
    text = {s["seq"]: s["text"] for s in states if s["type"] == "request"}
    out: dict[str, Rows] = {}
    for s in states:
        if s["type"] == "row":
            out.setdefault(text[s["seq"]], []).append(s["values"])
    return out


STATEMENTS = [
    "SELECT * FROM patients ORDER BY id",
    "SELECT id, ssn, mrn, phone FROM patients WHERE id < 10 ORDER BY id",
    "SELECT first_name, email FROM patients ORDER BY id",
    # thousands of rows over many reads, recorded a read's worth at a time
    "SELECT p.*, g FROM patients p, generate_series(1, 300) AS g ORDER BY g, p.id",
]


def test_recording_holds_what_the_client_saw(gateway: RunningGateway) -> None:
    tag = "rec-saw"
    saw: dict[str, Rows] = {}
    with psycopg.connect(gateway.dsn("alice", application_name=tag), autocommit=True) as conn:
        for text in STATEMENTS:
            cur = conn.execute(text)
            saw[text] = raw_rows(cur)
        binary = conn.cursor(binary=True)
        binary.execute(
            "SELECT id, ssn, date_of_birth FROM patients WHERE id <= %s ORDER BY id", (5,)
        )
        saw["binary"] = raw_rows(binary)
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM no_such_table")
    ended, path = recorded(gateway, tag)
    states = list(records(path, keys(gateway)))

    header = states[0]
    assert header["type"] == "header" and header["session"]["application"] == tag
    assert header["who"]["subject"] == "alice" and header["who"]["on_behalf_of"] == []
    assert header["session"]["client_tls"].startswith("TLS")
    requests = [s["text"] for s in states if s["type"] == "request"]
    assert requests[: len(STATEMENTS)] == STATEMENTS and "SELECT * FROM no_such_table" in requests
    got = results(states)
    for text in STATEMENTS:
        assert got[text] == saw[text], text
    binary_text = next(t for t in got if "date_of_birth" in t)
    assert got[binary_text] == saw["binary"]
    columns = [s for s in states if s["type"] == "columns" and s["seq"] > 0]
    assert any(all(c["binary"] for c in s["columns"]) for s in columns)
    assert any(s["type"] == "diagnostic" and s["fields"].get("C") == "42P01" for s in states)
    ends = [s for s in states if s["type"] == "result_end"]
    assert [e["rows"] for e in ends[: len(STATEMENTS)]] == [len(saw[t]) for t in STATEMENTS]
    assert ends[-1]["outcome"] == "error" and ends[-1]["error"]["sqlstate"] == "42P01"
    assert states[-1]["type"] == "session_end" and states[-1]["reason"] == "client disconnected"

    # it verifies against the hash in its session-end audit event
    assert verify(path, keys(gateway)).sha256 == ended["recording"]["sha256"]
    done = cli(gateway, "sessions", "verify", ended["session"]["id"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert ended["recording"]["sha256"] in done.stdout

    # replay (JSON export) gives back what the client saw
    replayed = cli(gateway, "replay", ended["session"]["id"], "--format", "json")
    assert replayed.returncode == 0, replayed.stderr
    lines = [json.loads(line) for line in replayed.stdout.splitlines()]
    texts = {e["seq"]: e["text"] for e in lines if e["type"] == "request"}
    first = [e["values"] for e in lines if e["type"] == "row" and texts[e["seq"]] == STATEMENTS[0]]
    assert first == [[value_text(v, False) for v in row] for row in saw[STATEMENTS[0]]]
    shown = cli(gateway, "replay", ended["session"]["id"])
    assert shown.returncode == 0 and STATEMENTS[0] in shown.stdout
    assert "client disconnected" in shown.stdout
    csv = cli(gateway, "replay", ended["session"]["id"], "--format", "csv", "--speed", "0")
    assert csv.returncode == 0 and csv.stdout.startswith("type,seq,time,detail")

    listed = cli(gateway, "sessions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    mine = next(r for r in json.loads(listed.stdout) if r["id"] == ended["session"]["id"])
    assert mine["who"] == "alice" and mine["ended"] == "client disconnected"


def test_tampered_recording_fails_verification(gateway: RunningGateway) -> None:
    tag = "rec-tamper"
    with psycopg.connect(gateway.dsn("bob", application_name=tag), autocommit=True) as conn:
        conn.execute("SELECT repeat('x', 1000) FROM generate_series(1, 300)").fetchall()
    ended, path = recorded(gateway, tag)
    original = path.read_bytes()
    copies = path.parent / "tampered"
    copies.mkdir(exist_ok=True)
    cases = {
        "byte": original[:5000] + bytes([original[5000] ^ 1]) + original[5001:],
        "truncated": original[:-100],
        "dropped": _drop_chunk(original, 1),
    }
    for name, data in cases.items():
        copy = copies / f"{name}.wgrec"
        copy.write_bytes(data)
        assert not verify(copy, keys(gateway)).ok, name
        done = cli(gateway, "sessions", "verify", str(copy))
        assert done.returncode == 1 and "FAILED" in done.stdout, name
    assert verify(path, keys(gateway)).sha256 == ended["recording"]["sha256"]


def _drop_chunk(data: bytes, index: int) -> bytes:
    pos = 6 + 2 + 16
    pos += 1 + data[pos]
    for _ in range(index):
        pos += 4 + int.from_bytes(data[pos : pos + 4], "big")
    length = 4 + int.from_bytes(data[pos : pos + 4], "big")
    return data[:pos] + data[pos + length :]


def test_no_raw_phi_in_the_engineers_recording(gateway: RunningGateway, seeded: Seeded) -> None:
    tag = "rec-phi"
    with psycopg.connect(gateway.dsn("alice", application_name=tag), autocommit=True) as conn:
        for text in EVASIONS:
            with contextlib.suppress(psycopg.Error):
                conn.execute(text).fetchall()
        with conn.cursor(binary=True) as cur:
            cur.execute("SELECT ssn, mrn, email, phone FROM patients")
            cur.fetchall()
        with contextlib.suppress(psycopg.Error):
            conn.execute("INSERT INTO patients (mrn) SELECT mrn FROM patients LIMIT 1")
    _, path = recorded(gateway, tag)
    states = list(records(path, keys(gateway)))
    assert sum(1 for s in states if s["type"] == "row") > len(EVASIONS)
    plain = "\n".join(
        json.dumps(
            {
                k: [None if v is None else v.decode("utf-8", "replace") for v in val]
                if k == "values"
                else val
                for k, val in s.items()
            }
        )
        for s in states
    )
    # statements are recorded as sent; the values PHI columns returned are what must not leak
    results_only = "\n".join(line for line in plain.splitlines() if '"type": "request"' not in line)
    assert seeded.leaks(results_only) == []
    ciphertext = path.read_bytes()
    for value in (*seeded.ssns, *seeded.mrns, *seeded.phones, *seeded.emails):
        assert value.encode() not in ciphertext


def test_kill_ends_a_live_session_with_a_clear_message(gateway: RunningGateway) -> None:
    tag = "rec-kill"
    conn = psycopg.connect(gateway.dsn("bob", application_name=tag), autocommit=True)
    assert conn.execute("SELECT 1").fetchone() == (1,)
    start = wait_for_event(gateway, type="session.start", session__application=tag)
    session_id = start["session"]["id"]
    asked = time.monotonic()
    done = cli(gateway, "sessions", "kill", session_id, "--reason", "incident 42")
    assert done.returncode == 0, done.stderr
    actor = f"admin:{getpass.getuser()}"
    with pytest.raises(psycopg.OperationalError) as excinfo:
        while time.monotonic() - asked < 5:
            conn.execute("SELECT 1")
            time.sleep(0.1)
    assert time.monotonic() - asked < 5
    message = str(excinfo.value)
    assert f"terminating connection: ended by an administrator ({actor})" in message
    assert excinfo.value.sqlstate == "57P01"
    conn.close()
    requested = wait_for_event(gateway, type="session.kill_requested", session__id=session_id)
    assert requested["who"]["claimed_user"] == actor and requested["reason"] == "incident 42"
    terminated = wait_for_event(gateway, type="session.terminated", session__id=session_id)
    assert terminated["by"] == actor and terminated["who"]["subject"] == "bob"
    _ended, path = recorded(gateway, tag)
    states = list(records(path, keys(gateway)))
    assert states[-1]["reason"].startswith(f"ended by an administrator ({actor})")
    # nobody answers for a session that is not live
    missing = cli(gateway, "sessions", "kill", "no-such-session", "--wait", "1")
    assert missing.returncode == 1


def test_delete_is_an_audited_act(gateway: RunningGateway) -> None:
    tag = "rec-delete"
    with psycopg.connect(gateway.dsn("bob", application_name=tag)) as conn:
        conn.execute("SELECT 1")
    ended, path = recorded(gateway, tag)
    refused = cli(gateway, "sessions", "delete", ended["session"]["id"])
    assert refused.returncode == 2 and path.exists()  # --reason is required
    done = cli(gateway, "sessions", "delete", ended["session"]["id"], "--reason", "legal hold end")
    assert done.returncode == 0, done.stderr
    assert not path.exists()
    event = wait_for_event(gateway, type="recording.deleted", recording__id=ended["session"]["id"])
    assert event["reason"] == "legal hold end"
    assert event["recording"]["sha256"] == ended["recording"]["sha256"]
    purge = cli(gateway, "sessions", "purge", "--dry-run")
    assert purge.returncode == 0 and "would delete" not in purge.stdout


def test_kill_ends_a_live_psql_session(gateway: RunningGateway) -> None:
    """The same with the psql binary, waiting in a long statement when the kill comes."""
    from wardgate.demo.postgres import pg_bin

    tag = "rec-kill-psql"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGAPPNAME"] = tag
    psql = subprocess.Popen(
        [pg_bin("psql"), gateway.dsn("bob"), "-X", "-At", "-c", "SELECT pg_sleep(30)"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        start = wait_for_event(gateway, timeout=15, type="session.start", session__application=tag)
        asked = time.monotonic()
        done = cli(gateway, "sessions", "kill", start["session"]["id"], "--reason", "incident 43")
        assert done.returncode == 0, done.stderr
        _out, err = psql.communicate(timeout=10)
        assert time.monotonic() - asked < 5
    finally:
        if psql.poll() is None:
            psql.kill()
            psql.communicate()
    assert psql.returncode != 0
    assert "terminating connection: ended by an administrator" in err, err

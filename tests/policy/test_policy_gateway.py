"""Each rule type through a real gateway with psycopg (and, where a client library would hide
what matters, a raw socket): deny with a reason, allow, row caps in both protocols, the
protections, and failing closed."""

from __future__ import annotations

import struct
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.gateway_harness import RunningGateway
from tests.policy.conftest import BIG, CAP, PHI_CAP
from tests.protocols.postgres.raw import extended, fields, login, message, query, wait_for_event

SYNC = message("S")


def connect(gw: RunningGateway, user: str, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(gw.dsn(user), autocommit=kwargs.pop("autocommit", True), **kwargs)


def denial(gw: RunningGateway, user: str, statement: str) -> str:
    """The message of the 42501 the statement gets."""
    with connect(gw, user) as conn, pytest.raises(errors.InsufficientPrivilege) as caught:
        conn.execute(statement)
    assert caught.value.diag.message_hint
    return caught.value.diag.message_primary or ""


def test_deny_shows_the_rules_reason(gateway: RunningGateway) -> None:
    assert denial(gateway, "alice", "INSERT INTO scratch VALUES (1)") == (
        "wardgate: engineers have read-only access"
    )
    assert "read-only" in denial(gateway, "alice", "CREATE TABLE t_alice (a int)")
    assert "read-only" in denial(gateway, "alice", "GRANT SELECT ON big TO PUBLIC")
    assert "secrets table is off limits" in denial(gateway, "bob", "SELECT * FROM secrets")
    event = wait_for_event(gateway, statement="SELECT * FROM secrets")
    assert (event["decision"], event["outcome"]) == ("deny", "denied")
    assert event["reason"] == "the secrets table is off limits"


def test_allow(gateway: RunningGateway) -> None:
    with connect(gateway, "bob") as conn:
        conn.execute("INSERT INTO scratch VALUES (1)")  # the default: allow
    with connect(gateway, "alice") as conn:
        rows = conn.execute("SELECT label FROM big WHERE id = 7").fetchall()
    assert rows == [("row 7",)]


def test_a_write_hidden_after_a_read_is_still_a_write(gateway: RunningGateway) -> None:
    assert "read-only" in denial(gateway, "alice", "SELECT 1; DELETE FROM scratch")
    assert "read-only" in denial(gateway, "alice", "COMMIT; CREATE TABLE t_hidden (a int)")


@pytest.mark.parametrize("extended_protocol", [False, True], ids=["simple", "extended"])
def test_row_cap_with_psycopg(gateway: RunningGateway, extended_protocol: bool) -> None:
    marker = f"/* cap {extended_protocol} */"
    with connect(gateway, "bob", autocommit=False) as conn:
        cur = conn.cursor()
        with pytest.raises(errors.ProgramLimitExceeded) as caught:
            if extended_protocol:
                cur.execute(f"SELECT * FROM big WHERE %s::int > 0 {marker}", (1,))
            else:
                cur.execute(f"SELECT * FROM big {marker}")
        assert caught.value.diag.message_primary == (
            f"wardgate: row cap of {CAP} reached; {BIG - CAP} more rows withheld"
        )
        # The statement ran; its transaction is still good, as the server says.
        assert conn.info.transaction_status is psycopg.pq.TransactionStatus.INTRANS
        assert conn.execute("SELECT count(*) FROM big").fetchone() == (BIG,)
        conn.commit()
        assert conn.execute("SELECT label FROM big WHERE id = 3").fetchone() == ("row 3",)
    event = wait_for_event(gateway, statement=f"SELECT * FROM big {marker}"
                           if not extended_protocol else
                           f"SELECT * FROM big WHERE $1::int > 0 {marker}")  # fmt: skip
    assert event["cap"] == {"limit": CAP, "withheld": BIG - CAP}
    assert event["rows"] == CAP
    assert event["error"]["sqlstate"] == "54000"


def _count(messages: list[tuple[str, bytes]]) -> tuple[int, list[str]]:
    rows = sum(1 for kind, _ in messages if kind == "D")
    return rows, [kind for kind, _ in messages if kind != "D"]


def test_row_cap_on_the_wire_simple(gateway: RunningGateway) -> None:
    with login(gateway, "bob") as conn:
        conn.send(query("SELECT * FROM big"))
        rows, others = _count(conn.until_ready())
        assert rows == CAP
        assert others == ["T", "E", "Z"]
        conn.send(query("SELECT * FROM big WHERE id = 1"))  # the session goes on
        rows, others = _count(conn.until_ready())
        assert (rows, others) == (1, ["T", "C", "Z"])


def test_row_cap_on_the_wire_extended(gateway: RunningGateway) -> None:
    with login(gateway, "bob") as conn:
        conn.send(extended("SELECT * FROM big") + SYNC)
        got = conn.until_ready()
        rows, others = _count(got)
        assert rows == CAP
        assert others == ["1", "2", "T", "E", "Z"]
        error = fields(next(body for kind, body in got if kind == "E"))
        assert error["C"] == "54000"
        assert got[-1][1] == b"I"
        conn.send(extended("SELECT id FROM big WHERE id = 2") + SYNC)
        rows, others = _count(conn.until_ready())
        assert (rows, others) == (1, ["1", "2", "T", "C", "Z"])


def test_what_follows_a_reached_cap_in_a_batch_never_runs(gateway: RunningGateway) -> None:
    """After the cap's error the client expects the server to skip to Sync; it must."""
    with login(gateway, "bob") as conn:
        conn.send(query("DELETE FROM scratch WHERE id = 42"))
        conn.until_ready()
        conn.send(extended("SELECT * FROM big") + extended("INSERT INTO scratch VALUES (42)")
                  + SYNC)  # fmt: skip
        rows, others = _count(conn.until_ready())
        assert rows == CAP and others == ["1", "2", "T", "E", "Z"]
        conn.send(query("SELECT count(*) FROM scratch WHERE id = 42"))
        got = conn.until_ready()
        assert next(body for kind, body in got if kind == "D").endswith(b"0")
    skipped = wait_for_event(gateway, statement="INSERT INTO scratch VALUES (42)")
    assert skipped["outcome"] == "skipped"


def test_a_cap_not_reached_changes_nothing(gateway: RunningGateway) -> None:
    with login(gateway, "bob") as conn:
        batch = extended("SELECT * FROM big WHERE id > 200") + extended("SELECT 1") + SYNC
        conn.send(batch)
        rows, others = _count(conn.until_ready())
        assert rows == 51
        assert others == ["1", "2", "T", "C", "1", "2", "T", "C", "Z"]
    with connect(gateway, "bob") as conn:
        assert len(conn.execute("SELECT * FROM big LIMIT 150").fetchall()) == 150  # limited


def test_phi_cap_for_engineers(gateway: RunningGateway) -> None:
    with login(gateway, "alice") as conn:
        conn.send(query("SELECT first_name FROM patients"))
        rows, others = _count(conn.until_ready())
        assert rows == PHI_CAP and others == ["T", "E", "Z"]
    with connect(gateway, "bob") as conn:  # the rule is the engineers'
        assert len(conn.execute("SELECT first_name FROM patients").fetchall()) == 30


def test_caps_refuse_what_they_cannot_keep(gateway: RunningGateway) -> None:
    assert "one at a time" in denial(gateway, "bob", "SELECT * FROM big; SELECT 1")
    assert "COPY cannot be row-capped" in denial(gateway, "bob", "COPY big TO STDOUT")
    statement = "COPY (SELECT id FROM big WHERE id = 1) TO STDOUT"
    # The first matching rule wins: the engineers' allow for filtered reads of big.
    with connect(gateway, "alice") as conn, conn.cursor().copy(statement) as copy:
        assert b"".join(bytes(b) for b in copy) == b"1\n"
    assert "engineers do not export" in denial(gateway, "alice", "COPY (SELECT 1) TO STDOUT")


def test_unparsable_fails_closed(gateway: RunningGateway) -> None:
    reason = denial(gateway, "dan", "SELEKT * FROM big")
    assert reason.startswith("wardgate: the statement cannot be parsed")


def test_multi_statement_smuggling_by_an_agent(gateway: RunningGateway) -> None:
    assert "agents cannot run COMMIT" in denial(gateway, "robot", "SELECT 1; COMMIT; SELECT 2")
    assert "agents cannot run CREATE" in denial(gateway, "robot", "SELECT 1; CREATE TABLE x ()")
    assert "agents have read-only access" in denial(gateway, "robot", "DELETE FROM scratch")
    with connect(gateway, "robot") as conn:
        assert conn.execute("SELECT label FROM big WHERE id = 9").fetchone() == ("row 9",)
    with connect(gateway, "bob") as conn:  # a human may
        conn.execute("SELECT 1; COMMIT; SELECT 2")


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT pg_read_file('PG_VERSION')",
        "SELECT * FROM pg_ls_dir('.')",
        "COPY big TO PROGRAM 'cat > /dev/null'",
        "SELECT lo_export(1, '/tmp/wardgate-policy-x')",
    ],
)
def test_dangerous_functions(gateway: RunningGateway, statement: str) -> None:
    for user in ("alice", "bob", "robot"):
        assert "only an administrator role of target" in denial(gateway, user, statement)


def test_admins_may_call_dangerous_functions(gateway: RunningGateway) -> None:
    with connect(gateway, "dan") as conn:
        (version,) = conn.execute("SELECT pg_read_file('PG_VERSION')").fetchone() or ("",)
    assert version  # allowed by policy (and masked, an unknown lineage, for a DBA without raw)
    event = wait_for_event(gateway, statement="SELECT pg_read_file('PG_VERSION')", outcome="ok")
    assert event["decision"] == "allow"
    assert event["reason"].startswith("administrator (dba) override: calls pg_read_file")


def test_function_call_messages_are_refused(gateway: RunningGateway) -> None:
    with login(gateway, "bob") as conn:
        # FunctionCall: oid of int4abs, no argument formats, one argument, text result
        body = struct.pack("!ihhi", 1397, 0, 1, 2) + b"-5" + struct.pack("!h", 0)
        conn.send(message("F", body))
        got = conn.until_ready()
        error = fields(next(body for kind, body in got if kind == "E"))
        assert error["C"] == "42501" and "OID" in error["M"]


def test_an_execute_is_judged_on_the_statement_it_runs(gateway: RunningGateway) -> None:
    """Issue 14: a prepared statement is judged when it is EXECUTEd, on its own text as the
    server holds it: the cap on bulk reads of ``big`` holds for ``EXECUTE w`` too."""
    with connect(gateway, "bob", autocommit=True) as conn:
        conn.execute("PREPARE capped_later AS SELECT * FROM big")
        with pytest.raises(errors.ProgramLimitExceeded) as caught:
            conn.execute("EXECUTE capped_later")
        assert caught.value.diag.message_primary == (
            f"wardgate: row cap of {CAP} reached; {BIG - CAP} more rows withheld"
        )
    event = wait_for_event(gateway, statement="EXECUTE capped_later")
    assert event["cap"] == {"limit": CAP, "withheld": BIG - CAP}

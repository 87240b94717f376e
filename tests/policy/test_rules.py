"""Rules without sockets: matching, first match wins, strictest over statements, the
protections and the caps the addon refuses."""

from __future__ import annotations

from typing import Any

import pytest

from wardgate.config import PolicySettings
from wardgate.core.model import Identity, SessionInfo, Statement, Verdict
from wardgate.masking.views import Labels
from wardgate.policy import PolicyAddon, RuleSet

LABELS = {"clinic": Labels.from_config({"patients.ssn": "SSN"})}


def addon(**policy: Any) -> PolicyAddon:
    return PolicyAddon(RuleSet(PolicySettings.model_validate(policy)), LABELS)


def decide(
    a: PolicyAddon,
    text: str,
    roles: tuple[str, ...] = ("engineer",),
    agent: bool = False,
    target: str = "clinic",
) -> tuple[bool, str, int | None]:
    identity = Identity("someone", roles, ("owner",) if agent else ())
    stmt = Statement(SessionInfo("s", "postgres", "", "", target=target, identity=identity), 1,
                     text)  # fmt: skip
    decision = a.statement(stmt)
    if decision is None:
        return True, "", None
    if decision.verdict is Verdict.APPROVE:  # not refused here: the approvals addon resolves it
        return True, "", None
    # an allow may carry a reason: an administrator's override
    return decision.allowed, decision.reason, decision.row_cap


def test_first_match_wins_then_default() -> None:
    a = addon(default="deny", rules=[
        {"roles": ["engineer"], "kinds": ["read"], "tables": ["patients"], "cap_rows": 5},
        {"roles": ["engineer"], "kinds": ["read"], "action": "allow"},
    ])  # fmt: skip
    assert decide(a, "SELECT * FROM patients") == (True, "", 5)
    assert decide(a, "SELECT 1") == (True, "", None)
    assert decide(a, "DELETE FROM t")[:2] == (False, "no policy rule allows this statement")
    assert decide(a, "SELECT 1", roles=("clinician",))[0] is False


def test_strictest_answer_over_statements() -> None:
    a = addon(rules=[
        {"kinds": ["read"], "action": "allow"},
        {"kinds": ["write"], "action": "deny", "reason": "no writes"},
    ])  # fmt: skip
    assert decide(a, "SELECT 1; DELETE FROM t") == (False, "no writes", None)


@pytest.mark.parametrize(
    ("condition", "matching", "other"),
    [
        ({"phi": True}, "SELECT ssn FROM patients WHERE id = 1", "SELECT 1 FROM encounters"),
        ({"unfiltered": True}, "SELECT * FROM encounters", "SELECT * FROM encounters LIMIT 3"),
        ({"multi_statement": True}, "SELECT 1; SELECT 2", "SELECT 1"),
        ({"kinds": ["copy"]}, "COPY t TO STDOUT", "SELECT * FROM t"),
        ({"tables": ["archive.t"]}, "SELECT * FROM archive.t", "SELECT * FROM other.t"),
        ({"tables": ["t"]}, "SELECT * FROM x.t", "SELECT * FROM u"),
    ],
)
def test_conditions(condition: dict[str, Any], matching: str, other: str) -> None:
    a = addon(rules=[{**condition, "action": "deny", "reason": "matched"}])
    assert decide(a, matching)[:2] == (False, "matched")
    assert decide(a, other)[0] is True


def test_roles_targets_and_agents() -> None:
    a = addon(rules=[
        {"roles": ["engineer"], "targets": ["clinic"], "agents": True, "action": "deny"},
    ])  # fmt: skip
    assert decide(a, "SELECT 1", agent=True)[0] is False
    assert decide(a, "SELECT 1")[0] is True
    assert decide(a, "SELECT 1", agent=True, target="other")[0] is True
    assert decide(a, "SELECT 1", roles=("clinician",), agent=True)[0] is True


def test_protections_and_turning_them_off() -> None:
    on = addon(admin_roles=["dba"])
    assert decide(on, "SELECT pg_read_file('x')")[:2] == (
        False, "calls pg_read_file, which reads or writes the server's files; only an"
        " administrator role of target 'clinic' may run this",
    )  # fmt: skip
    assert decide(on, "SELECT pg_read_file('x')", roles=("dba",))[:2] == (
        True, "administrator (dba) override: calls pg_read_file, which reads or writes the"
        " server's files",
    )  # fmt: skip
    assert "agents cannot run COMMIT" in decide(on, "SELECT 1; COMMIT", agent=True)[1]
    assert decide(on, "SELECT 1; COMMIT")[0] is True
    # Without rules nothing depends on what a plain statement is: the server refuses it.
    assert decide(on, "SELEKT 1")[0] is True
    ruled = addon(rules=[{"kinds": ["write"], "action": "deny"}])
    assert "cannot be parsed" in decide(ruled, "SELEKT 1")[1]
    assert "cannot be parsed" in decide(on, "SELEKT 1; SELECT 2")[1]  # two: it must parse
    off = addon(deny_dangerous=False, deny_smuggled_for_agents=False)
    assert decide(off, "SELECT pg_read_file('x')")[0] is True
    assert decide(off, "SELECT 1; COMMIT", agent=True)[0] is True
    assert "cannot be parsed" in decide(off, "SELEKT pg_read_file('x')")[1]  # never off


def test_caps_that_cannot_be_kept_are_denials() -> None:
    a = addon(rules=[{"cap_rows": 3}])
    assert "one at a time" in decide(a, "SELECT 1; SELECT 2")[1]
    assert "COPY cannot be row-capped" in decide(a, "COPY t TO STDOUT")[1]


@pytest.mark.parametrize(
    "rule",
    [{}, {"action": "cap_rows"}, {"action": "allow", "cap_rows": 3},
     {"action": "allow", "reason": "x"}, {"kinds": ["select"], "action": "allow"}],
)  # fmt: skip
def test_invalid_rules(rule: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PolicySettings.model_validate({"rules": [rule]})

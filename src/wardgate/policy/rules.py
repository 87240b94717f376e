"""Rules: ordered, first match wins, then the default.

A statement string with several statements is decided statement by statement and the strictest
answer wins (a deny over an approval, an approval over a cap, the smaller cap over the larger,
a cap over an allow), so an ``allow`` for reads never lets a write ride along after a SELECT.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from wardgate.config import PolicyRule, PolicySettings
from wardgate.core.model import ApprovalRule, Decision, Verdict

ANY = "*"


@dataclass(frozen=True, slots=True)
class Facts:
    """What a rule can ask about one statement and the identity running it."""

    kinds: frozenset[str]  # the statement kind, and "copy" for a COPY
    tables: frozenset[tuple[str | None, str]]
    phi: bool
    unfiltered: bool
    multi_statement: bool
    dangerous: bool
    resource: str = ""  # HTTP: the FHIR resource type
    operations: frozenset[str] = frozenset()  # HTTP: $export, $everything... in the path
    bulk: bool = False  # HTTP: a FHIR bulk read


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    roles: frozenset[str]
    targets: frozenset[str]
    conditions: PolicyRule
    answer: Decision

    @classmethod
    def from_config(cls, rule: PolicyRule, index: int) -> Rule:
        name = rule.name or f"rule {index + 1}"
        action = Verdict(rule.effective_action)
        reason = rule.reason
        if action is Verdict.DENY and not reason:
            reason = f"the policy does not allow this statement ({name})"
        if action is Verdict.APPROVE and not reason:
            reason = f"this statement needs approval ({name})"
        approval = None
        if action is Verdict.APPROVE:
            approvers = tuple(rule.approvers or ())
            approval = ApprovalRule(name, approvers, rule.min_approvals, rule.window)
        answer = Decision(action, reason, name, rule.cap_rows, approval)
        return cls(name, frozenset(rule.roles), frozenset(rule.targets), rule, answer)

    def applies(self, roles: Iterable[str], target: str, agent: bool) -> bool:
        """Whether the rule is about this identity and target (not yet the statement)."""
        if ANY not in self.targets and target not in self.targets:
            return False
        if ANY not in self.roles and self.roles.isdisjoint(roles):
            return False
        wanted = self.conditions.agents
        return wanted is None or wanted == agent

    def matches(self, facts: Facts) -> bool:
        c = self.conditions
        if c.kinds is not None and facts.kinds.isdisjoint(c.kinds):
            return False
        if c.tables is not None and not any(_names_table(t, facts.tables) for t in c.tables):
            return False
        if c.resources is not None and facts.resource not in c.resources:
            return False
        if c.operations is not None and facts.operations.isdisjoint(c.operations):
            return False
        return all(
            wanted is None or wanted == have
            for wanted, have in (
                (c.phi, facts.phi),
                (c.unfiltered, facts.unfiltered),
                (c.multi_statement, facts.multi_statement),
                (c.dangerous, facts.dangerous),
                (c.bulk, facts.bulk),
            )
        )


def _names_table(name: str, tables: frozenset[tuple[str | None, str]]) -> bool:
    """``patients`` matches patients in any schema; ``archive.patients`` that one only (and a
    statement's unqualified ``patients``, which the search path may resolve to it)."""
    schema, _, table = name.rpartition(".")
    return any(t == table and (not schema or s is None or s == schema) for s, t in tables)


class RuleSet:
    """The configured rules, the default and the protections."""

    def __init__(self, settings: PolicySettings) -> None:
        self.settings = settings
        self.rules = tuple(Rule.from_config(r, i) for i, r in enumerate(settings.rules))
        self.default = Decision(
            Verdict(settings.default),
            "" if settings.default == "allow" else "no policy rule allows this statement",
            "default",
        )
        self.admin_roles = frozenset(settings.admin_roles)

    def decide(
        self, roles: Iterable[str], target: str, agent: bool, statements: Iterable[Facts]
    ) -> Decision:
        """The strictest answer over the statements (allow for none at all)."""
        roles = tuple(roles)
        mine = [r for r in self.rules if r.applies(roles, target, agent)]
        answer: Decision | None = None
        for facts in statements:
            found = next((r.answer for r in mine if r.matches(facts)), self.default)
            answer = found if answer is None else answer.stricter(found)
        return answer or Decision(Verdict.ALLOW, by="no statement")

    def is_admin(self, roles: Iterable[str]) -> bool:
        return not self.admin_roles.isdisjoint(roles)

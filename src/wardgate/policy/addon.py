"""The policy addon: every statement classified, the protections applied, then the rules.

In order, for each Query, Execute and FunctionCall:

0. A statement over ``max_statement_bytes`` (16 MiB) is refused before anything reads it.
1. A statement that does not parse is refused: what cannot be classified cannot be allowed.
2. What the gateway cannot judge (`sql/danger.py`: procedural code, CALL, extensions, foreign
   data, server files and programs, large objects, server-side effects, dangerous settings;
   a FunctionCall message, which names its function by OID only) is refused with SQLSTATE
   42501 but for ``admin_roles`` (``deny_dangerous``). An administrator's dangerous statement
   is allowed with a reason ("administrator (...) override: ..."), which its audit event keeps.
3. An agent's string with transaction control, DDL or DCL after another statement is refused
   (``deny_smuggled_for_agents``): `SELECT 1; COMMIT; CREATE TABLE ...` out of a read-only
   transaction its MCP server opened.
4. The rules, statement by statement, the strictest answer winning; then ``default``.

Without rules (and with the default ``allow``), the answer can only be "deny" for a dangerous
statement or a smuggled one; a statement in which neither can hide (one statement, no word of
`sql/danger.py`'s suspects or of a dangerous family anywhere in its text, no Unicode-escaped
identifier: ``Analysis.plain``, kept with the statement's analysis) is allowed without being
parsed: on the hot path, parsing costs more than relaying.

Every answer is a typed ``Decision`` (allow, deny with a reason, cap N rows, require approval by
rule R); the pipeline combines them, the approvals addon resolves an approval, and the relay keeps
a cap (``Decision.cap``). A cap is refused instead where the relay could not keep it exactly: a
string of several statements, and COPY. The statement is read from its one ``Analysis``; nothing
here parses SQL.
"""

from __future__ import annotations

from wardgate.core.model import ApiCall, Decision, Identity, Statement, Verdict, Via
from wardgate.core.pipeline import Addon
from wardgate.masking.views import Labels
from wardgate.policy.http import http_facts
from wardgate.policy.phi import touched_phi
from wardgate.policy.rules import Facts, RuleSet
from wardgate.policy.upstream import UpstreamGuard
from wardgate.sql.analysis import analyse as default_analyser
from wardgate.sql.classify import Classification, StatementClass
from wardgate.sql.model import AnalysisError


class PolicyAddon(Addon):
    name = "policy"

    def __init__(
        self,
        rules: RuleSet,
        labels: dict[str, Labels] | None = None,
        upstream: UpstreamGuard | None = None,
    ) -> None:
        self.rules = rules
        self.labels = labels or {}
        self.upstream = upstream
        self._needs_parse = bool(rules.rules) or rules.settings.default != "allow"

    def statement(self, stmt: Statement) -> Decision | None:
        identity = stmt.session.identity
        roles = identity.roles if identity is not None else ()
        agent = _is_agent(identity)
        target = stmt.session.target
        settings = self.rules.settings
        admin = self.rules.is_admin(roles)
        limit = settings.max_statement_bytes
        if len(stmt.text) * 4 > limit:  # perhaps over it: refused before anything reads it
            size = len(stmt.text.encode("utf-8", "surrogatepass"))
            if size > limit:
                return _deny(
                    f"the statement is {size} bytes, over the gateway's limit of {limit}"
                    " (policy.max_statement_bytes)"
                )
        if self.upstream is not None:
            unverified = self.upstream.problem(target)
            if unverified is not None:
                return _deny(unverified)
        if stmt.via is Via.FUNCTION_CALL:
            if settings.deny_dangerous and not admin:
                return _deny("a function call message names its function by OID only")
            facts = [Facts(frozenset({"admin"}), frozenset(), False, False, False, True)]
            return self._apply(self.rules.decide(roles, target, agent, facts), 1, False)
        if not self._needs_parse and stmt.analysis.plain:
            return None
        try:
            found = stmt.analysis.classification
        except AnalysisError as exc:
            why = str(exc) or "syntax error"
            return _deny(f"the statement cannot be parsed, so it cannot be checked: {why}")
        named = _named(stmt)
        dangerous = found.dangerous + tuple(d for n in named for d in n.dangerous)
        if settings.deny_dangerous and dangerous and not admin:
            return _deny(
                f"{dangerous[0]}; only an administrator role of target {target!r} may run this"
            )
        if settings.deny_smuggled_for_agents and agent and found.smuggled:
            hidden = found.smuggled[0].text.split(None, 1)[0].upper()
            return _deny(f"agents cannot run {hidden} after another statement in one string")
        labels = self.labels.get(target)
        # An EXECUTE or FETCH is judged on what it runs too: the statement or cursor it names,
        # as the protocol followed it from the server's answers.
        facts = [_facts(s, c, labels) for c in (found, *named) for s in c.statements]
        answer = self.rules.decide(roles, target, agent, facts)
        decision = self._apply(answer, len(found.statements), found.copy)
        if decision is None and dangerous and admin:
            # What only an administrator may run is audited as such (the event's reason).
            held = sorted(self.rules.admin_roles.intersection(roles))
            return Decision(
                Verdict.ALLOW,
                f"administrator ({', '.join(held)}) override: {'; '.join(dangerous)}",
                "policy:admin",
            )
        return decision

    def api_call(self, call: ApiCall) -> Decision | None:
        """The rules by role and target (the API's name), with the call's facts
        (policy/http.py); table and PHI conditions are SQL's and match no call; a row cap has
        no rows to count here."""
        identity = call.session.identity
        roles = identity.roles if identity is not None else ()
        http = http_facts(
            call.method, call.text.partition(" ")[2], call.resource_type,
            self.rules.settings.bulk_count,
        )  # fmt: skip
        answer = self.rules.decide(roles, call.session.target, _is_agent(identity), [http])
        if answer.verdict is Verdict.CAP:
            return None
        return self._apply(answer, 1, False)

    @staticmethod
    def _apply(answer: Decision, statements: int, copy: bool) -> Decision | None:
        if answer.verdict is Verdict.CAP:
            if statements > 1:
                return _deny(
                    f"a row cap applies to this statement ({answer.by}); send the statements"
                    " one at a time", answer.by,
                )  # fmt: skip
            if copy:
                return _deny(
                    f"COPY cannot be row-capped ({answer.by}); use SELECT with a filter or"
                    " a LIMIT", answer.by,
                )  # fmt: skip
        if answer.verdict is Verdict.ALLOW:
            return None
        return answer


def _facts(statement: StatementClass, whole: Classification, labels: Labels | None) -> Facts:
    kinds = {statement.kind.value} | ({"copy"} if statement.copy else set())
    phi = False
    if labels is not None:
        tables, _ = touched_phi((statement,), labels)
        phi = bool(tables)
    return Facts(
        frozenset(kinds), statement.tables, phi, statement.unfiltered, whole.multi_statement,
        bool(statement.dangerous),
    )  # fmt: skip


def _named(stmt: Statement) -> list[Classification]:
    """The classifications of the statements and cursors an EXECUTE or FETCH of ``stmt``
    names (``Statement.contexts``); one we cannot parse is left out (the server parsed it, and
    masking refuses a statement it cannot analyse)."""
    analyse = stmt.analyser or default_analyser
    out = []
    for context in stmt.contexts:
        if context.refers_to is None:
            continue
        try:
            out.append(analyse(context.refers_to).classification)
        except AnalysisError:
            continue  # the server parsed it once; if we cannot, its masking refuses it
    return out


def _is_agent(identity: Identity | None) -> bool:
    return identity is not None and identity.agent


def _deny(reason: str, by: str = "policy") -> Decision:
    return Decision.deny(reason, by)

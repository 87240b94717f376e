"""The approvals addon: an exchange a policy rule sends for approval is held until decided.

The policy answers ``Verdict.APPROVE`` with the rule (approvers, count, window); the pipeline
asks this addon's ``approve`` hook to resolve it. If an approved grant for exactly this requester,
target and statement (its ``digest``: the analysis's for SQL, the method and target as sent for
an API call) exists, the exchange runs with the grant's id on its decision, and the use is audited
(``approval.used``, a single-use grant spent, a windowed one used again); otherwise an approval
request is stored and announced, and the decision is a ``Hold``: the protocol shows the client a
notice with the request id and keeps the exchange back. ``poll`` (every half second; the store is
read off the event loop) resolves each hold: approved (the grant is used now), denied (with the
approver's reason), or no decision within ``approvals.wait`` (the request expires). A client that
disconnects withdraws its request.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from wardgate.approvals.notify import notify
from wardgate.approvals.store import ApprovalError, ApprovalStore
from wardgate.config import Approvals
from wardgate.core.model import Decision, Exchange, Hold, SessionInfo, Verdict
from wardgate.core.pipeline import Addon
from wardgate.sql.model import AnalysisError

log = logging.getLogger(__name__)


@dataclass
class _Waiting:
    hold: Hold
    session: str
    requester: str
    target: str
    digest: str
    deadline: float


class ApprovalAddon(Addon):
    name = "approvals"

    def __init__(self, store: ApprovalStore, settings: Approvals) -> None:
        self.store = store
        self.settings = settings
        self._waiting: dict[str, _Waiting] = {}

    def approve(self, exchange: Exchange, decision: Decision) -> Decision | None:
        why, rule = decision.reason, decision.approval
        info = exchange.session
        identity = info.identity
        if identity is None:
            return _deny("an unverified session cannot ask for approval")
        try:
            digest = exchange.digest
        except AnalysisError as exc:
            return _deny(f"the statement cannot be parsed, so it cannot be approved: {exc}")
        granted = self.store.use_grant(identity.subject, info.target, digest)
        if granted is not None:
            return Decision(Verdict.ALLOW, f"approved ({granted.id})", "approvals",
                            approval_id=granted.id)  # fmt: skip
        approvers = (rule.approvers if rule is not None else ()) or self.settings.approver_roles
        needed = (rule.min_approvals if rule is not None else None) or self.settings.min_approvals
        window = rule.window if rule is not None else None
        approval = self.store.request(
            identity.subject, identity.on_behalf_of, info.target, exchange.text, digest,
            why=why, approvers=approvers, needed=needed,
            window=self.settings.window if window is None else window, ttl=self.settings.ttl,
        )  # fmt: skip
        if self.settings.webhook:
            url = self.settings.webhook
            threading.Thread(target=notify, args=(url, approval), daemon=True).start()
        hold = Hold(
            f"wardgate: {why}. Approval request {approval.id} waits for "
            f"{needed} approver(s) with role {' or '.join(approvers)}: "
            f"wardgate approvals approve {approval.id} --reason '...'. "
            f"Waiting up to {self.settings.wait:g} s."
        )
        self._waiting[approval.id] = _Waiting(
            hold, info.id, identity.subject, info.target, digest,
            time.monotonic() + self.settings.wait,
        )  # fmt: skip
        return Decision(Verdict.HOLD, why, "approvals", approval_id=approval.id, hold=hold)

    def poll(self, now: float | None = None) -> None:
        """``check`` and ``settle`` in one go (blocking: for tests and tools)."""
        self.settle(self.check(now))

    def check(self, now: float | None = None) -> list[tuple[str, Decision]]:
        """The holds whose requests were decided or ran out of time, with their decisions.
        Reads (and for a grant, writes) the store: call it off the event loop."""
        now = time.monotonic() if now is None else now
        decided = []
        for approval_id, waiting in list(self._waiting.items()):
            try:
                decision = self._check(approval_id, waiting, now)
            except ApprovalError as exc:
                log.error("approvals: %s", exc)
                decision = _deny(f"the approval request {approval_id} is unavailable")
            if decision is not None:
                decided.append((approval_id, decision))
        return decided

    def settle(self, decided: list[tuple[str, Decision]]) -> None:
        """Resolve the holds ``check`` found decided. On the event loop."""
        for approval_id, decision in decided:
            waiting = self._waiting.pop(approval_id, None)
            if waiting is not None:
                waiting.hold.resolve(decision)

    def _check(self, approval_id: str, waiting: _Waiting, now: float) -> Decision | None:
        approval = self.store.get(approval_id)
        if approval.status == "approved":
            self.store.use_grant(waiting.requester, waiting.target, waiting.digest)
            return Decision(
                Verdict.ALLOW, f"approved ({approval_id})", "approvals", approval_id=approval_id
            )
        if approval.status == "denied":
            by = approval.votes[-1]["by"] if approval.votes else "an approver"
            return _deny(f"approval request {approval_id} was denied by {by}: {approval.reason}")
        if approval.status != "pending":
            return _deny(f"approval request {approval_id} is {approval.status}")
        if now >= waiting.deadline:
            self.store.withdraw(approval_id, "expired")
            return _deny(
                f"no approval within {self.settings.wait:g} s; request {approval_id} expired"
            )
        return None

    def disconnect(self, session: SessionInfo, reason: str) -> None:
        for approval_id, waiting in list(self._waiting.items()):
            if waiting.session == session.id:
                del self._waiting[approval_id]
                try:
                    self.store.withdraw(approval_id, "the client disconnected")
                except ApprovalError as exc:
                    log.error("approvals: %s", exc)

    def waiting(self) -> list[str]:
        return list(self._waiting)


def _deny(reason: str) -> Decision:
    return Decision(Verdict.DENY, reason, "approvals")

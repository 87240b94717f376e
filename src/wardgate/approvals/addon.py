"""The approvals addon: a statement a policy rule sends for approval is held until decided.

The policy addon marks the request (``Request.approval``: why, and the rule with its approvers,
count and window). Here: if an approved grant for exactly this requester, target and statement
exists, the statement runs (and a single-use grant is spent); otherwise an approval request is
stored and announced, and the decision is a ``Hold``: the relay shows the client a NOTICE with
the request id and how to approve it, and keeps the statement back. ``poll`` (every half second,
on the event loop) resolves each hold: approved (the grant is spent now), denied (with the
approver's reason), or no decision within ``approvals.wait`` (the request expires). A client that
disconnects withdraws its request.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from wardgate.approvals.notify import notify
from wardgate.approvals.store import ApprovalError, ApprovalStore
from wardgate.config import Approvals
from wardgate.core.model import Decision, Hold, Request, SessionInfo, Verdict
from wardgate.core.pipeline import Addon
from wardgate.sql.fingerprint import statement_digest
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

    def request(self, request: Request) -> Decision | None:
        if request.approval is None:
            return None
        why, rule = request.approval
        info = request.session
        identity = info.identity
        if identity is None:
            return _deny("an unverified session cannot ask for approval")
        try:
            # an API call is bound by its method and target as sent; a statement as parsed
            digest = (
                hashlib.sha256(request.text.encode()).hexdigest()
                if request.kind == "http"
                else statement_digest(request.text)
            )
        except AnalysisError as exc:
            return _deny(f"the statement cannot be parsed, so it cannot be approved: {exc}")
        granted = self.store.use_grant(identity.subject, info.target, digest)
        if granted is not None:
            request.approval_id = granted.id
            return None
        approvers = (rule.approvers if rule is not None else None) or self.settings.approver_roles
        needed = (rule.min_approvals if rule is not None else None) or self.settings.min_approvals
        window = rule.window if rule is not None and rule.window is not None else None
        approval = self.store.request(
            identity.subject, identity.on_behalf_of, info.target, request.text, digest,
            why=why, approvers=approvers, needed=needed,
            window=self.settings.window if window is None else window, ttl=self.settings.ttl,
        )  # fmt: skip
        request.approval_id = approval.id
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
        return Decision(Verdict.HOLD, why, "approvals", hold=hold)

    def poll(self, now: float | None = None) -> None:
        """Resolve the holds whose requests were decided or ran out of time. On the loop."""
        now = time.monotonic() if now is None else now
        for approval_id, waiting in list(self._waiting.items()):
            try:
                decision = self._check(approval_id, waiting, now)
            except ApprovalError as exc:
                log.error("approvals: %s", exc)
                decision = _deny(f"the approval request {approval_id} is unavailable")
            if decision is not None:
                del self._waiting[approval_id]
                waiting.hold.resolve(decision)

    def _check(self, approval_id: str, waiting: _Waiting, now: float) -> Decision | None:
        approval = self.store.get(approval_id)
        if approval.status == "approved":
            self.store.use_grant(waiting.requester, waiting.target, waiting.digest)
            return Decision(Verdict.ALLOW, f"approved ({approval_id})", "approvals")
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


__all__ = ["Any", "ApprovalAddon"]

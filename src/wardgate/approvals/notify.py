"""Announcing a new approval request to a chat channel: a Slack-compatible incoming webhook
(``{"text": ...}``, which Mattermost, Rocket.Chat and Teams' Slack-compatible hooks accept too).

Best effort by design: the request is already stored and audited, and approvers also see it in
``wardgate approvals list``; a webhook that fails is logged, never retried into a backlog.
The message carries no statement text, which may hold PHI in its constants: only who, where,
why and the command that approves it.
"""

from __future__ import annotations

import logging

import httpx

from wardgate.approvals.store import Approval

log = logging.getLogger(__name__)


def message(approval: Approval) -> dict[str, str]:
    chain = f" (acting for {', '.join(approval.on_behalf)})" if approval.on_behalf else ""
    return {
        "text": (
            f"wardgate: {approval.requester}{chain} asks to run a statement on "
            f"{approval.target}: {approval.why}. Approvers ({', '.join(approval.approvers)}): "
            f"wardgate approvals approve {approval.id} --reason '...'  or  "
            f"wardgate approvals deny {approval.id} --reason '...'"
        )
    }


def notify(url: str, approval: Approval, timeout: float = 5.0) -> bool:
    """POST the message; False (and a log line) if the hook did not take it. Blocking."""
    try:
        response = httpx.post(url, json=message(approval), timeout=timeout)
    except httpx.HTTPError as exc:
        log.warning("approvals: webhook for %s failed: %s", approval.id, exc)
        return False
    if response.status_code >= 300:
        log.warning("approvals: webhook for %s answered HTTP %d", approval.id,
                    response.status_code)  # fmt: skip
        return False
    return True

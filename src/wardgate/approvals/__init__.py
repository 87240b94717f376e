"""Just-in-time approval of risky statements.

request   a held statement waiting for approvers (``store.ApprovalStore``)
vote      an approver's approve or deny, with a reason; self-approval is refused
grant     an approved request: single-use, or a window of minutes, bound to the requester, the
          target and the statement's digest
notify    a Slack-compatible incoming-webhook message for each new request (``notify``)
"""

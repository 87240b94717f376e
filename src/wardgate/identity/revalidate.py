"""Re-validation against the identity provider: is each signed-in human still allowed?

At ``wardgate login`` the command line hands the gateway the refresh token of the human's
sign-in, and the gateway keeps it (``idp_grant`` in the state store; the command line keeps none).
Every ``revalidate_interval`` the gateway refreshes each grant and calls the provider's userinfo
endpoint with the new access token.

What the answer proves decides what happens (issue 19: treating every refusal as offboarding
turned the gateway into a lock-out tool):

- the provider says the account is gone (``invalid_grant`` or userinfo 401/403 whose description
  says the account or user is disabled, deactivated or deleted; Entra ID's AADSTS50057/50034):
  the human is **revoked**, permanently;
- any other refusal (``invalid_grant`` for an unknown, expired, reused or revoked refresh token,
  userinfo 401/403): the grant is dead but nothing proves the person gone. The human is
  **suspended**: their sessions and their agents' end, sign-ins through the provider are refused
  with a hint to run ``wardgate login``, and that fresh sign-in restores them;
- no answer (network errors, 5xx, ``invalid_client``): nothing changes for ``grace`` seconds
  (``revalidate.degraded`` is audited once, health shows it); a human whose grant still cannot
  be checked after that is suspended, keeping the grant, and restored when the provider answers
  for them again.

The gateway is the grant's only holder. Providers rotate refresh tokens of public clients and
treat a reused one as theft, revoking the whole grant, so a token shared by the command line and
the gateway would soon revoke itself. Humans without a grant (credentials made by an
administrator, sign-ins without ``offline_access``) are reached only by SCIM and by
``wardgate users revoke``.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import httpx

from wardgate.audit.events import identity_event
from wardgate.identity.oidc import OidcVerifier, TokenRejected
from wardgate.identity.state import Grant, StateError, StateStore

log = logging.getLogger(__name__)

SOURCE = "idp"


# An answer that says the account itself is gone, not only the grant.
_GONE = re.compile(
    r"\b(account|user)\b.*\b(disabled|deactivated|deleted|does not exist)\b"
    r"|AADSTS50057|AADSTS50034",
    re.IGNORECASE,
)


class GrantRefused(Exception):
    """The provider says this human's grant is no longer good; ``gone``: and the account is
    disabled or deleted."""

    def __init__(self, reason: str, *, gone: bool = False) -> None:
        super().__init__(reason)
        self.gone = gone


def refused(reason: str, description: str) -> GrantRefused:
    return GrantRefused(reason, gone=bool(_GONE.search(description)))


class ProviderUnreachable(Exception):
    """No answer that says anything about the human."""


@dataclass
class RevalidationRound:
    checked: int = 0
    revoked: int = 0
    suspended: int = 0
    restored: int = 0
    unreachable: int = 0
    # Since when the provider has not answered (None: it answers), and why.
    degraded_since: float | None = None
    degraded_reason: str = ""


class IdpRevalidator:
    def __init__(self, verifier: OidcVerifier, store: StateStore, grace: float = 900.0) -> None:
        self.verifier = verifier
        self.store = store
        self.grace = grace
        self._http = httpx.Client(
            timeout=httpx.Timeout(verifier.settings.http_timeout), follow_redirects=False
        )
        self.last = RevalidationRound()
        # Per human: since when their grant could not be checked (the grace runs from there).
        # In memory: a restarted gateway starts the grace again, erring on the side of access.
        self._unreachable_since: dict[str, float] = {}
        self._degraded_since: float | None = None

    def close(self) -> None:
        self._http.close()

    def adopt(self, subject: str, refresh_token: str) -> None:
        """Take custody of a human's grant: refresh it once (so a bad token is refused now,
        with a clear error) and keep the token the provider returns. Whether userinfo will be
        asked too is decided here, while the human is known to be allowed: many providers take
        only access tokens meant for themselves there, not ones for a resource (the gateway).
        Blocking."""
        grant, access = self._refresh(Grant(subject, refresh_token, userinfo=False))
        userinfo = self.verifier.metadata.userinfo_endpoint
        if userinfo:
            try:
                self._userinfo(userinfo, access, subject)
                grant = Grant(subject, grant.refresh_token, userinfo=True)
            except GrantRefused as exc:
                log.info("identity: userinfo refuses %s's access tokens (%s)", subject, exc)
        self.store.put_grant(grant)

    def run_once(self, now: float | None = None) -> RevalidationRound:
        """Check every grant once. Blocking: run it off the event loop."""
        now = time.time() if now is None else now
        outcome = RevalidationRound()
        unreachable = ""
        grants = self.store.grants()
        held = {g.subject for g in grants}  # forget the outages of grants no longer held
        self._unreachable_since = {k: v for k, v in self._unreachable_since.items() if k in held}
        for grant in grants:
            outcome.checked += 1
            try:
                checked = self._check(grant)
            except GrantRefused as exc:
                self._unreachable_since.pop(grant.subject, None)
                if exc.gone:
                    outcome.revoked += 1
                    self._revoke(grant.subject, str(exc))
                else:
                    outcome.suspended += self._suspend(grant.subject, str(exc), drop=True)
                continue
            except ProviderUnreachable as exc:
                outcome.unreachable += 1
                unreachable = str(exc)
                log.warning("identity: cannot re-validate %s: %s", grant.subject, exc)
                since = self._unreachable_since.setdefault(grant.subject, now)
                if now - since >= self.grace:
                    why = (
                        f"the identity provider could not be reached for {now - since:.0f} s: {exc}"
                    )
                    outcome.suspended += self._suspend(grant.subject, why, drop=False)
                continue
            self._unreachable_since.pop(grant.subject, None)
            if checked != grant:
                self.store.put_grant(checked)
            outcome.restored += self._restore(grant.subject)
        self._degraded(unreachable, now)
        outcome.degraded_since = self._degraded_since
        outcome.degraded_reason = unreachable
        self.last = outcome
        return outcome

    def _degraded(self, reason: str, now: float) -> None:
        """Audit the start and the end of an outage once each (``revalidate.degraded``)."""
        if reason and self._degraded_since is None:
            self._degraded_since = now
            self._queue(identity_event(
                "revalidate.degraded", "idp", now, reason=reason, grace=self.grace,
                suspend_after=now + self.grace, source=SOURCE,
            ))  # fmt: skip
        elif not reason and self._degraded_since is not None:
            self._queue(identity_event(
                "revalidate.recovered", "idp", now, since=self._degraded_since, source=SOURCE,
            ))  # fmt: skip
            self._degraded_since = None

    def _queue(self, event: dict[str, object]) -> None:
        try:
            self.store.queue(event)
        except StateError as exc:
            log.error("identity: cannot queue %s: %s", event["type"], exc)

    def _revoke(self, subject: str, why: str) -> None:
        reason = f"the identity provider says the account is gone: {why}"
        human = self.store.human(subject)
        event = identity_event(
            "user.revoked", "idp", time.time(), subject=subject,
            email=human.email if human else None, reason=reason, source=SOURCE,
        )  # fmt: skip
        log.warning("identity: revoking %s: %s", subject, reason)
        try:
            self.store.revoke_human(subject, reason, event)
            self.store.drop_grant(subject)
        except StateError as exc:
            log.error("identity: cannot revoke %s: %s", subject, exc)

    def _suspend(self, subject: str, why: str, *, drop: bool) -> int:
        """Suspend (1 if it was active); ``drop`` the grant when the provider refused it."""
        reason = f"the identity provider refused re-validation: {why}" if drop else why
        human = self.store.human(subject)
        event = identity_event(
            "user.suspended", "idp", time.time(), subject=subject,
            email=human.email if human else None, reason=reason, source=SOURCE,
            recover="sign in again with `wardgate login`",
        )  # fmt: skip
        try:
            done = self.store.suspend_human(subject, reason, event)
            if drop:
                self.store.drop_grant(subject)
        except StateError as exc:
            log.error("identity: cannot suspend %s: %s", subject, exc)
            return 0
        if done:
            log.warning("identity: suspending %s: %s", subject, reason)
        return int(done)

    def _restore(self, subject: str) -> int:
        """The provider vouches for a suspended human again (their grant was kept through an
        outage): restore them. 1 if they were suspended."""
        human = self.store.human(subject)
        if human is None or not human.suspended:
            return 0
        event = identity_event(
            "user.restored", "idp", time.time(), subject=subject, email=human.email,
            reason="the identity provider answers for them again", suspended_for=human.reason,
            source=SOURCE,
        )  # fmt: skip
        try:
            done = self.store.restore_human(subject, event)
        except StateError as exc:
            log.error("identity: cannot restore %s: %s", subject, exc)
            return 0
        if done:
            log.warning("identity: restored %s: the provider answers for them again", subject)
        return int(done)

    def _check(self, grant: Grant) -> Grant:
        """The grant to keep (the token may have rotated), or an exception saying why not."""
        checked, access = self._refresh(grant)
        endpoint = self.verifier.metadata.userinfo_endpoint
        if grant.userinfo and endpoint:
            self._userinfo(endpoint, access, grant.subject)
        return checked

    def _refresh(self, grant: Grant) -> tuple[Grant, str]:
        """The grant with the rotated token, and a fresh access token."""
        try:
            meta = self.verifier.metadata
        except TokenRejected as exc:
            raise ProviderUnreachable(str(exc)) from exc
        if not meta.token_endpoint:
            raise ProviderUnreachable("the provider's discovery names no token endpoint")
        data = {
            "grant_type": "refresh_token",
            "refresh_token": grant.refresh_token,
            "client_id": self.verifier.settings.client_id,
        }
        tokens = self._post(meta.token_endpoint, data)
        access = tokens.get("access_token")
        if not isinstance(access, str) or not access:
            raise ProviderUnreachable("the refresh answer holds no access token")
        rotated = tokens.get("refresh_token")
        if isinstance(rotated, str) and rotated:
            grant = Grant(grant.subject, rotated, grant.userinfo)
        return grant, access

    def _post(self, url: str, data: dict[str, str]) -> dict[str, object]:
        try:
            response = self._http.post(url, data=data, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(f"token endpoint: {exc}") from exc
        body = _json(response)
        if response.status_code == 200:
            return body
        error = str(body.get("error", ""))
        if response.status_code in (400, 401) and error == "invalid_grant":
            description = str(body.get("error_description", ""))[:200]
            raise refused(f"refresh: invalid_grant {description}".strip(), description)
        raise ProviderUnreachable(f"token endpoint: HTTP {response.status_code} {error}".strip())

    def _userinfo(self, url: str, access_token: str, subject: str) -> None:
        try:
            response = self._http.get(url, headers={"Authorization": f"Bearer {access_token}"})
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(f"userinfo: {exc}") from exc
        if response.status_code in (401, 403):
            body = _json(response)
            description = str(body.get("error_description", ""))[:200]
            if not description:  # RFC 6750 §3: the error may come in WWW-Authenticate only
                description = response.headers.get("www-authenticate", "")[:200]
            raise refused(
                f"userinfo: HTTP {response.status_code} {description}".strip(), description
            )
        if response.status_code != 200:
            raise ProviderUnreachable(f"userinfo: HTTP {response.status_code}")
        sub = _json(response).get("sub")
        if self.verifier.settings.subject_claim == "sub" and sub != subject:
            raise GrantRefused(f"userinfo names subject {sub!r}, not {subject!r}")


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}

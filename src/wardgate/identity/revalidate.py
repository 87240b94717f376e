"""Re-validation against the identity provider: is each signed-in human still allowed?

At ``wardgate login`` the command line hands the gateway the refresh token of the human's
sign-in, and the gateway keeps it (``idp_grant`` in the state store; the command line keeps none).
Every ``revalidate_interval`` the gateway refreshes each grant and calls the provider's userinfo
endpoint with the new access token. A provider that disabled the human answers the refresh with
``invalid_grant`` or userinfo with 401/403: the human is revoked (source ``idp``), which ends
their sessions and their agents' through the revocation watcher.

The gateway is the grant's only holder. Providers rotate refresh tokens of public clients and
treat a reused one as theft, revoking the whole grant, so a token shared by the command line and
the gateway would soon revoke itself.

An unreachable provider, a 5xx or a misconfigured client (``invalid_client``) revokes nobody: it
is logged and counted in ``unreachable``, and the check is retried at the next interval. Humans
without a grant (credentials made by an administrator, sign-ins without ``offline_access``) are
reached only by SCIM and by ``wardgate users revoke``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import httpx

from wardgate.audit.events import identity_event
from wardgate.identity.oidc import OidcVerifier, TokenRejected
from wardgate.identity.state import Grant, StateError, StateStore

log = logging.getLogger(__name__)

SOURCE = "idp"


class GrantRefused(Exception):
    """The provider says this human's grant is no longer good."""


class ProviderUnreachable(Exception):
    """No answer that says anything about the human."""


@dataclass
class Outcome:
    checked: int = 0
    revoked: int = 0
    unreachable: int = 0


class IdpRevalidator:
    def __init__(self, verifier: OidcVerifier, store: StateStore) -> None:
        self.verifier = verifier
        self.store = store
        self._http = httpx.Client(
            timeout=httpx.Timeout(verifier.settings.http_timeout), follow_redirects=False
        )
        self.last = Outcome()

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

    def run_once(self) -> Outcome:
        """Check every grant once. Blocking: run it off the event loop."""
        outcome = Outcome()
        for grant in self.store.grants():
            outcome.checked += 1
            try:
                checked = self._check(grant)
            except GrantRefused as exc:
                outcome.revoked += 1
                self._revoke(grant.subject, str(exc))
                continue
            except ProviderUnreachable as exc:
                outcome.unreachable += 1
                log.warning("identity: cannot re-validate %s: %s", grant.subject, exc)
                continue
            if checked != grant:
                self.store.put_grant(checked)
        self.last = outcome
        return outcome

    def _revoke(self, subject: str, why: str) -> None:
        reason = f"the identity provider refused re-validation: {why}"
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
            raise GrantRefused(f"refresh: invalid_grant {description}".strip())
        raise ProviderUnreachable(f"token endpoint: HTTP {response.status_code} {error}".strip())

    def _userinfo(self, url: str, access_token: str, subject: str) -> None:
        try:
            response = self._http.get(url, headers={"Authorization": f"Bearer {access_token}"})
        except httpx.HTTPError as exc:
            raise ProviderUnreachable(f"userinfo: {exc}") from exc
        if response.status_code in (401, 403):
            raise GrantRefused(f"userinfo: HTTP {response.status_code}")
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

"""Signing in to a wardgate listener with an OpenID token as the password.

The client sends the token as a cleartext password, which is acceptable only inside TLS. Without
TLS the exchange offers SCRAM instead of asking for the password and then refuses: a SCRAM
client-first message carries no secret, so a misconfigured client never puts its token on the
wire in the clear, and the refusal still has a reason the audit can record.

The user name of the start-up must be the token's login claim (``username_claim``, else
``subject_claim``); e-mail addresses are compared without regard to case.
"""

from __future__ import annotations

from wardgate.identity.authenticator import PASSWORD, AuthExchange, AuthStep, RefuseWithoutTls
from wardgate.identity.oidc import OidcVerifier, Reason, TokenRejected

TLS_ONLY = "OIDC tokens are accepted only over TLS"


def failure_text(user: str, exc: TokenRejected) -> str:
    """The refusal as the audit records it: reason, detail, and the unverified claim."""
    text = f"user {user!r}: oidc: {exc.reason}"
    if exc.detail:
        text += f" ({exc.detail})"
    if exc.claimed:
        text += f"; token claims {exc.claimed!r}"
    return text


class _TokenExchange:
    mechanism = PASSWORD

    def __init__(self, user: str, verifier: OidcVerifier) -> None:
        self._user = user
        self._verifier = verifier

    def step(self, data: bytes) -> AuthStep:
        token = data.rstrip(b"\x00")
        try:
            verified = self._verifier.verify(token)
            login_claim = self._verifier.settings.login_claim
            login = str(verified.claims.get(login_claim, ""))
            if not _same_user(self._user, login, email=login_claim == "email"):
                raise TokenRejected(
                    Reason.USER_MISMATCH, f"token is for {login_claim} {login!r}", claimed=login
                )
        except TokenRejected as exc:
            return AuthStep(failure=failure_text(self._user, exc))
        return AuthStep(identity=verified.identity)


def _same_user(user: str, login: str, *, email: bool) -> bool:
    return user.casefold() == login.casefold() if email else user == login


class OidcAuthenticator:
    """An ``Authenticator`` for which the password is an ID or access token of one provider.

    ``step`` blocks while discovery or the JWKS is fetched (first use, key rotation; bounded by
    ``http_timeout``). ``prefetch`` does the first fetch ahead of any client.
    """

    def __init__(self, verifier: OidcVerifier) -> None:
        self.verifier = verifier

    def prefetch(self) -> None:
        """Discover the provider and load its keys now; raises ``TokenRejected`` if unreachable."""
        self.verifier.prefetch()

    def begin(self, user: str, *, tls: bool, mechanism: str) -> AuthExchange:
        if not tls:
            return RefuseWithoutTls(
                failure_text(user, TokenRejected(Reason.TLS_REQUIRED, TLS_ONLY))
            )
        return _TokenExchange(user, self.verifier)

"""Identity as a part of the running gateway: the ``users`` and ``identity`` sections.

It builds the authenticator every listener signs clients in with (static users, gateway
credentials, OIDC tokens, with the revocation check), ends live sessions of revoked humans and
their agents within ``watch_interval`` (and drains the command line's audit outbox), and asks the
identity provider about every human whose grant it holds every ``revalidate_interval``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from wardgate.audit.events import Event
from wardgate.config import Config
from wardgate.identity.authenticator import (
    Authenticator,
    CompositeAuthenticator,
    StaticAuthenticator,
    StaticUser,
)
from wardgate.identity.credential_auth import CredentialAuthenticator
from wardgate.identity.oidc import OidcVerifier
from wardgate.identity.oidc_auth import OidcAuthenticator
from wardgate.identity.revalidate import IdpRevalidator
from wardgate.identity.revocation import LiveSession, RevocationWatcher, sign_in_check
from wardgate.identity.state import StateStore
from wardgate.lifespan import Component

log = logging.getLogger(__name__)


class IdentityComponent(Component):
    name = "identity"

    def __init__(
        self,
        config: Config,
        record: Callable[[list[Event]], None],
        live_sessions: Callable[[], list[LiveSession]],
        authenticator: Authenticator | None = None,
    ) -> None:
        super().__init__()
        self.settings = ident = config.identity
        self.record = record
        self.state = StateStore(ident.state) if ident.state is not None else None
        self.oidc = OidcVerifier(ident.oidc) if ident.oidc is not None else None
        static = StaticAuthenticator(
            [StaticUser(u.name, u.verifier(), u.roles) for u in config.users]
        )
        self.authenticator: Authenticator = authenticator or CompositeAuthenticator(
            static,
            CredentialAuthenticator(self.state) if self.state is not None else None,
            OidcAuthenticator(self.oidc) if self.oidc is not None else None,
            check=self.sign_in_check(),
        )
        self.revocations = (
            RevocationWatcher(self.state, live_sessions, record) if self.state is not None else None
        )
        self.revalidator = (
            IdpRevalidator(self.oidc, self.state, grace=ident.revalidate_grace)
            if self.oidc is not None and self.state is not None
            else None
        )

    def sign_in_check(self) -> Callable[..., str] | None:
        return sign_in_check(self.state) if self.state is not None else None

    async def start(self) -> None:
        if self.revocations is not None:
            self.every(lambda: self.settings.watch_interval, self._watch, blocking=False)
        if self.revalidator is not None:
            self.every(self.settings.revalidate_interval, self.revalidator.run_once, blocking=True)

    async def _watch(self) -> None:
        """Revocations take effect within ``watch_interval`` (and the audit outbox is drained):
        the store is read and written on a worker thread, live sessions ended on the loop."""
        watcher = self.revocations
        assert watcher is not None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, watcher.refresh)
        events = watcher.sweep()
        if events:
            await loop.run_in_executor(None, self.record, events)

    def health(self) -> dict[str, object] | None:
        if self.revalidator is None:
            return None
        last = self.revalidator.last
        return {
            "revalidated": last.checked,
            "idp_unreachable": last.unreachable,
            "degraded_since": last.degraded_since,
            "degraded_reason": last.degraded_reason,
        }

    async def close(self) -> None:
        await super().close()
        if self.state is not None:
            self.state.close()
        if self.revalidator is not None:
            self.revalidator.close()
        if self.oidc is not None:
            self.oidc.close()

"""The gateway's own login to a target: SCRAM-SHA-256, md5, or a password over TLS. Sans-io.

Feed each Authentication message body to ``UpstreamLogin.handle``; it returns the bytes to send
back (or nothing) and raises ``UpstreamAuthError`` with a reason fit for the audit log.
"""

from __future__ import annotations

import hashlib
import struct

from wardgate.identity.scram import MECHANISM, ScramClient, ScramError
from wardgate.protocols.postgres import wire


class UpstreamAuthError(Exception):
    pass


class UpstreamLogin:
    def __init__(self, user: str, password: str | None, *, tls: bool) -> None:
        self.user = user
        self.password = password
        self.tls = tls
        self.authenticated = False
        self._scram: ScramClient | None = None

    def _need_password(self, method: str) -> str:
        if self.password is None:
            raise UpstreamAuthError(f"target asks for {method} but no password is configured")
        return self.password

    def handle(self, body: bytes) -> bytes | None:
        if len(body) < 4:
            raise UpstreamAuthError("malformed authentication request from target")
        code = struct.unpack_from("!i", body)[0]
        data = body[4:]
        if code == wire.AUTH_OK:
            if self._scram is not None:
                raise UpstreamAuthError("target ended SCRAM without proving it knows the password")
            self.authenticated = True
            return None
        if code == wire.AUTH_SASL:
            mechanisms = data.split(b"\x00")
            if MECHANISM.encode() not in mechanisms:
                offered = b", ".join(m for m in mechanisms if m).decode(errors="replace")
                raise UpstreamAuthError(f"target offers no supported SASL mechanism ({offered})")
            self._scram = ScramClient(self._need_password("SCRAM-SHA-256"))
            first = self._scram.first()
            body = wire.cstr(MECHANISM) + struct.pack("!i", len(first)) + first
            return wire.message(wire.F_PASSWORD, body)
        if code == wire.AUTH_SASL_CONTINUE and self._scram is not None:
            try:
                return wire.message(wire.F_PASSWORD, self._scram.final(data))
            except ScramError as exc:
                raise UpstreamAuthError(str(exc)) from exc
        if code == wire.AUTH_SASL_FINAL and self._scram is not None:
            try:
                self._scram.verify(data)
            except ScramError as exc:
                raise UpstreamAuthError(str(exc)) from exc
            self._scram = None
            return None
        if code == wire.AUTH_MD5 and len(data) == 4:
            password = self._need_password("md5")
            inner = hashlib.md5((password + self.user).encode()).hexdigest()
            outer = hashlib.md5(inner.encode() + data).hexdigest()
            return wire.message(wire.F_PASSWORD, wire.cstr("md5" + outer))
        if code == wire.AUTH_CLEARTEXT:
            if not self.tls:
                raise UpstreamAuthError(
                    "target asks for a cleartext password over an unencrypted connection; "
                    "set the target's tls to require or verify-full"
                )
            return wire.message(wire.F_PASSWORD, wire.cstr(self._need_password("a password")))
        raise UpstreamAuthError(f"target asks for an unsupported authentication method ({code})")

"""DEVELOPMENT ONLY: the signing keys and the accounts of the demo's OpenID provider.

The keys are a private JWKS file (mode 0600) in the demo's data directory, so that tokens printed
by one run of the demo stay verifiable after a restart; anyone who can read that file can sign
tokens the demo gateway accepts. The accounts have passwords printed on the terminal. Nothing here
is fit for production.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

ID_TOKEN_ALG = "RS256"
ACCESS_TOKEN_ALG = "ES256"


@dataclass(frozen=True)
class DevUser:
    """An account; ``name`` is also its subject (``sub``)."""

    name: str
    password: str
    display_name: str
    email: str
    groups: tuple[str, ...]

    def claims(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "email_verified": True,
            "name": self.display_name,
            "groups": list(self.groups),
        }


# name -> (display name, groups): the demo's engineer, clinician and compliance officer.
DEMO_ACCOUNTS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "alice": ("Alice Engineer", ("engineering",)),
    "bob": ("Bob Clinician", ("clinicians",)),
    "carol": ("Carol Compliance", ("compliance",)),
}
EMAIL_DOMAIN = "clinic.example"


def demo_users(passwords: Mapping[str, str]) -> list[DevUser]:
    """The three demo accounts with the demo's passwords (``demo-users.json``)."""
    return [
        DevUser(name, passwords[name], display, f"{name}@{EMAIL_DOMAIN}", groups)
        for name, (display, groups) in DEMO_ACCOUNTS.items()
    ]


class KeyFileError(Exception):
    """The key file exists but holds no usable keys; it is never overwritten silently."""


@dataclass(frozen=True)
class SigningKeys:
    """One RSA key for ID tokens, one P-256 key for access tokens; ``kid`` = RFC 7638 thumbprint."""

    id_key: RSAKey
    access_key: ECKey

    @classmethod
    def generate(cls) -> SigningKeys:
        rsa = RSAKey.generate_key(2048, {"use": "sig", "alg": ID_TOKEN_ALG}, auto_kid=True)
        ec = ECKey.generate_key("P-256", {"use": "sig", "alg": ACCESS_TOKEN_ALG}, auto_kid=True)
        return cls(rsa, ec)

    @classmethod
    def load_or_create(cls, path: Path | None) -> SigningKeys:
        """The keys in ``path``, or new ones written there; in memory only if ``path`` is None."""
        if path is None:
            return cls.generate()
        try:
            text = path.read_text()
        except FileNotFoundError:
            keys = cls.generate()
            keys._write(path)
            return keys
        try:
            found = KeySet.import_key_set(json.loads(text))
            rsa = next(k for k in found if isinstance(k, RSAKey) and k.alg == ID_TOKEN_ALG)
            ec = next(k for k in found if isinstance(k, ECKey) and k.alg == ACCESS_TOKEN_ALG)
        except (ValueError, TypeError, KeyError, StopIteration, JoseError) as exc:
            raise KeyFileError(f"{path}: not the provider's key set ({exc!r}); delete it") from exc
        if not (rsa.is_private and ec.is_private and rsa.kid and ec.kid):
            raise KeyFileError(f"{path}: keys without their private part or kid; delete it")
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return cls(rsa, ec)

    def _write(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(KeySet([self.id_key, self.access_key]).as_dict(private=True), f)
        os.replace(partial, path)

    def public_jwks(self) -> dict[str, Any]:
        keys = [k.as_dict(private=False) for k in (self.id_key, self.access_key)]
        return {"keys": keys}

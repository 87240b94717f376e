"""SCRAM-SHA-256 without I/O: verifiers, the server side and the client side.

Passwords are prepared with SASLprep (scramp's, RFC 4013) as PostgreSQL prepares them, so a
non-ASCII password gives the same verifier here as in ``pg_authid`` and logs in to a target as
libpq would. The exchange itself is ours, the product's own protocol code: it takes the empty
user name PostgreSQL's clients send (the start-up message carries the user), which a general
SCRAM library refuses. A stored verifier has PostgreSQL's format,
``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``, so one can be copied from
``pg_authid`` or made with ``wardgate passwd``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from scramp import ScramException
from scramp.utils import saslprep

MECHANISM = "SCRAM-SHA-256"
ITERATIONS = 4096


class ScramError(Exception):
    """The exchange is malformed or the proof is wrong."""


class WrongProof(ScramError):
    """A well-formed proof of the wrong password: a guess (throttled), not a broken client."""


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.digest(key, msg, "sha256")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise ScramError("invalid base64") from exc


def _attributes(message: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise ScramError(f"malformed SCRAM attribute {part[:20]!r}")
        out.setdefault(key, value)
    return out


def prepared(password: str) -> bytes:
    """The password's bytes as PostgreSQL hashes them: SASLprep'd (RFC 4013), or as it is
    where SASLprep refuses it (a prohibited or unassigned character)."""
    try:
        return str(saslprep(password)).encode()
    except ScramException:
        return password.encode()


@dataclass(frozen=True)
class Verifier:
    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    @classmethod
    def from_password(
        cls, password: str, salt: bytes | None = None, iterations: int = ITERATIONS
    ) -> Verifier:
        salt = salt if salt is not None else secrets.token_bytes(16)
        salted = hashlib.pbkdf2_hmac("sha256", prepared(password), salt, iterations)
        client_key = _hmac(salted, b"Client Key")
        return cls(
            iterations, salt, hashlib.sha256(client_key).digest(), _hmac(salted, b"Server Key")
        )

    @classmethod
    def parse(cls, text: str) -> Verifier:
        try:
            mech, params, keys = text.split("$")
            iterations, salt = params.split(":")
            stored, server = keys.split(":")
            if mech != MECHANISM:
                raise ValueError(mech)
            return cls(int(iterations), _unb64(salt), _unb64(stored), _unb64(server))
        except (ValueError, ScramError) as exc:
            raise ValueError(
                "not a SCRAM-SHA-256 verifier "
                "(expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)"
            ) from exc

    def __str__(self) -> str:
        return (
            f"{MECHANISM}${self.iterations}:{_b64(self.salt)}"
            f"${_b64(self.stored_key)}:{_b64(self.server_key)}"
        )


class ScramServer:
    """Checks one client. ``first`` answers client-first; ``final`` checks the proof."""

    def __init__(self, verifier: Verifier, *, nonce: str | None = None) -> None:
        self.verifier = verifier
        self._nonce = nonce or _b64(secrets.token_bytes(18))
        self._client_first_bare = ""
        self._server_first = ""

    def first(self, client_first: bytes) -> bytes:
        text = client_first.decode("utf-8", "replace")
        gs2, sep, rest = text.partition(",")
        authzid, sep2, bare = rest.partition(",")
        if not sep or not sep2 or gs2 not in ("n", "y") or authzid:
            raise ScramError("unsupported SCRAM GS2 header (channel binding is not offered)")
        attrs = _attributes(bare)
        if "r" not in attrs or not attrs["r"]:
            raise ScramError("client-first message has no nonce")
        self._client_first_bare = bare
        self._nonce = attrs["r"] + self._nonce
        self._server_first = (
            f"r={self._nonce},s={_b64(self.verifier.salt)},i={self.verifier.iterations}"
        )
        return self._server_first.encode()

    def final(self, client_final: bytes) -> bytes:
        text = client_final.decode("utf-8", "replace")
        without_proof, sep, proof_part = text.rpartition(",p=")
        if not sep:
            raise ScramError("client-final message has no proof")
        attrs = _attributes(without_proof)
        if attrs.get("r") != self._nonce:
            raise ScramError("nonce mismatch")
        if attrs.get("c") not in ("biws", "eSws"):
            raise ScramError("unexpected channel binding data")
        auth_message = f"{self._client_first_bare},{self._server_first},{without_proof}".encode()
        proof = _unb64(proof_part)
        signature = _hmac(self.verifier.stored_key, auth_message)
        if len(proof) != len(signature):
            raise WrongProof("password authentication failed")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), self.verifier.stored_key):
            raise WrongProof("password authentication failed")
        return f"v={_b64(_hmac(self.verifier.server_key, auth_message))}".encode()


class ScramClient:
    """Logs in to a server with a password."""

    def __init__(self, password: str, *, nonce: str | None = None) -> None:
        self.password = password
        self._nonce = nonce or _b64(secrets.token_bytes(18))
        self._client_first_bare = f"n=,r={self._nonce}"
        self._server_signature = b""

    def first(self) -> bytes:
        return f"n,,{self._client_first_bare}".encode()

    def final(self, server_first: bytes) -> bytes:
        text = server_first.decode("utf-8", "replace")
        attrs = _attributes(text)
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        if not nonce.startswith(self._nonce) or not salt or not iterations.isdigit():
            raise ScramError("malformed server-first message")
        salted = hashlib.pbkdf2_hmac(
            "sha256", prepared(self.password), _unb64(salt), int(iterations)
        )
        client_key = _hmac(salted, b"Client Key")
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self._client_first_bare},{text},{without_proof}".encode()
        signature = _hmac(hashlib.sha256(client_key).digest(), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={_b64(proof)}".encode()

    def verify(self, server_final: bytes) -> None:
        attrs = _attributes(server_final.decode("utf-8", "replace"))
        if "e" in attrs:
            raise ScramError(f"server rejected authentication: {attrs['e']}")
        if not hmac.compare_digest(_unb64(attrs.get("v", "")), self._server_signature):
            raise ScramError("server signature mismatch: the target is not who it claims to be")

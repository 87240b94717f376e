"""Reversible pseudonyms for FHIR resource ids.

A Patient's id is an identifier (Synthea uses it as the MRN) and it travels in every reference
to the patient, so an identity that sees MRNs masked must not see it either. Unlike a masked
value, a masked id must still work: the caller follows references and sends the id back in a
later request (``GET Patient/pid-...``, ``?patient=pid-...``), and the gateway maps it back to the
real one. Hence deterministic authenticated encryption (AES-SIV) rather than a keyed hash: the
same id always gives the same token, a token decodes to its id, and a token the gateway did not
make (another key, a guess, a flipped character) decodes to nothing.

Tokens use the 64 characters a FHIR id may hold (``[A-Za-z0-9\\-.]``): ``pid-`` and 44 of them
for a UUID, which keeps them under FHIR's 64-character limit; other ids grow with their length
(over 28 characters they exceed the limit, which this gateway's own decoding does not mind).
``urn:uuid:`` references (bundle-local names that never come back in a request) get a keyed
one-way UUID instead, so that they stay valid UUIDs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "pid-"
_AD = [b"wardgate fhir resource id v1"]
_ALT = b"-."  # base64's "+/" spelled with the two other characters a FHIR id allows
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NUMBER = re.compile(r"[1-9][0-9]{0,37}")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9\-.]+")
# What an id's plaintext starts with: how it was packed.
_TEXT, _PACKED_UUID, _PACKED_NUMBER = b"\x00", b"\x01", b"\x02"


class Pseudonyms:
    """Encodes ids as ``pid-...`` tokens and decodes them; both are cached (ids repeat in every
    reference). The keys are derived from the gateway's masking key, one for the cipher and one
    for the one-way UUIDs."""

    def __init__(self, key: bytes, *, prefix: str = PREFIX, cache_size: int = 65536) -> None:
        material = HKDF(
            algorithm=hashes.SHA256(), length=96, salt=None, info=b"wardgate fhir ids"
        ).derive(key)
        self._siv = AESSIV(material[:64])
        self._uuid_key = material[64:]
        self.prefix = prefix
        self._cache_size = cache_size
        self._encoded: dict[str, str] = {}
        self._decoded: dict[str, str | None] = {}
        self._uuids: dict[str, str] = {}

    def encode(self, id_: str) -> str:
        found = self._encoded.get(id_)
        if found is None:
            if len(self._encoded) >= self._cache_size:
                self._encoded.clear()
            sealed = self._siv.encrypt(_pack(id_), _AD)
            text = base64.b64encode(sealed, altchars=_ALT).rstrip(b"=").decode("ascii")
            found = self._encoded[id_] = self.prefix + text
        return found

    def decode(self, token: str) -> str | None:
        """The id `token` stands for, or None when this gateway (with this key) did not make it."""
        if token in self._decoded:
            return self._decoded[token]
        id_ = self._open(token)
        if len(self._decoded) >= self._cache_size:
            self._decoded.clear()
        self._decoded[token] = id_
        return id_

    def uuid(self, id_: str) -> str:
        """A UUID (version 8) standing for `id_` in ``urn:uuid:`` references; one-way."""
        found = self._uuids.get(id_)
        if found is None:
            if len(self._uuids) >= self._cache_size:
                self._uuids.clear()
            digest = bytearray(hmac.new(self._uuid_key, id_.encode(), hashlib.sha256).digest())
            digest[6] = (digest[6] & 0x0F) | 0x80
            digest[8] = (digest[8] & 0x3F) | 0x80
            found = self._uuids[id_] = str(uuid.UUID(bytes=bytes(digest[:16])))
        return found

    def _open(self, token: str) -> str | None:
        if not token.startswith(self.prefix):
            return None
        body = token[len(self.prefix) :]
        if not _TOKEN_CHARS.fullmatch(body) or len(body) % 4 == 1:
            return None
        try:
            sealed = base64.b64decode(body + "=" * (-len(body) % 4), altchars=_ALT, validate=True)
            return _unpack(self._siv.decrypt(sealed, _AD))
        except (InvalidTag, ValueError):
            return None


def _pack(id_: str) -> bytes:
    if _UUID.fullmatch(id_):
        return _PACKED_UUID + uuid.UUID(id_).bytes
    if _NUMBER.fullmatch(id_):
        number = int(id_)
        return _PACKED_NUMBER + number.to_bytes((number.bit_length() + 7) // 8)
    return _TEXT + id_.encode("utf-8", "surrogatepass")


def _unpack(plain: bytes) -> str:
    kind, body = plain[:1], plain[1:]
    if kind == _PACKED_UUID:
        return str(uuid.UUID(bytes=body))
    if kind == _PACKED_NUMBER:
        return str(int.from_bytes(body))
    return body.decode("utf-8", "surrogatepass")

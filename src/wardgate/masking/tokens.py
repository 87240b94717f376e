"""Reversible pseudonyms of stored text values, for SQL look-ups.

A role that sees a column pseudonymised (an MRN as ``MRN-...``) still needs to find the row it
saw: ``SELECT * FROM encounters WHERE patient_mrn = 'MRN-...'``. A keyed hash cannot be turned
back into the value, so where a result column is the stored text value of columns labelled with
one entity, the planner gives a token instead: deterministic authenticated encryption (AES-SIV,
as ``fhir_ids`` does for FHIR resource ids) of the value under a key derived from the masking
key, with the entity and the operator's prefix and domain as associated data. The same value
gives the same token in every result (joins and GROUP BY still work); ``decode`` gives the
value back only for a token this gateway made for that entity with that operator, and None for
anything else (another entity, another key, one character changed, a guess).

The value is padded to a multiple of 16 bytes before it is sealed, so a token tells the length
of its value only to within 16 bytes (an MRN, a member id: nothing). Tokens are written in
base64url, letters, digits, ``-`` and ``_``: a token needs no quoting inside an SQL literal.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wardgate.masking.operators.base import CellFn, cached
from wardgate.masking.operators.pseudonym import Pseudonym
from wardgate.masking.pgtypes import Family, Format

_VERSION = b"wardgate sql pseudonym v1"
_BLOCK = 16
_BODY = re.compile(r"[A-Za-z0-9_-]+")


class Tokens:
    """Seals stored values into tokens and opens them; one per masking key."""

    def __init__(self, key: bytes, *, cache_size: int = 65536) -> None:
        if not key:
            raise ValueError("reversible pseudonyms need a non-empty gateway key")
        material = HKDF(
            algorithm=hashes.SHA256(), length=64, salt=None, info=b"wardgate sql pseudonyms"
        ).derive(key)
        self._siv = AESSIV(material)
        self._cache_size = cache_size
        self._decoded: dict[tuple[str, Pseudonym, str], str | None] = {}

    @staticmethod
    def _data(label: str, operator: Pseudonym) -> list[bytes]:
        return [_VERSION, label.encode(), operator.prefix.encode(), operator.domain.encode()]

    def encode(self, label: str, operator: Pseudonym, value: bytes) -> bytes:
        padded = value + b"\x80" + b"\x00" * (-(len(value) + 1) % _BLOCK)
        sealed = self._siv.encrypt(padded, self._data(label, operator))
        return operator.prefix.encode() + base64.urlsafe_b64encode(sealed).rstrip(b"=")

    def decode(self, label: str, operator: Pseudonym, token: str) -> str | None:
        """The stored value behind ``token``, or None when this gateway did not make it for
        ``label`` with ``operator``."""
        key = (label, operator, token)
        if key in self._decoded:
            return self._decoded[key]
        found = self._open(label, operator, token)
        if len(self._decoded) >= self._cache_size:
            self._decoded.clear()
        self._decoded[key] = found
        return found

    def _open(self, label: str, operator: Pseudonym, token: str) -> str | None:
        if not token.startswith(operator.prefix):
            return None
        body = token[len(operator.prefix) :]
        if not _BODY.fullmatch(body) or len(body) % 4 == 1:
            return None
        try:
            sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            padded = self._siv.decrypt(sealed, self._data(label, operator))
            value = padded.rstrip(b"\x00")
            if not value.endswith(b"\x80"):
                return None
            return value[:-1].decode("utf-8")
        except (InvalidTag, ValueError):
            return None


def reversible(operator: object) -> bool:
    """Whether ``operator`` gives stored text values tokens (a pseudonym that keeps no shape)."""
    return isinstance(operator, Pseudonym) and operator.reversible and not operator.preserve_format


@dataclass(frozen=True)
class Reversible:
    """The pseudonym of one entity's stored text values as a token (``Tokens``); for other
    types, the pseudonym's keyed hash. Chosen by the planner, never configured."""

    pseudonym: Pseudonym
    label: str
    tokens: Tokens = field(compare=False, repr=False)
    name: ClassVar[str] = "pseudonym"

    def compile(self, family: Family, fmt: Format, key: bytes) -> CellFn | None:
        if family is not Family.TEXT:
            return self.pseudonym.compile(family, fmt, key)
        encode, label, pseudonym = self.tokens.encode, self.label, self.pseudonym
        return cached(lambda raw: encode(label, pseudonym, raw), pseudonym.cache_size)

    def json_leaf(self, value: str | int | float, key: bytes) -> Any:
        return self.pseudonym.json_leaf(value, key)

from __future__ import annotations

import hmac
import ipaddress
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from wardgate.masking import pgtypes as pg
from wardgate.masking.operators.base import CellFn, cached, is_json, json_cell
from wardgate.masking.pgtypes import Family, Format

_INTS = {Family.INT2: (struct.Struct(">h"), 15), Family.INT4: (struct.Struct(">i"), 31),
         Family.INT8: (struct.Struct(">q"), 63)}  # fmt: skip
_FLOATS = {Family.FLOAT4: (struct.Struct(">f"), 24), Family.FLOAT8: (struct.Struct(">d"), 53)}
_DATE = struct.Struct(">i")
_TS = struct.Struct(">q")
_INET_HEAD = struct.Struct(">BBBB")
_DAY_1900 = pg.days_from_civil(1900, 1, 1)
_DAYS_TO_2100 = pg.days_from_civil(2100, 1, 1) - _DAY_1900
_DIGITS = "0123456789"
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LOWER = _UPPER.lower()


def canonical_number(value: int | float | Decimal) -> bytes:
    """One spelling per number, whatever its type or wire format, so that 42 (int4), 42 (int8),
    42.0 (numeric) and "42" (text) share a pseudonym input."""
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return str(int(value)).encode() if value.is_integer() else repr(value).encode()
    if value.is_finite() and value == value.to_integral_value():
        return str(int(value)).encode()
    return format(value.normalize(), "f").encode()


@dataclass(frozen=True)
class Pseudonym:
    """A keyed, stable stand-in: HMAC-SHA256 under the gateway key of the value's canonical
    spelling, rendered as a valid value of the column's type. Equal inputs give equal outputs
    (joins and GROUP BY still work) across columns and wire formats; `domain` separates
    namespaces. Text becomes `prefix` + `length` hex digits, or with `preserve_format` keeps
    its shape (digits stay digits, letters letters, punctuation stays). Integers, numerics and
    floats become non-negative numbers, dates and timestamps fall in 1900..2099, UUIDs are
    version-8 UUIDs, IPv4 addresses land in 10/8 and IPv6 in fd00::/8. Booleans, intervals and
    other types fall back to NULL. int2 has only 32768 values, so its pseudonyms collide.

    `reversible`: where a result column is the stored text value of a column labelled with one
    entity, the SQL masking gives a token the gateway can decode instead (``masking.tokens``),
    so that a role can look the row up by it; everywhere else (free text, JSON, arrays,
    numbers) the keyed hash above. False: the keyed hash everywhere."""

    prefix: str = ""
    length: int = 16
    preserve_format: bool = False
    domain: str = ""
    cache_size: int = 65536
    reversible: bool = True
    name: ClassVar[str] = "pseudonym"

    def __post_init__(self) -> None:
        if not 4 <= self.length <= 64:
            raise ValueError("pseudonym length must be 4..64 hex digits")

    def hasher(self, key: bytes) -> Callable[[bytes], bytes]:
        if not key:
            raise ValueError("the pseudonym operator needs a non-empty gateway key")
        salt = b"wardgate/pseudonym/v1\x00" + self.domain.encode() + b"\x00"
        digest = hmac.digest

        def h(canonical: bytes) -> bytes:
            return digest(key, salt + canonical, "sha256")

        return h

    def text(self, raw: bytes, h: Callable[[bytes], bytes]) -> bytes:
        d = h(raw)
        if not self.preserve_format:
            return (self.prefix + d.hex()[: self.length]).encode()
        text = raw.decode("utf-8", "surrogateescape")
        stream = bytearray(d)
        while len(stream) < len(text):
            stream += h(b"\x01" + bytes(stream[-32:]))
        out = []
        for c, b in zip(text, stream, strict=False):
            if c.isdigit():
                out.append(_DIGITS[b % 10])
            elif c.isalpha():
                out.append(_UPPER[b % 26] if c.isupper() else _LOWER[b % 26])
            else:
                out.append(c)
        return (self.prefix + "".join(out)).encode("utf-8", "surrogateescape")

    def compile(self, family: Family, fmt: Format, key: bytes) -> CellFn | None:
        h = self.hasher(key)
        cell = self._cell(family, fmt, h, key)
        return None if cell is None else cached(cell, self.cache_size)

    def _cell(
        self, family: Family, fmt: Format, h: Callable[[bytes], bytes], key: bytes
    ) -> CellFn | None:
        if family is Family.TEXT:
            return lambda raw: self.text(raw, h)
        if is_json(family):
            return json_cell(lambda v: self.json_leaf(v, key), family, fmt)
        if family in _INTS:
            s, bits = _INTS[family]
            mask = (1 << bits) - 1

            def to_int(value: int) -> int:
                return int.from_bytes(h(canonical_number(value))[:8]) & mask

            if fmt == 0:
                return lambda raw: str(to_int(int(raw))).encode()
            return lambda raw: s.pack(to_int(s.unpack(raw)[0]))
        if family is Family.NUMERIC:

            def to_numeric(value: Decimal) -> Decimal:
                if not value.is_finite():
                    return value
                return Decimal(int.from_bytes(h(canonical_number(value))[:8]) % 10**15)

            if fmt == 0:
                return lambda raw: str(to_numeric(Decimal(raw.decode()))).encode()
            return lambda raw: pg.encode_numeric_binary(to_numeric(pg.decode_numeric_binary(raw)))
        if family in _FLOATS:
            fs, fbits = _FLOATS[family]

            def to_float(value: float) -> float:
                if value != value or value in (float("inf"), float("-inf")):
                    return value
                return float(int.from_bytes(h(canonical_number(value))[:8]) % (1 << fbits))

            if fmt == 0:
                return lambda raw: canonical_number(to_float(float(raw)))
            return lambda raw: fs.pack(to_float(fs.unpack(raw)[0]))
        if family is Family.DATE:
            return self._date(fmt, h)
        if family in (Family.TIMESTAMP, Family.TIMESTAMPTZ):
            return self._timestamp(fmt, h, family is Family.TIMESTAMPTZ)
        if family is Family.UUID:

            def to_uuid(value: bytes) -> bytes:
                d = bytearray(h(value)[:16])
                d[6] = (d[6] & 0x0F) | 0x80  # version 8: custom (RFC 9562)
                d[8] = (d[8] & 0x3F) | 0x80  # the RFC variant
                return bytes(d)

            if fmt == 0:
                return lambda raw: str(
                    uuid.UUID(bytes=to_uuid(uuid.UUID(raw.decode()).bytes))
                ).encode()
            return lambda raw: to_uuid(raw) if len(raw) == 16 else None
        if family in (Family.INET, Family.CIDR):
            return self._inet(fmt, h, family is Family.CIDR)
        return None

    def _date(self, fmt: Format, h: Callable[[bytes], bytes]) -> CellFn:
        def to_days(days: int) -> int:
            if days in (pg.DATE_POS_INF, pg.DATE_NEG_INF):
                return days
            return _DAY_1900 + int.from_bytes(h(pg.format_date(days))[:8]) % _DAYS_TO_2100

        if fmt == 0:

            def date_text(raw: bytes) -> bytes | None:
                days = pg.parse_date_text(raw)
                return (
                    raw
                    if days is None and raw in (b"infinity", b"-infinity")
                    else (None if days is None else pg.format_date(to_days(days)))
                )

            return date_text
        return lambda raw: _DATE.pack(to_days(_DATE.unpack(raw)[0]))

    def _timestamp(self, fmt: Format, h: Callable[[bytes], bytes], zone: bool) -> CellFn:
        def to_usec(usec: int) -> int:
            if usec in (pg.TS_POS_INF, pg.TS_NEG_INF):
                return usec
            d = int.from_bytes(h(pg.format_timestamp(usec, with_zone=zone))[:8])
            return (_DAY_1900 + d % _DAYS_TO_2100) * pg.USEC_PER_DAY + (d >> 20) % pg.USEC_PER_DAY

        if fmt == 0:

            def ts_text(raw: bytes) -> bytes | None:
                if raw in (b"infinity", b"-infinity"):
                    return raw
                usec = pg.parse_timestamp_text(raw, with_zone=zone)
                return None if usec is None else pg.format_timestamp(to_usec(usec), with_zone=zone)

            return ts_text
        return lambda raw: _TS.pack(to_usec(_TS.unpack(raw)[0]))

    def _inet(self, fmt: Format, h: Callable[[bytes], bytes], cidr: bool) -> CellFn:
        def pseudo(packed: bytes, bits: int) -> bytes:
            d = h(packed + bytes([bits]))
            address = b"\x0a" + d[:3] if len(packed) == 4 else b"\xfd" + d[:15]
            if cidr:  # a cidr value may have no bits set past its prefix
                network = (
                    int.from_bytes(address)
                    >> (8 * len(address) - bits)
                    << (8 * len(address) - bits)
                )
                address = network.to_bytes(len(address))
            return address

        if fmt == 0:

            def inet_text(raw: bytes) -> bytes | None:
                iface = ipaddress.ip_interface(raw.decode())
                bits = iface.network.prefixlen
                address = ipaddress.ip_address(pseudo(iface.packed, bits))
                full = bits == address.max_prefixlen and not cidr
                return (str(address) if full else f"{address}/{bits}").encode()

            return inet_text

        def inet_binary(raw: bytes) -> bytes | None:
            _, bits, _, size = _INET_HEAD.unpack_from(raw)
            if size not in (4, 16) or len(raw) != 4 + size:
                return None
            return raw[:4] + pseudo(raw[4:], bits)

        return inet_binary

    def json_leaf(self, value: str | int | float, key: bytes) -> Any:
        h = self.hasher(key)
        if isinstance(value, str):
            return self.text(value.encode("utf-8", "surrogatepass"), h).decode(
                "utf-8", "surrogateescape"
            )
        return int.from_bytes(h(canonical_number(value))[:8]) % 10**15

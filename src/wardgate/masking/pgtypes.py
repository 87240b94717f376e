"""PostgreSQL types as masking sees them: a family per type OID and the wire codecs it needs.

Text format is what PostgreSQL prints with ``DateStyle = ISO`` (what every driver sets) and
``client_encoding = UTF8``; binary format is each type's send/recv representation. Dates and
timestamps are kept as day and microsecond counts from 2000-01-01 (PostgreSQL's own epoch), so
years outside 1..9999, BC dates and infinities need no special cases in the calendar arithmetic.
"""

from __future__ import annotations

import enum
import re
import struct
from decimal import Decimal
from typing import Literal

Format = Literal[0, 1]
TEXT_FORMAT: Format = 0
BINARY_FORMAT: Format = 1


class Family(enum.Enum):
    TEXT = "text"  # text, varchar, bpchar, name, citext, any type the caller says prints as text
    JSON = "json"
    JSONB = "jsonb"
    INT2 = "int2"
    INT4 = "int4"
    INT8 = "int8"
    NUMERIC = "numeric"
    FLOAT4 = "float4"
    FLOAT8 = "float8"
    DATE = "date"
    TIMESTAMP = "timestamp"
    TIMESTAMPTZ = "timestamptz"
    INTERVAL = "interval"
    BOOL = "bool"
    UUID = "uuid"
    INET = "inet"
    CIDR = "cidr"
    OTHER = "other"  # anything else: every operator but keep falls back to NULL


INTEGERS = frozenset({Family.INT2, Family.INT4, Family.INT8})
NUMBERS = INTEGERS | {Family.NUMERIC, Family.FLOAT4, Family.FLOAT8}

# Built-in type OIDs (pg_type.dat); stable across PostgreSQL releases.
OIDS: dict[int, Family] = {
    16: Family.BOOL,
    18: Family.TEXT,  # "char"
    19: Family.TEXT,  # name
    20: Family.INT8,
    21: Family.INT2,
    23: Family.INT4,
    25: Family.TEXT,
    114: Family.JSON,
    650: Family.CIDR,
    700: Family.FLOAT4,
    701: Family.FLOAT8,
    705: Family.TEXT,  # unknown: an untyped literal, sent as text
    869: Family.INET,
    1042: Family.TEXT,  # bpchar
    1043: Family.TEXT,  # varchar
    1082: Family.DATE,
    1114: Family.TIMESTAMP,
    1184: Family.TIMESTAMPTZ,
    1186: Family.INTERVAL,
    1700: Family.NUMERIC,
    2950: Family.UUID,
    3802: Family.JSONB,
}


def family_of(type_oid: int) -> Family:
    """The family of a built-in type. Extension types (citext) and domains have OIDs that differ
    per database: resolve them to their base type from the catalog and pass the family."""
    return OIDS.get(type_oid, Family.OTHER)


# Calendar arithmetic on day numbers (proleptic Gregorian, astronomical years: 0 is 1 BC).
def days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 2000-01-01 to the given date."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 730425


def civil_from_days(days: int) -> tuple[int, int, int]:
    days += 730425
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


USEC_PER_DAY = 86_400_000_000
DATE_STRUCT = struct.Struct(">i")  # days since 2000-01-01
TIMESTAMP_STRUCT = struct.Struct(">q")  # microseconds since 2000-01-01 00:00 (UTC for tz)
DATE_POS_INF = 0x7FFFFFFF
DATE_NEG_INF = -0x80000000
TS_POS_INF = 0x7FFFFFFFFFFFFFFF
TS_NEG_INF = -0x8000000000000000

_DATE_TEXT = re.compile(rb"(\d{4,})-(\d\d)-(\d\d)")
_TIME_TEXT = re.compile(rb" (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?")
_OFFSET_TEXT = re.compile(rb"([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?")


def year_text(year: int) -> str:
    """A year as PostgreSQL prints it: zero-padded to four digits, astronomical 0 as 1 BC."""
    return f"{year:04d}" if year > 0 else f"{1 - year:04d}"


def bc_suffix(year: int) -> str:
    return "" if year > 0 else " BC"


def parse_date_text(raw: bytes) -> int | None:
    """Days since 2000-01-01 of an ISO date (``1984-05-12``, ``0044-03-15 BC``); None if not one."""
    m = _DATE_TEXT.fullmatch(raw[:-3] if raw.endswith(b" BC") else raw)
    if m is None:
        return None
    year = int(m[1])
    return days_from_civil(1 - year if raw.endswith(b" BC") else year, int(m[2]), int(m[3]))


def format_date(days: int) -> bytes:
    year, month, day = civil_from_days(days)
    return f"{year_text(year)}-{month:02d}-{day:02d}{bc_suffix(year)}".encode()


def parse_timestamp_text(raw: bytes, *, with_zone: bool) -> int | None:
    """Microseconds since 2000-01-01 (UTC for timestamptz) of an ISO timestamp; None if not one."""
    bc = raw.endswith(b" BC")
    if bc:
        raw = raw[:-3]
    m = _DATE_TEXT.match(raw)
    if m is None:
        return None
    t = _TIME_TEXT.match(raw, m.end())
    if t is None:
        return None
    year = int(m[1])
    days = days_from_civil(1 - year if bc else year, int(m[2]), int(m[3]))
    fraction = (t[4] or b"").ljust(6, b"0")
    usec = (int(t[1]) * 3600 + int(t[2]) * 60 + int(t[3])) * 1_000_000 + int(fraction or b"0")
    end = t.end()
    if with_zone:
        z = _OFFSET_TEXT.fullmatch(raw, end)
        if z is None:
            return None
        offset = int(z[2]) * 3600 + int(z[3] or 0) * 60 + int(z[4] or 0)
        usec -= (offset if z[1] == b"+" else -offset) * 1_000_000
    elif end != len(raw):
        return None
    return days * USEC_PER_DAY + usec


def format_timestamp(usec: int, *, with_zone: bool) -> bytes:
    days, rest = divmod(usec, USEC_PER_DAY)
    year, month, day = civil_from_days(days)
    seconds, micro = divmod(rest, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{year_text(year)}-{month:02d}-{day:02d} {hours:02d}:{minutes:02d}:{seconds:02d}"
    if micro:
        text += f".{micro:06d}".rstrip("0")
    if with_zone:
        text += "+00"
    return (text + bc_suffix(year)).encode()


# numeric's binary form: ndigits, weight, sign, dscale (int16 each), then base-10000 digits.
NUMERIC_POS = 0x0000
NUMERIC_NEG = 0x4000
NUMERIC_NAN = 0xC000
NUMERIC_PINF = 0xD000
NUMERIC_NINF = 0xF000
_NUMERIC_HEAD = struct.Struct(">hhHH")


def decode_numeric_binary(raw: bytes) -> Decimal:
    ndigits, weight, sign, dscale = _NUMERIC_HEAD.unpack_from(raw)
    if sign == NUMERIC_NAN:
        return Decimal("NaN")
    if sign in (NUMERIC_PINF, NUMERIC_NINF):
        return Decimal("-Infinity" if sign == NUMERIC_NINF else "Infinity")
    if len(raw) != 8 + 2 * ndigits:
        raise ValueError("numeric digits do not match their count")
    digits = struct.unpack_from(f">{ndigits}H", raw, 8)
    text = "".join(f"{d:04d}" for d in digits) or "0"
    value = Decimal(text).scaleb(4 * (weight - ndigits + 1))
    value = value.quantize(Decimal(1).scaleb(-dscale)) if ndigits else Decimal(0).scaleb(-dscale)
    return -value if sign == NUMERIC_NEG else value


def encode_numeric_binary(value: Decimal) -> bytes:
    if value.is_nan():
        return _NUMERIC_HEAD.pack(0, 0, NUMERIC_NAN, 0)
    if value.is_infinite():
        return _NUMERIC_HEAD.pack(0, 0, NUMERIC_NINF if value < 0 else NUMERIC_PINF, 0)
    sign, digit_tuple, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    dscale = max(0, -exponent)
    digits = "".join(map(str, digit_tuple)) + "0" * max(0, exponent)
    digits = digits.rjust(dscale, "0")
    integer = digits[: len(digits) - dscale].lstrip("0")
    fraction = digits[len(digits) - dscale :]
    integer = integer.rjust(-(-len(integer) // 4) * 4, "0")
    fraction = fraction.ljust(-(-len(fraction) // 4) * 4, "0")
    groups = [int(integer[i : i + 4]) for i in range(0, len(integer), 4)]
    weight = len(groups) - 1
    groups += [int(fraction[i : i + 4]) for i in range(0, len(fraction), 4)]
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    head = _NUMERIC_HEAD.pack(len(groups), weight, NUMERIC_NEG if sign else NUMERIC_POS, dscale)
    return head + struct.pack(f">{len(groups)}H", *groups)


# inet/cidr binary: family (2 = IPv4, 3 = IPv6), prefix bits, is_cidr, address length, address.
INET_AF_INET = 2
INET_AF_INET6 = 3

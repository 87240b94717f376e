from __future__ import annotations

import bisect
import re
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from wardgate.masking import pgtypes as pg
from wardgate.masking.operators.base import CellFn, cached, is_json, json_cell
from wardgate.masking.pgtypes import Family, Format

_DATE = struct.Struct(">i")
_TS = struct.Struct(">q")
_NOON = 12 * 3600 * 1_000_000
_ISO_YEAR = re.compile(rb"(\d{4,})-\d\d-\d\d")
_OFFSET = re.compile(rb"[+-]\d\d(?::\d\d){0,2}$")
# A year inside free-form text: ISO and US dates, "March 3, 1984", "03/12/84" (two digits).
_TEXT_YEAR = re.compile(r"\b(1[89]\d\d|2[01]\d\d)\b|\b\d{1,2}[/.-]\d{1,2}[/.-](\d\d)\b")


def text_year(text: str) -> str | None:
    """The year of a date written in text, as four digits; None when no year is in it."""
    m = _TEXT_YEAR.search(text)
    if m is None:
        return None
    if m[1]:
        return m[1]
    two = int(m[2])
    return f"{2000 + two if two <= 30 else 1900 + two}"


@dataclass(frozen=True)
class DateToYear:
    """Dates keep only their year: date and timestamp columns become January 1 (midnight) of the
    year, text becomes the year as four digits. timestamptz becomes January 1 at noon UTC (in
    text, noon at the offset it was printed with), so that the year reads the same in every time
    zone; in binary the year is the UTC year. Infinities pass (they are not dates of a person).
    Text without a recognisable year, integers, and other types fall back to NULL."""

    name: ClassVar[str] = "date_to_year"

    def compile(self, family: Family, fmt: Format, key: bytes) -> CellFn | None:
        if family is Family.TEXT:

            def text(raw: bytes) -> bytes | None:
                year = text_year(raw.decode("utf-8", "surrogateescape"))
                return None if year is None else year.encode()

            return text
        if is_json(family):
            return json_cell(lambda v: self.json_leaf(v, key), family, fmt)
        if family is Family.DATE:  # few distinct values (days), so worth a cache
            return cached(_date_text if fmt == 0 else _date_binary)
        if family is Family.TIMESTAMP:
            return _timestamp_text if fmt == 0 else _timestamp_binary
        if family is Family.TIMESTAMPTZ:
            return _timestamptz_text if fmt == 0 else _timestamptz_binary
        return None

    def json_leaf(self, value: str | int | float, key: bytes) -> Any:
        return text_year(value) if isinstance(value, str) else None


# January 1 of 1800..2200 as day numbers, for a bisect instead of calendar arithmetic.
_JAN1 = [pg.days_from_civil(year, 1, 1) for year in range(1800, 2201)]


def _jan1(days: int) -> int:
    if _JAN1[0] <= days < _JAN1[-1]:
        return _JAN1[bisect.bisect_right(_JAN1, days) - 1]
    return pg.days_from_civil(pg.civil_from_days(days)[0], 1, 1)


def _date_text(raw: bytes) -> bytes | None:
    m = _ISO_YEAR.match(raw)
    if m is None:
        return raw if raw in (b"infinity", b"-infinity") else None
    return m[1] + b"-01-01" + (b" BC" if raw.endswith(b" BC") else b"")


def _date_binary(raw: bytes) -> bytes | None:
    days: int = _DATE.unpack(raw)[0]
    if days in (pg.DATE_POS_INF, pg.DATE_NEG_INF):
        return raw
    return _DATE.pack(_jan1(days))


def _timestamp_text(raw: bytes) -> bytes | None:
    m = _ISO_YEAR.match(raw)
    if m is None:
        return raw if raw in (b"infinity", b"-infinity") else None
    return m[1] + b"-01-01 00:00:00" + (b" BC" if raw.endswith(b" BC") else b"")


def _timestamptz_text(raw: bytes) -> bytes | None:
    if raw[4:5] == b"-" and raw[-3:-2] in (b"+", b"-") and raw[:4].isdigit():
        return raw[:4] + b"-01-01 12:00:00" + raw[-3:]  # the common case: 1984-..+00
    m = _ISO_YEAR.match(raw)
    if m is None:
        return raw if raw in (b"infinity", b"-infinity") else None
    bc = raw.endswith(b" BC")
    offset = _OFFSET.search(raw[:-3] if bc else raw)
    if offset is None:
        return None
    return m[1] + b"-01-01 12:00:00" + offset[0] + (b" BC" if bc else b"")


def _timestamp_binary(raw: bytes) -> bytes | None:
    usec: int = _TS.unpack(raw)[0]
    if usec in (pg.TS_POS_INF, pg.TS_NEG_INF):
        return raw
    return _TS.pack(_jan1(usec // pg.USEC_PER_DAY) * pg.USEC_PER_DAY)


def _timestamptz_binary(raw: bytes) -> bytes | None:
    usec: int = _TS.unpack(raw)[0]
    if usec in (pg.TS_POS_INF, pg.TS_NEG_INF):
        return raw
    return _TS.pack(_jan1(usec // pg.USEC_PER_DAY) * pg.USEC_PER_DAY + _NOON)

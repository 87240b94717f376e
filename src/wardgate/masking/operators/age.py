from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from wardgate.masking import pgtypes as pg
from wardgate.masking.operators.base import CellFn, is_json, json_cell
from wardgate.masking.pgtypes import INTEGERS, Family, Format

_INTS = {Family.INT2: struct.Struct(">h"), Family.INT4: struct.Struct(">i"),
         Family.INT8: struct.Struct(">q")}  # fmt: skip
_FLOATS = {Family.FLOAT4: struct.Struct(">f"), Family.FLOAT8: struct.Struct(">d")}
_INTERVAL = struct.Struct(">qii")
_LEADING_NUMBER = re.compile(r"\s*(\d+(?:\.\d*)?)\b")
# The years of an interval in the postgres, postgres_verbose, iso_8601 and sql_standard styles.
_INTERVAL_YEARS = re.compile(rb"\s*(?:P|@ )?(\d+)(?: ?(?:years?|Y)|-\d)")


@dataclass(frozen=True)
class AgeOver89:
    """Ages over 89 become ``90+`` in text (a leading number decides: "93", "93 y/o") and 90 in
    numbers; younger ages pass. An interval (what ``age(date_of_birth)`` returns) of 90 years or
    more becomes exactly 90 years. Text that does not start with a number, and other types,
    fall back to NULL."""

    limit: int = 89
    text_form: str = "90+"
    name: ClassVar[str] = "age_over_89"

    def compile(self, family: Family, fmt: Format, key: bytes) -> CellFn | None:
        top = self.limit + 1
        over = self.text_form.encode()
        if family is Family.TEXT:

            def text(raw: bytes) -> bytes | None:
                m = _LEADING_NUMBER.match(raw.decode("utf-8", "surrogateescape"))
                if m is None:
                    return None
                return over if Decimal(m[1]) > self.limit else raw

            return text
        if is_json(family):
            return json_cell(lambda v: self.json_leaf(v, key), family, fmt)
        if family in INTEGERS and fmt == 0:
            top_int = str(top).encode()
            limit = self.limit
            return lambda raw: top_int if int(raw) > limit else raw
        if family in INTEGERS or family in _FLOATS or family is Family.NUMERIC:
            if fmt == 0:
                top_text = str(top).encode()

                def number_text(raw: bytes) -> bytes | None:
                    try:
                        return top_text if Decimal(raw.decode()) > self.limit else raw
                    except InvalidOperation:
                        return None

                return number_text
            if family is Family.NUMERIC:
                top_numeric = pg.encode_numeric_binary(Decimal(top))
                return lambda raw: (
                    top_numeric if pg.decode_numeric_binary(raw) > self.limit else raw
                )
            s = _INTS.get(family) or _FLOATS[family]
            top_binary = s.pack(top)
            return lambda raw: top_binary if s.unpack(raw)[0] > self.limit else raw
        if family is Family.INTERVAL:
            if fmt == 0:
                top_interval = f"{top} years".encode()

                def interval_text(raw: bytes) -> bytes | None:
                    m = _INTERVAL_YEARS.match(raw)
                    return top_interval if m and int(m[1]) > self.limit else raw

                return interval_text
            top_binary_interval = _INTERVAL.pack(0, 0, 12 * top)

            def interval_binary(raw: bytes) -> bytes | None:
                months = _INTERVAL.unpack(raw)[2]
                return top_binary_interval if months >= 12 * top else raw

            return interval_binary
        return None

    def json_leaf(self, value: str | int | float, key: bytes) -> Any:
        if isinstance(value, str):
            m = _LEADING_NUMBER.match(value)
            if m is None:
                return None
            return self.text_form if Decimal(m[1]) > self.limit else value
        return self.limit + 1 if value > self.limit else value

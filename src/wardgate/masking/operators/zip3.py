from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from wardgate.masking.operators.base import CellFn, cached, is_json, json_cell
from wardgate.masking.pgtypes import INTEGERS, Family, Format

# The three-digit ZIP prefixes whose areas held 20,000 people or fewer in the 2000 Census, which
# Safe Harbor (45 CFR 164.514(b)(2)(i)(B)) requires be reported as "000". Source: HHS Office for
# Civil Rights, "Guidance Regarding Methods for De-identification of Protected Health Information
# in Accordance with the HIPAA Privacy Rule" (2012), section 3.3 (the list first appeared in the
# preamble of the August 14, 2002 final rule, 67 FR 53182). HHS notes newer census data may
# change it; a deployment that uses a newer list passes its own `restricted`.
RESTRICTED_ZIP3 = frozenset(
    {
        "036", "059", "063", "102", "203", "556", "692", "790", "821",
        "823", "830", "831", "878", "879", "884", "890", "893",
    }
)  # fmt: skip

_ZIP = re.compile(r"\s*(\d{3})(?:\d\d(?:-?\d{4})?)?\s*")
_INTS = {Family.INT2: struct.Struct(">h"), Family.INT4: struct.Struct(">i"),
         Family.INT8: struct.Struct(">q")}  # fmt: skip


@dataclass(frozen=True)
class Zip3:
    """A ZIP code (``02134``, ``02134-1234``, ``021341234``) becomes its first three digits, or
    ``000`` for a restricted prefix. Integer columns (ZIPs stored as numbers lose their leading
    zeros) become the three-digit prefix as a number, 0 when restricted. Text that is not a ZIP
    code, and other types, fall back to NULL."""

    restricted: frozenset[str] = RESTRICTED_ZIP3
    name: ClassVar[str] = "zip3"

    def prefix(self, text: str) -> str | None:
        m = _ZIP.fullmatch(text)
        if m is None:
            return None
        return "000" if m[1] in self.restricted else m[1]

    def prefix_of_int(self, value: int) -> int | None:
        if 0 <= value <= 99_999:
            digits = f"{value:05d}"
        elif value <= 999_999_999:
            digits = f"{value:09d}"
        else:
            return None
        return 0 if digits[:3] in self.restricted else int(digits[:3])

    def compile(self, family: Family, fmt: Format, key: bytes) -> CellFn | None:
        if family is Family.TEXT:
            restricted = frozenset(p.encode() for p in self.restricted)

            def text(raw: bytes) -> bytes | None:
                if len(raw) == 5 and raw.isdigit():
                    return b"000" if raw[:3] in restricted else raw[:3]
                prefix = self.prefix(raw.decode("utf-8", "surrogateescape"))
                return None if prefix is None else prefix.encode()

            return cached(text)
        if is_json(family):
            return json_cell(lambda v: self.json_leaf(v, key), family, fmt)
        if family in INTEGERS:
            s = _INTS[family]
            if fmt == 0:

                def int_text(raw: bytes) -> bytes | None:
                    prefix = self.prefix_of_int(int(raw))
                    return None if prefix is None else str(prefix).encode()

                return int_text

            def int_binary(raw: bytes) -> bytes | None:
                prefix = self.prefix_of_int(s.unpack(raw)[0])
                return None if prefix is None else s.pack(prefix)

            return int_binary
        return None

    def json_leaf(self, value: str | int | float, key: bytes) -> Any:
        if isinstance(value, str):
            return self.prefix(value)
        if isinstance(value, int):
            return self.prefix_of_int(value)
        return None

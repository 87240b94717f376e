from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

from wardgate.masking.operators.base import CellFn, is_json, json_cell
from wardgate.masking.pgtypes import INTEGERS, Family, Format

_INT_BINARY = {Family.INT2: struct.Struct(">h"), Family.INT4: struct.Struct(">i"),
               Family.INT8: struct.Struct(">q")}  # fmt: skip


_ALNUM = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ALNUM_SET = frozenset(_ALNUM)


@functools.cache
def _tables(mask_char: str) -> bytes:
    """A bytes.translate table that turns ASCII letters and digits into `mask_char` (ASCII)."""
    table = bytearray(range(256))
    for c in _ALNUM:
        table[c] = ord(mask_char)
    return bytes(table)


@dataclass(frozen=True)
class Partial:
    """Keeps the last `keep` letters and digits and replaces the others with `mask_char`,
    keeping punctuation (``***-**-6789``). A value is shown only in part: when it has fewer
    than 2 x `keep` letters and digits, all of them are masked. Integers become their last
    `keep` digits (or NULL when that would show more than half the digits); other types NULL."""

    keep: int = 4
    mask_char: str = "*"
    name: ClassVar[str] = "partial"

    def __post_init__(self) -> None:
        if self.keep < 0 or len(self.mask_char) != 1:
            raise ValueError("partial needs keep >= 0 and a one-character mask_char")

    def mask_ascii(self, raw: bytes) -> bytes:
        total = len(raw) - len(raw.translate(None, _ALNUM))
        show = self.keep if total >= 2 * self.keep else 0
        cut = len(raw)
        while show and cut:
            cut -= 1
            if raw[cut] in _ALNUM_SET:
                show -= 1
        return raw[:cut].translate(self._table) + raw[cut:]

    @property
    def _table(self) -> bytes:
        return _tables(self.mask_char)

    def mask_text(self, text: str) -> str:
        chars = list(text)
        shown = 0
        total = sum(c.isalnum() for c in chars)
        show = self.keep if total >= 2 * self.keep else 0
        for i in range(len(chars) - 1, -1, -1):
            if chars[i].isalnum():
                if shown < show:
                    shown += 1
                else:
                    chars[i] = self.mask_char
        return "".join(chars)

    def mask_int(self, value: int) -> int | None:
        digits = len(str(abs(value)))
        return abs(value) % 10**self.keep if digits >= 2 * self.keep else None

    def compile(self, family: Family, fmt: Format, key: bytes) -> CellFn | None:
        if family is Family.TEXT:
            ascii_mask = self.mask_char.isascii()

            def text(raw: bytes) -> bytes | None:
                if ascii_mask and raw.isascii():
                    return self.mask_ascii(raw)
                decoded = raw.decode("utf-8", "surrogateescape")
                return self.mask_text(decoded).encode("utf-8", "surrogateescape")

            return text
        if is_json(family):
            return json_cell(lambda v: self.json_leaf(v, key), family, fmt)
        if family in INTEGERS:
            limit = _INT_BINARY[family]
            if fmt == 0:

                def int_text(raw: bytes) -> bytes | None:
                    masked = self.mask_int(int(raw))
                    return None if masked is None else str(masked).encode()

                return int_text

            def int_binary(raw: bytes) -> bytes | None:
                masked = self.mask_int(limit.unpack(raw)[0])
                return None if masked is None else limit.pack(masked)

            return int_binary
        return None

    def json_leaf(self, value: str | int | float, key: bytes) -> Any:
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, int):
            return self.mask_int(value)
        return None

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from wardgate.masking.operators.base import CellFn, constant, json_text
from wardgate.masking.pgtypes import Family, Format


@dataclass(frozen=True)
class Redact:
    """Text becomes `replacement` (a JSON string in JSON). No other type has a value that reads
    as "redacted", so every other type falls back to NULL."""

    replacement: str = "***"
    name: ClassVar[str] = "redact"

    def compile(self, family: Family, fmt: Format, key: bytes) -> CellFn | None:
        if family is Family.TEXT:
            return constant(self.replacement.encode())
        if family is Family.JSON or (family is Family.JSONB and fmt == 0):
            return constant(json_text(self.replacement))
        if family is Family.JSONB:
            return constant(b"\x01" + json_text(self.replacement))
        return None

    def json_leaf(self, value: str | int | float, key: bytes) -> Any:
        return self.replacement

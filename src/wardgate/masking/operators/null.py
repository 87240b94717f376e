from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from wardgate.masking.operators.base import CellFn, constant
from wardgate.masking.pgtypes import Family, Format


@dataclass(frozen=True)
class Null:
    """Every value becomes SQL NULL (a JSON null inside JSON)."""

    name: ClassVar[str] = "null"

    def compile(self, family: Family, fmt: Format, key: bytes) -> CellFn | None:
        return constant(None)

    def json_leaf(self, value: str | int | float, key: bytes) -> Any:
        return None

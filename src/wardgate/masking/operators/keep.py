from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from wardgate.masking.operators.base import CellFn
from wardgate.masking.pgtypes import Family, Format


def _same(raw: bytes) -> bytes | None:
    return raw


@dataclass(frozen=True)
class Keep:
    """The value passes unchanged: what a policy grants a role that may see an entity raw."""

    name: ClassVar[str] = "keep"

    def compile(self, family: Family, fmt: Format, key: bytes) -> CellFn | None:
        return _same

    def json_leaf(self, value: str | int | float, key: bytes) -> Any:
        return value

"""Masking free text: the detectors find spans, each span's entity picks an operator, and the
operator's text form replaces the span. `ContentScan` is the same as an operator, for result
columns whose lineage is unknown or which hold notes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from wardgate.masking.detectors import Scanner, Span
from wardgate.masking.entities import CATALOG, Entity
from wardgate.masking.operators import CellFn, Operator, Redact
from wardgate.masking.operators.base import is_json, json_cell
from wardgate.masking.pgtypes import Family, Format


class TextMasker:
    """Replaces every identifier the scanner finds in a text. `operators` overrides the entity
    catalog's defaults; a span whose operator yields NULL (null, or no text form) becomes the
    tag ``[ENTITY]``, since a NULL cannot stand inside a text. `counts` adds up what was masked,
    by entity, for the audit record; the caller resets it when it wants."""

    def __init__(
        self,
        key: bytes,
        operators: Mapping[Entity, Operator] | None = None,
        scanner: Scanner | None = None,
    ) -> None:
        self.scanner = scanner or Scanner()
        self.counts: Counter[Entity] = Counter()
        chosen: dict[Entity, Operator] = {e: info.default_operator for e, info in CATALOG.items()}
        chosen.update(operators or {})
        self._cells: dict[Entity, CellFn] = {}
        for entity, operator in chosen.items():
            cell = operator.compile(Family.TEXT, 0, key)
            self._cells[entity] = cell or Redact(f"[{entity.value}]").compile(Family.TEXT, 0, key)  # type: ignore[assignment]

    def replacement(self, span: Span, text: str) -> str:
        out = self._cells[span.entity](span.text(text).encode("utf-8", "surrogatepass"))
        if out is None:
            return f"[{span.entity.value}]"
        return out.decode("utf-8", "surrogateescape")

    def mask(self, text: str) -> str:
        spans = self.scanner.scan(text)
        if not spans:
            return text
        return self.apply(text, spans)

    def mask_many(self, texts: Sequence[str]) -> list[str]:
        """`mask` of each text, scanning them as one (see `Scanner.scan_many`)."""
        return [
            self.apply(text, spans) if spans else text
            for text, spans in zip(texts, self.scanner.scan_many(texts), strict=True)
        ]

    def apply(self, text: str, spans: list[Span]) -> str:
        """`text` with the given (sorted, non-overlapping) spans replaced."""
        pieces = []
        position = 0
        for span in spans:
            pieces.append(text[position : span.start])
            pieces.append(self.replacement(span, text))
            position = span.end
            self.counts[span.entity] += 1
        pieces.append(text[position:])
        return "".join(pieces)


@dataclass(frozen=True, eq=False)
class ContentScan:
    """An operator that masks what the detectors find inside text (and inside every JSON
    string), and leaves the rest of the value as it was. Other types fall back to NULL: a
    number or a date cannot be partly masked."""

    masker: TextMasker = field(repr=False)
    name: ClassVar[str] = "scan"

    def compile(self, family: Family, fmt: Format, key: bytes) -> CellFn | None:
        if family is Family.TEXT:
            mask = self.masker.mask

            def text(raw: bytes) -> bytes | None:
                decoded = raw.decode("utf-8", "surrogateescape")
                return mask(decoded).encode("utf-8", "surrogateescape")

            return text
        if is_json(family):
            return json_cell(lambda v: self.json_leaf(v, key), family, fmt)
        return None

    def json_leaf(self, value: str | int | float, key: bytes) -> Any:
        return self.masker.mask(value) if isinstance(value, str) else value

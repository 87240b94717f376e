"""What a detector finds: spans of text that hold an entity, with a score in 0..1."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol

from wardgate.masking.entities import Entity


class Span(NamedTuple):
    entity: Entity
    start: int
    end: int
    score: float
    detector: str = ""

    def text(self, source: str) -> str:
        return source[self.start : self.end]


class Detector(Protocol):
    """Finds candidate spans in a text; spans of different detectors may overlap (the scanner
    keeps the best of overlapping ones)."""

    name: str

    def find(self, text: str) -> Iterable[Span]: ...


def words(text: str) -> list[str]:
    """The words of `text`: long word lists read better as one string."""
    return text.split()

"""Values the target itself holds in labelled columns, found again in free text.

The gateway knows which columns hold names (their labels), so it can read the names a target
stores and look for them in the notes of the same target. That finds what no dictionary or
context rule can: a surname that is also an English word, written alone ("MRN 90296248
(Short)"), or in capitals. It over-masks the word where it is only a word, which is the safe side.
The set is replaced whole when the target's values are read again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from wardgate.masking.detectors.base import Span
from wardgate.masking.entities import Entity

_WORD = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)
MIN_LENGTH = 2


class KnownValues:
    """A detector of one entity's stored values, matched as whole words without regard to case."""

    def __init__(self, entity: Entity, name: str = "known") -> None:
        self.entity = entity
        self.name = f"{name}:{entity.value}"
        self._values: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self._values)

    def replace(self, values: Iterable[str]) -> None:
        words = set()
        for value in values:
            for word in _WORD.findall(value):
                if len(word) >= MIN_LENGTH:
                    words.add(word.casefold())
        self._values = frozenset(words)

    def find(self, text: str) -> Iterator[Span]:
        values = self._values
        if not values:
            return
        entity, name = self.entity, self.name
        for match in _WORD.finditer(text):
            if match.group(0).casefold() in values:
                yield Span(entity, match.start(), match.end(), 0.9, name)

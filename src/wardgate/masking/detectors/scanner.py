"""Runs the detectors over a text and keeps non-overlapping spans: the best-scored (then the
longest) wins an overlap, and what a loser covered outside the winner is kept as its own span,
so that a partial overlap never leaves part of an identifier unmasked.

The detectors read a view of the text of the same length, so that their spans fit the text:
escapes of JSON strings, array and row literals (``\\n``, ``\\"``, ``\\u00e9``) become spaces, which
would otherwise glue a word to the letter after the backslash ("\\nJohn"). A text in one case
only (what ``upper()`` or ``lower()`` returns) is read a second time title-cased, for the
detectors that go by capitals (names, streets, cities, written dates).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from wardgate.masking.detectors import compiled
from wardgate.masking.detectors.base import Detector, Span
from wardgate.masking.detectors.ids import DEFAULT_MRN_FORMATS, MrnFormat
from wardgate.masking.detectors.names import NameDetector
from wardgate.masking.detectors.numbers import NumberDetector
from wardgate.masking.detectors.patterns import NetDetector, WrittenDateDetector


@dataclass(frozen=True)
class ScannerConfig:
    mrn_formats: tuple[MrnFormat, ...] = DEFAULT_MRN_FORMATS
    min_score: float = 0.5
    names: bool = True
    extra: tuple[Detector, ...] = field(default=())  # e.g. an NER hook (see ner.py)


def default_detectors(config: ScannerConfig) -> list[Detector]:
    detectors: list[Detector] = [
        NumberDetector(config.mrn_formats),
        NetDetector(),
        WrittenDateDetector(),
    ]
    if config.names:
        detectors.append(NameDetector())
    return detectors + list(config.extra)


class Scanner:
    def __init__(self, config: ScannerConfig | None = None) -> None:
        self.config = config or ScannerConfig()
        self.detectors = default_detectors(self.config)

    def scan(self, text: str) -> list[Span]:
        """Spans of `text` that hold an entity, sorted by start, none overlapping."""
        view = unescaped(text)
        found = self._found(view) + self._found_titled(view)
        return resolve(found) if found else found

    def scan_many(self, texts: Sequence[str]) -> list[list[Span]]:
        """`scan` of each text, done as one scan of the texts joined: the same spans, for less
        per-call work (a batch of cells of one result column, say). Whether a text is read a
        second time title-cased is decided for each text, not for the batch: an upper-cased
        note among mixed-case ones is still read title-cased."""
        if len(texts) < 2:
            return [self.scan(t) for t in texts]
        starts = []
        position = 0
        for text in texts:
            starts.append(position)
            position += len(text) + len(_SEPARATOR)
        found = self._found(unescaped(_SEPARATOR.join(texts)))
        for text, base in zip(texts, starts, strict=True):
            titled = self._found_titled(unescaped(text))
            found += [s._replace(start=s.start + base, end=s.end + base) for s in titled]
        results: list[list[Span]] = [[] for _ in texts]
        for span in resolve(found) if found else found:
            i = bisect.bisect_right(starts, span.start) - 1
            base, limit = starts[i], starts[i] + len(texts[i])
            if span.end > limit:  # cannot happen with the built-in detectors; an extra might
                span = span._replace(end=limit)
            results[i].append(span._replace(start=span.start - base, end=span.end - base))
        return results

    def _found(self, view: str) -> list[Span]:
        floor = self.config.min_score
        return [s for d in self.detectors for s in d.find(view) if s.score >= floor]

    def _found_titled(self, view: str) -> list[Span]:
        """What the detectors find in a text in one case only, read title-cased."""
        if not (view.isupper() or view.islower()):
            return []
        titled = view.title()
        return self._found(titled) if len(titled) == len(view) else []


_ESCAPE = re.compile(r"\\(?:u[0-9A-Fa-f]{4}|.)", re.DOTALL)


def _spaces(m: re.Match[str]) -> str:
    return " " * (m.end() - m.start())


def unescaped(text: str) -> str:
    """`text` with every backslash escape made spaces of its length."""
    return _ESCAPE.sub(_spaces, text) if "\\" in text else text


_SEPARATOR = "\n\x1f\n"  # no detector's pattern crosses it, nor looks back over it for a label


def _start(span: Span) -> int:
    return span.start


def _outer_first(span: Span) -> tuple[int, int, float]:
    return span.start, -span.end, -span.score


def resolve(spans: Iterable[Span]) -> list[Span]:
    """The spans kept from overlapping ones, sorted by start (see the module's docstring).
    Compiled where ``_scan`` was built (`_resolve`, the same answers)."""
    return _resolve(spans)


def resolve_python(spans: Iterable[Span]) -> list[Span]:
    """`resolve` in Python: the reference of ``_scan.resolve``."""
    ordered = sorted(spans, key=_start)
    if all(ordered[i - 1].end <= ordered[i].start for i in range(1, len(ordered))):
        return ordered  # the common case: nothing overlaps
    # the next most common: a span inside one as good or better (a name found by the dictionary
    # and as a stored value, a surname inside a street or an e-mail address), which the full
    # resolution below would drop too; one pass decides it
    nested = sorted(ordered, key=_outer_first)
    kept: list[Span] = [nested[0]]
    for span in nested[1:]:
        last = kept[-1]
        if span.start < last.end:
            if span.end <= last.end and span.score <= last.score:
                continue
            break
        kept.append(span)
    else:
        return kept
    ranked = sorted(ordered, key=lambda s: (-s.score, s.start - s.end, s.start))
    starts: list[int] = []
    kept = []  # sorted by start, parallel to `starts`
    for span in ranked:
        for piece in _uncovered(span, starts, kept):
            at = bisect.bisect_left(starts, piece.start)
            starts.insert(at, piece.start)
            kept.insert(at, piece)
    return kept


def _uncovered(span: Span, starts: list[int], kept: list[Span]) -> list[Span]:
    at = bisect.bisect_left(starts, span.start)
    if at and kept[at - 1].end > span.start:
        at -= 1
    pieces = []
    position = span.start
    while at < len(kept) and kept[at].start < span.end:
        if kept[at].start > position:
            pieces.append((position, kept[at].start))
        position = max(position, kept[at].end)
        at += 1
    if position < span.end:
        pieces.append((position, span.end))
    if pieces == [(span.start, span.end)]:
        return [span]
    return [Span(span.entity, a, b, span.score, span.detector) for a, b in pieces if b - a >= 2]


_resolve: Callable[[Iterable[Span]], list[Span]] = (
    compiled.fast.resolve if compiled.COMPILED else resolve_python
)

_default: Scanner | None = None


def scan(text: str) -> list[Span]:
    """`Scanner().scan(text)` with the default configuration, built once."""
    global _default
    if _default is None:
        _default = Scanner()
    return _default.scan(text)

"""Values the target itself holds in labelled columns, found again in its free text.

The gateway knows which columns hold names, streets, cities, MRNs, member ids, e-mail addresses
and phone numbers (their labels), so it reads the values and looks for them in the notes of the
same target. That finds what no dictionary, shape or context rule can: a surname that is also an
English word written alone ("MRN 90296248 (Short)"), a street with a suffix no list has, a city,
a member id in lower case. It over-masks a value where it is only a word, which is the safe side.

Matching is on keys, not on the text as written: lower case, every character that is not a
letter or digit a space. So "7488 Weeks Divide" is found as "7488 WEEKS  divide" or
"7488 Weeks\\nDivide", and "555-201-4477" as "(555) 201.4477". A value of digit groups is also
keyed with its separators removed ("5552014477"). Names are keyed word by word (a note writes
the first and last name apart), everything else whole.

The engine is Hyperscan's literal matcher: every key is a literal " key " (the spaces make it a
whole-word match), all compiled into one database and found in one pass over the note's key
bytes, in C. Compiling takes seconds for a large registry (3 s of CPU for 60,000 keys), in the
catalog's worker thread; the old database keeps serving until the new one is ready. Where
Hyperscan cannot run (the wheel missing for the platform, a CPU without SSSE3) the same keys are
looked up word n-gram by n-gram in a Python set: the same answers, about ten times slower.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from wardgate.masking.detectors.base import Span
from wardgate.masking.entities import Entity

log = logging.getLogger(__name__)

hyperscan: Any
try:
    import hyperscan
except ImportError:  # pragma: no cover - exercised where the wheel is missing
    hyperscan = None

ENTITIES = (
    Entity.NAME, Entity.GEO, Entity.MRN, Entity.HEALTH_PLAN_ID, Entity.EMAIL, Entity.PHONE,
    Entity.FAX, Entity.ACCOUNT,
)  # fmt: skip
"""The labels whose stored values are looked for. Not ZIP codes or dates: five digits or a date
alone are too often something else, and their detectors find them by shape and context."""
MIN_LENGTH = 2  # a name word shorter than this is an initial, not a name
MAX_WORDS = 8  # longer values are not looked for (the fallback tries n-grams up to this)
SCORE = 0.9

# ASCII letters and digits stay (lower-cased), every other ASCII byte becomes a space, bytes
# from 0x80 (UTF-8 of non-ASCII letters) stay as they are: the key text has the note's length.
_KEY_BYTES = bytes(
    c + 32 if 65 <= c <= 90 else c if (48 <= c <= 57 or 97 <= c <= 122 or c >= 128) else 32
    for c in range(256)
)
_SPACES = re.compile(rb"  +")
# The words of a value or a note, as the key bytes see them: ASCII letters and digits, and every
# non-ASCII character (which the bytes cannot tell apart).
_WORD = re.compile("[a-z0-9\u0080-\U0010ffff]+")


def key_of(value: str) -> str:
    """The key a value is stored and found under: lower case, words joined by one space."""
    return " ".join(_WORD.findall(value.lower()))


def keys_for(entity: Entity, value: str) -> list[str]:
    """The keys one stored value is looked for under."""
    if entity is Entity.NAME:
        return [w for w in key_of(value).split() if len(w) >= MIN_LENGTH and not w.isdigit()]
    key = key_of(value)
    if not key or len(key) < 3 or key.count(" ") >= MAX_WORDS:
        return []
    keys = [key]
    if " " in key and key.replace(" ", "").isdigit():
        keys.append(key.replace(" ", ""))  # "555-201-4477" also as "5552014477"
    return keys


@dataclass(frozen=True)
class _Compiled:
    entities: tuple[Entity, ...]  # by pattern id
    lengths: tuple[int, ...]  # key length in bytes, by pattern id
    database: Any  # a hyperscan.Database, or None for the Python fallback
    keys: Mapping[str, Entity]  # the fallback's lookup table
    longest: int  # most words in a key
    # one scratch space per database: scans from two threads (the event loop and a worker)
    # take turns
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False)


_EMPTY = _Compiled((), (), None, {}, 0)


class KnownValues:
    """A detector of the values one target stores in its labelled columns, for any entity."""

    def __init__(self, name: str = "known") -> None:
        self.name = name
        self._compiled = _EMPTY

    def __len__(self) -> int:
        """How many keys are looked for."""
        return len(self._compiled.keys)

    @property
    def engine(self) -> str:
        return "python" if self._compiled.database is None else "hyperscan"

    def replace(self, values: Mapping[Entity, Iterable[str]], *, python: bool = False) -> None:
        """Replaces every value at once with the stored `values` of each entity. `python`
        forces the fallback engine (for tests and the benchmark)."""
        keys: dict[str, Entity] = {}
        for entity, stored in values.items():
            for value in stored:
                for key in keys_for(entity, value):
                    keys.setdefault(key, entity)  # the first label wins a key two columns hold
        python = python or hyperscan is None
        current = self._compiled
        if keys == current.keys and python == (current.database is None):
            return  # a catalog reload that changed nothing: no recompiling
        self._compiled = _compile(keys, python=python)

    def find(self, text: str) -> Iterable[Span]:
        compiled = self._compiled
        if compiled.database is not None:
            return _find_hyperscan(compiled, text, self.name)
        if not compiled.keys:
            return ()
        return _find_python(compiled, text, self.name)


def _compile(keys: dict[str, Entity], *, python: bool) -> _Compiled:
    if not keys:
        return _EMPTY
    longest = max(k.count(" ") for k in keys) + 1
    if python:
        return _Compiled((), (), None, keys, longest)
    literals: list[bytes] = []
    entities: list[Entity] = []
    for key, entity in keys.items():
        for variant in _variants(key):
            literals.append(f" {variant} ".encode())
            entities.append(entity)
    try:
        database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        database.compile(
            expressions=literals, ids=list(range(len(literals))), elements=len(literals),
            flags=0, literal=True,
        )  # fmt: skip
    except hyperscan.error as exc:  # a CPU Hyperscan does not run on (it needs SSSE3)
        log.warning("known values: Hyperscan cannot compile here (%s); using Python", exc)
        return _Compiled((), (), None, keys, longest)
    return _Compiled(tuple(entities), tuple(len(b) for b in literals), database, keys, longest)


def _variants(key: str) -> list[str]:
    """A key of digit groups with each of its (up to three) separators one space or two:
    punctuation next to a space ("(555) 201-4477") is two spaces in the key text, and matching
    them as written spares collapsing every note. (Words are written with one separator: a
    street or a city with a comma inside is not one.) A note with runs of whitespace (or line
    breaks) has its runs of spaces collapsed before the scan instead."""
    words = key.split(" ")
    if not 2 <= len(words) <= 4 or not key.replace(" ", "").isdigit():
        return [key]
    variants = [words[0]]
    for word in words[1:]:
        variants = [f"{v}{gap}{word}" for v in variants for gap in (" ", "  ")]
    return variants


def _lower(text: str) -> str:
    lowered = text.lower()
    if len(lowered) != len(text):  # a letter whose lower case is longer ("İ"): keep it as is
        lowered = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    return lowered


def _key_text(lowered: str) -> tuple[bytes, list[int], list[int]]:
    """The lower-cased note as key bytes, a space before and after it. For a note with runs of
    whitespace, runs of spaces are made one, and the answer says where: `starts[i]` is a
    position in the collapsed bytes and `removed[i]` how many bytes were removed before it."""
    raw = b" " + lowered.encode("utf-8", "surrogatepass").translate(_KEY_BYTES) + b" "
    if (
        "  " not in lowered
        and "\t" not in lowered
        and "\r" not in lowered
        and ("\n" not in lowered or _LINE_BREAK_RUN.search(lowered) is None)
    ):
        return raw, _NONE, _NONE  # one whitespace character at a time: as it is
    starts: list[int] = []
    removed: list[int] = []
    total = 0
    for m in _SPACES.finditer(raw):
        total += m.end() - m.start() - 1
        starts.append(m.end() - total)
        removed.append(total)
    return _SPACES.sub(b" ", raw), starts, removed


_LINE_BREAK_RUN = re.compile(r"[ \t\r\n]\n|\n[ \t\r\n]")  # not \s: "\x1f" is one
_NONE: list[int] = []  # shared, never written


def _original(position: int, starts: list[int], removed: list[int]) -> int:
    """The byte offset in the padded uncollapsed key text of a collapsed position."""
    i = bisect.bisect_right(starts, position)
    return position + (removed[i - 1] if i else 0)


def _on_match(
    pattern: int, _start: int, end: int, _flags: int, hits: list[tuple[int, int]]
) -> None:
    hits.append((pattern, end))


def _find_hyperscan(compiled: _Compiled, text: str, name: str) -> list[Span]:
    lowered = text.lower()
    if len(lowered) != len(text):
        lowered = _lower(text)
    raw, starts, removed = _key_text(lowered)
    hits: list[tuple[int, int]] = []
    with compiled.lock:
        compiled.database.scan(raw, match_event_handler=_on_match, context=hits)
    if not hits:
        return []
    entities, lengths = compiled.entities, compiled.lengths
    if not starts and lowered.isascii():  # the common case: key bytes and text line up
        # the literal is " key ": the value is what lies between its two spaces
        new = tuple.__new__  # Span(...) runs a Python-level __new__: a third of the time
        return [new(Span, (entities[p], e - lengths[p], e - 2, SCORE, name)) for p, e in hits]
    found = [
        (
            entities[pattern],
            _original(end - lengths[pattern] + 1, starts, removed) - 1,
            _original(end - 2, starts, removed),
        )
        for pattern, end in hits
    ]
    if lowered.isascii():
        return [Span(entity, a, b, SCORE, name) for entity, a, b in found]
    # byte offsets to characters: decoded piece by piece, in order, once over the note
    encoded = lowered.encode("utf-8", "surrogatepass")
    chars: dict[int, int] = {}
    byte = char = 0
    for offset in sorted({x for _, a, b in found for x in (a, b)}):
        char += len(encoded[byte:offset].decode("utf-8", "surrogatepass"))
        byte = offset
        chars[offset] = char
    return [Span(entity, chars[a], chars[b], SCORE, name) for entity, a, b in found]


def _find_python(compiled: _Compiled, text: str, name: str) -> Iterator[Span]:
    keys, longest = compiled.keys, compiled.longest
    words = [(m.start(), m.end(), m[0]) for m in _WORD.finditer(_lower(text))]
    for i in range(len(words)):
        joined = ""
        for j in range(i, min(len(words), i + longest)):
            joined = words[j][2] if j == i else f"{joined} {words[j][2]}"
            for key in (joined, joined.replace(" ", "")) if j > i else (joined,):
                entity = keys.get(key)
                if entity is not None:
                    yield Span(entity, words[i][0], words[j][1], SCORE, name)
                    break

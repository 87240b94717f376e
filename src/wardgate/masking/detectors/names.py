"""Person names from dictionaries with context rules.

A capitalised word is a name when it is in the first- or last-name list (package data generated
from public-domain US name statistics, see tools/generate_masking_names.py) and is not also a
common word or medical term (common_words.txt) -- unless context vouches for it: a title
(Mr., Dr.), "patient"/"pt", a relation ("daughter"), a neighbouring name, or a verb that
people do ("Hunter reports"). A word in neither list counts only right after a title or "patient",
or as the word after a known first name. Eponyms ("Crohn's disease", "Foley
catheter") never count.

The lists are compiled into one regular expression shaped as a trie, so the text is scanned in C
and Python sees only the names (not every capitalised word).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from functools import cache
from importlib.resources import files

from wardgate.masking.detectors import compiled
from wardgate.masking.detectors.base import Span, words
from wardgate.masking.entities import Entity

_TOKEN = re.compile(r"[A-Z][a-z]*(?:['\u2019-]?[A-Z][a-z]+)*\b")
_COMPOUND = re.compile(r"(?:Mc|Mac|O['\u2019]|D['\u2019]|De|Di|La|Le|Van)[A-Z][a-z]+\b")
_TITLES = ("Mr", "Mrs", "Ms", "Mx", "Miss", "Dr", "Prof", "Rev")
_PATIENT = ("Pt", "pt", "PT", "Patient", "patient")
# Words after which a name that is also a common word ("Grace", "Long") is taken for a name.
_WEAK_VOUCHING = frozenset(
    words(
        "for with to by w/ cc from called signed attending provider about mr mrs ms mx miss dr "
        "prof rev pt patient pt's patient's mother father daughter son wife husband sister brother "
        "spouse partner caregiver guardian grandmother grandfather aunt uncle niece nephew "
        "friend neighbor contact name named dear"
    )
)
_EPONYM_AFTER = re.compile(
    r"(?:'s|s')? (?i:disease|syndrome|palsy|sign|test|score|scale|stage|catheter|line|tube"
    r"|monitor|maneuver|manoeuvre|fracture|criteria|classification|procedure|esophagus|reflex"
    r"|node|cyst|ulcer|operation|repair|lymphoma|phenomenon|law|method|index|formula|effect)\b"
)
_VERB_AFTER = re.compile(
    r"(?:'s)? (?:reports|reported|states|stated|denies|denied|called|presents|presented"
    r"|complains|verbalized|agrees|agreed|declined|returns|returned|arrived|was seen|is a)\b"
)
_NOT_NAMES = frozenset((*_TITLES, *_PATIENT, "Dear", "Signed", "Attending", "Provider"))
_INITIAL_GAP = re.compile(r" [A-Z]\.? ")
_TRAILING_INITIAL = re.compile(r" [A-Z]\.?(?![\w'])")


def _load(name: str) -> frozenset[str]:
    text = files("wardgate.masking.detectors").joinpath("data", name).read_text("utf-8")
    return frozenset(
        _key(line.strip()) for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def _key(word: str) -> str:
    return word.replace("'", "").replace("\u2019", "").replace("-", "").lower()


@cache
def name_lists() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """First names, last names and the names that are also common words (lower-cased)."""
    return _load("first_names.txt"), _load("last_names.txt"), _load("common_words.txt")


class _Node(dict[str, "_Node"]):
    pass


def trie_pattern(words: list[str]) -> str:
    """One regular expression matching exactly `words`, shaped as a trie: the engine checks
    one character per level instead of trying every word."""
    root = _Node()
    for word in words:
        node = root
        for c in word:
            node = node.setdefault(c, _Node())
        node[""] = _Node()

    def emit(node: _Node) -> str:
        branches = [re.escape(c) + emit(sub) for c, sub in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(root)


@cache
def _compiled(listed: frozenset[str]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    names = sorted({n[:1].upper() + n[1:] for n in listed})
    vouching = [*_TITLES, *_PATIENT]
    anchors = re.compile(trie_pattern(names) + r"\b")
    vouched = re.compile(
        "(?:" + trie_pattern(sorted(vouching)) + r")(?:'s)?\.?:? ((?:[A-Z][a-z]+\.? ?){1,2})"
    )
    return anchors, vouched


class NameDetector:
    name = "names"

    def __init__(
        self,
        first: frozenset[str] | None = None,
        last: frozenset[str] | None = None,
        common: frozenset[str] | None = None,
    ) -> None:
        first_d, last_d, common_d = name_lists()
        self.first = first if first is not None else first_d
        self.last = last if last is not None else last_d
        self.common = common if common is not None else common_d
        self.anchors, self.vouched = _compiled(self.first | self.last)
        # the kind of every listed name as the trie matches it (capitalised), decided once
        self._kinds: dict[str, str] = {}
        for key in self.first | self.last:
            word = key[:1].upper() + key[1:]
            self._kinds[word] = "w" if key in self.common or len(key) < 3 else "s"
        self._first_words = frozenset(k[:1].upper() + k[1:] for k in self.first)
        self._anchors: Callable[[str], list[tuple[int, int, str, bool]]] = self.anchors_python
        if compiled.COMPILED and all(
            k.isascii() and k.isalpha() and k.islower() for k in self.first | self.last
        ):
            # the compiled pass reads the trie's match as the capital and every lower-case
            # letter after it, which holds for lists of plain lower-case words (the built-in ones)
            self._anchors = functools.partial(_compiled_anchors, self._kinds)

    def anchors_python(self, text: str) -> list[tuple[int, int, str, bool]]:
        """The listed names in `text` that may be part of a name: (start, end, kind, False).
        The reference of ``_scan.name_anchors``."""
        anchors = []
        kinds = self._kinds
        for m in self.anchors.finditer(text):
            start = m.start()
            if start and (text[start - 1].isalnum() or text[start - 1] in "'\u2019"):
                continue
            end = m.end()
            if end < len(text) and text[end] in "'\u2019-" and text[end + 1 : end + 2].isupper():
                continue  # part of O'Brien or Smith-Jones: _COMPOUND and the token below
            anchors.append((start, end, kinds.get(m[0]) or self._kind(m[0]), False))
        return anchors

    def _kind(self, word: str) -> str:
        """s: a name that is no common word, w: a name that is one, u: unknown."""
        key = word.lower()
        if "'" in key or "-" in key or "\u2019" in key:
            key = _key(word)
        if key in self.first or key in self.last:
            return "w" if key in self.common or len(word) < 3 else "s"
        return "u"

    def find(self, text: str) -> Iterator[Span]:
        # anchors: (start, end, kind, strongly vouched)
        found = {a[0]: a for a in self._anchors(text)}
        if (
            "'" in text
            or "\u2019" in text
            or "Mc" in text
            or "Mac" in text
            or " D" in text
            or " L" in text
            or " V" in text
        ):
            for m in _COMPOUND.finditer(text):
                if self._kind(m[0]) != "u":
                    found[m.start()] = (m.start(), m.end(), self._kind(m[0]), False)
        for m in self.vouched.finditer(text):
            if m.start() and text[m.start() - 1].isalnum():
                continue  # "Capt Smith" is not "pt Smith"
            position = m.start(1)
            for word in m[1].split(" "):
                token = word.rstrip(".")
                if not token:
                    break
                if token in _NOT_NAMES:
                    pass  # "Patient Ms Smith": the title is no part of the name
                elif len(token) > 1 or word.endswith("."):
                    kind = self._kind(token) if len(token) > 1 else "i"
                    found[position] = (position, position + len(token), kind, True)
                position += len(word) + 1
        if not found:
            return
        anchors = sorted(found.values())
        run = [anchors[0]]
        for anchor in anchors[1:]:
            gap_start, gap_end = run[-1][1], anchor[0]
            gap = text[gap_start:gap_end]
            if (
                gap == " "
                or (gap == ", " and self._last_first(text, run[-1], anchor))
                or (len(gap) <= 4 and _INITIAL_GAP.fullmatch(gap))
            ):
                run.append(anchor)
                continue
            yield from self._judge(text, run)
            run = [anchor]
        yield from self._judge(text, run)

    def _last_first(
        self, text: str, left: tuple[int, int, str, bool], right: tuple[int, int, str, bool]
    ) -> bool:
        """ "Smith, Kathleen": a last name, a comma, a first name."""
        return (
            left[2] in "sw"
            and right[2] in "sw"
            and _key(text[left[0] : left[1]]) in self.last
            and _key(text[right[0] : right[1]]) in self.first
        )

    def _judge(self, text: str, run: list[tuple[int, int, str, bool]]) -> Iterator[Span]:
        if len(run) == 1:  # the common case, without the bookkeeping of longer runs
            start, end, kind, vouched = run[0]
            if kind == "i" or (
                not vouched and text[end : end + 1] in (" ", "'") and _EPONYM_AFTER.match(text, end)
            ):
                return
            strong = 1 if kind == "s" else 0
            weak = 1 if kind == "w" else 0
            last_word = text[start:end]
        else:
            run = [a for a in run if a[3] or not _EPONYM_AFTER.match(text, a[1])]
            while run and run[0][2] == "i":
                run.pop(0)
            if not run:
                return
            start, end = run[0][0], run[-1][1]
            kinds = [a[2] for a in run]
            strong, weak = kinds.count("s"), kinds.count("w")
            vouched = any(a[3] for a in run)
            last_word = text[run[-1][0] : run[-1][1]]
        if (
            strong == 1
            and weak == 0
            and end - start == len(last_word)
            and text[end : end + 1] == " "
            and last_word in self._first_words
        ):
            following = _TOKEN.match(text, end + 1)
            if (
                following is not None
                and self._kind(following[0]) == "u"
                and not _EPONYM_AFTER.match(text, following.end())
            ):
                end = following.end()  # a known first name and an unknown surname
                strong += 1
        if strong and start > 2 and text[start - 1] == " " and run[0][2] == "s":
            # an unknown capitalised word before a known last name: a rare first name
            space = text.rfind(" ", max(0, start - 24), start - 1)
            before = text[space + 1 : start - 1]
            if (
                space >= 0  # not a sentence's first word (capitalised anyway); a text's may be,
                and (space == 0 or text[space - 1] not in ".:;!?")  # alone as in a batch
                and before[:1].isupper()
                and before.isalpha()
                and before not in _NOT_NAMES
                and self._kind(before) == "u"
                and _key(text[run[0][0] : run[0][1]]) in self.last
            ):
                start = space + 1
                strong += 1
        if vouched or (strong and strong + weak >= 2):
            score = 0.9
        elif strong:
            score = 0.75
        elif weak >= 2:
            score = 0.7
        elif weak and (_weakly_vouched(text, start) or _VERB_AFTER.match(text, end) is not None):
            score = 0.85
        elif weak and last_word in self._first_words and _TRAILING_INITIAL.match(text, end):
            score = 0.7  # "Amber S.": a first name and a last initial
        else:
            return
        if (
            text[end : end + 1] == " "
            and text[end + 1 : end + 2].isupper()
            and last_word in self._first_words
        ):
            initial = _TRAILING_INITIAL.match(text, end)
            if initial is not None:
                end = initial.end()
        yield Span(Entity.NAME, start, end, score, "names")


def _compiled_anchors(kinds: dict[str, str], text: str) -> list[tuple[int, int, str, bool]]:
    anchors: list[tuple[int, int, str, bool]] = compiled.fast.name_anchors(text, kinds)
    return anchors


def _weakly_vouched(text: str, start: int) -> bool:
    if start < 3 or text[start - 1] != " ":
        return False
    space = text.rfind(" ", max(0, start - 16), start - 1)
    word = text[space + 1 if space >= 0 else max(0, start - 16) : start - 1]
    return word.rstrip(".:,").lower() in _WEAK_VOUCHING

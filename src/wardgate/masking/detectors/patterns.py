"""Detectors anchored on a literal: "@" for e-mail, "://" and "www." for URLs, ":" for IPv6,
month names for written dates. Finding the anchor is a fast literal search; the full pattern
runs only where an anchor is. `Rule` and `PatternDetector` are the general form, for rules a
deployment adds (one regular expression and a check each)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from wardgate.masking.detectors.base import Span, words
from wardgate.masking.detectors.labels import label_before
from wardgate.masking.entities import Entity

Check = Callable[[re.Match[str], str], tuple[Entity, float] | None]


@dataclass(frozen=True)
class Rule:
    """`pattern` finds candidates; `check` (given the match and the whole text) confirms one and
    decides its entity and score; without a check every match is (`entity`, `score`). The span
    is `group` of the match. A pattern that starts with a literal or a character class scans
    fastest; one that starts with a look-behind or ``\\b`` tries every position."""

    name: str
    entity: Entity
    pattern: re.Pattern[str]
    score: float = 0.85
    check: Check | None = None
    group: int | str = 0


class PatternDetector:
    def __init__(self, name: str, rules: tuple[Rule, ...]) -> None:
        self.name = name
        self.rules = rules

    def find(self, text: str) -> Iterator[Span]:
        for rule in self.rules:
            check, group = rule.check, rule.group
            for m in rule.pattern.finditer(text):
                found = (rule.entity, rule.score) if check is None else check(m, text)
                if found is not None:
                    yield Span(found[0], m.start(group), m.end(group), found[1], rule.name)


_AT = re.compile("@")
_LOCAL = re.compile(r"[A-Za-z0-9._%+-]{1,64}$")
_DOMAIN = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}"
    r"[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])"
)
_URL = re.compile(r"(?:https?://|ftp://|www\.|HTTPS?://|WWW\.)[^\s<>\"'`()\[\]{}]+")
_COLON = re.compile(":")
_HEX = frozenset("0123456789abcdefABCDEF:.")
_IPV6 = re.compile(r"[0-9A-Fa-f:]{2,39}(?:\.\d{1,3}){0,3}")


class NetDetector:
    """E-mail addresses, URLs and IP version 6 addresses (version 4 is a number shape)."""

    name = "net"

    def find(self, text: str) -> Iterator[Span]:
        for at in _AT.finditer(text):
            i = at.start()
            local = _LOCAL.search(text, max(0, i - 64), i)
            domain = _DOMAIN.match(text, i + 1)
            if local is None or domain is None:
                continue
            start = local.start()
            while start < i and text[start] == ".":
                start += 1
            name = text[start:i]
            if name and not name.endswith(".") and ".." not in name:
                yield Span(Entity.EMAIL, start, domain.end(), 0.95, "email")
        for m in _URL.finditer(text):
            start, end = m.span()
            while text[end - 1] in ".,;:!?":
                end -= 1
            url = text[start:end]
            try:
                host = urlsplit(url if "://" in url else "http://" + url).hostname
            except ValueError:
                continue
            if host and "." in host:
                yield Span(Entity.URL, start, end, 0.9, "url")
        last = -1
        for colon in _COLON.finditer(text):
            i = colon.start()
            if i < last:
                continue
            start = i
            while start > 0 and text[start - 1] in _HEX and i - start < 40:
                start -= 1
            if start and (text[start - 1].isalnum() or text[start - 1] == "_"):
                continue
            v6 = _IPV6.match(text, start)
            if v6 is None:
                continue
            last = v6.end()
            candidate = v6[0].rstrip(".:")
            if candidate.count(":") < 2 or (last < len(text) and text[last].isalnum()):
                continue
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            yield Span(Entity.IP, start, start + len(candidate), 0.85, "ipv6")


_MONTH = re.compile(
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\b"
)
_AFTER_MONTH = re.compile(r"\.? ?(?:(\d{1,2})(?:st|nd|rd|th)?\b)?(?:,? ?((?:1[89]|20)\d\d)\b)?")
_DAY_BEFORE = re.compile(r"(\d{1,2})(?:st|nd|rd|th)? (?:of )?$")
_MONTH_NUMBER = {
    name: i + 1 for i, name in enumerate(words("jan feb mar apr may jun jul aug sep oct nov dec"))
}


class WrittenDateDetector:
    """Dates written with month names: "March 3, 2024", "Mar 3", "3 March 2024", "March 2024".
    "May" needs a day and a date word before it, being a verb more often than a month."""

    name = "written_dates"

    def find(self, text: str) -> Iterator[Span]:
        for m in _MONTH.finditer(text):
            start = m.start()
            if start and text[start - 1].isalnum():
                continue
            month = _MONTH_NUMBER[m[0][:3].lower()]
            after = _AFTER_MONTH.match(text, m.end())
            day_after = after[1] if after is not None and after[1] else None
            year = after[2] if after is not None and after[2] else None
            end = after.end() if after is not None and (day_after or year) else m.end()
            day_before = _DAY_BEFORE.search(text, max(0, start - 8), start)
            if day_before and not day_after:
                start = day_before.start()
                day = int(day_before[1])
            elif day_after:
                day = int(day_after)
            else:
                day = 0
            if not day and not year:
                continue
            if day and not _plausible(month, day):
                continue
            if m[0] == "May" and not year and label_before(text, start) != "date":
                continue
            score = 0.9 if day and year else 0.7
            yield Span(Entity.DATE, start, end, score, "written_date")


def _plausible(month: int, day: int) -> bool:
    return 1 <= day <= (29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31)

"""Street addresses and cities, found from the numbers around them: a house number followed by
words and a street suffix, and the words before ", ST 12345"."""

from __future__ import annotations

import re

from wardgate.masking.detectors.base import words

_STREET_SUFFIXES = words(
    "Street St Avenue Ave Av Road Rd Boulevard Blvd Drive Dr Lane Ln Court Ct Place Pl Way "
    "Terrace Ter Circle Cir Parkway Pkwy Highway Hwy Trail Trl Square Sq Loop Path Pike Plaza "
    "Alley Run Crossing Xing Point Pt Ridge Hills Heights Hts Springs Park Grove Gardens "
    "Estates Village Views View Valley Manor Station Turnpike Expressway Freeway Crescent "
    "Close Row Walk Mall Commons Green Harbor Island Isle Junction Landing Meadows Mill Mills "
    "Orchard Pass Pines Port Ranch Route Shore Shores Summit Track Union Vista Well Wells "
    "Creek Brook Bridge Center Ctr Club Cove Dale Falls Ferry Field Fields Forest Forge Fork "
    "Forks Fort Glen Haven Hill Hollow Inlet Key Knoll Lake Lakes Light Lodge Mission Mount "
    "Mountain Neck Oval Pine Prairie River Rue Stream Unit Ville Ways"
)
_STREET = re.compile(
    r"\d{1,6}(?:-\d{1,4})? (?:[NSEW]\.? |(?:North|South|East|West) )?"
    r"(?:[A-Z][a-z']+\.? |\d{1,3}(?:st|nd|rd|th) ){1,3}"
    r"(?:" + "|".join(sorted(set(_STREET_SUFFIXES), key=len, reverse=True)) + r")\b\.?"
    r"(?:,? (?:Apt\.?|Apartment|Suite|Ste\.?|Unit|#) ?#?[\w-]{1,6})?"
)
_CITY = re.compile(r"((?:[A-Z][a-zA-Z.'-]+ ){0,3}[A-Z][a-zA-Z.'-]+),? [A-Z]{2},? $")
_NOT_CITY = frozenset({"Pt", "Patient", "Lives", "In", "At", "From", "Moved", "To", "Address"})


def street_at(text: str, start: int) -> int | None:
    """The end of a street address starting at `start`, if one does."""
    m = _STREET.match(text, start)
    return None if m is None else m.end()


def city_before_state(text: str, zip_start: int) -> tuple[int, int] | None:
    m = _CITY.search(text, max(0, zip_start - 48), zip_start)
    if m is None:
        return None
    words = m[1].split(" ")
    while words and words[0] in _NOT_CITY:
        words.pop(0)
    if not words:
        return None
    end = m.end(1)
    return end - len(" ".join(words)), end

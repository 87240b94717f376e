"""Everything written with digits, in one pass.

One regular expression finds runs of digits (with the separators numbers are written with) and
Python classifies each run: by its shape (shapes.py), by the label before it (labels.py) and by
validators (validators.py). Runs joined by single spaces ("+1 212 555 0142", "4111 1111 1111
1111") are tried longest first. A run glued to letters ("BCX123456789", "DEA AB1234563") is an
identifier token, judged by its shape and label.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator

from wardgate.masking.detectors import compiled
from wardgate.masking.detectors import shapes as sh
from wardgate.masking.detectors import validators as v
from wardgate.masking.detectors.base import Span, words
from wardgate.masking.detectors.ids import DEFAULT_MRN_FORMATS, MrnFormat
from wardgate.masking.detectors.labels import label_before
from wardgate.masking.detectors.places import city_before_state, street_at
from wardgate.masking.entities import Entity

# A run never ends in a separator ("2024." is the number 2024 and a full stop).
_RUN = re.compile(r"\d(?:[\d()./-]*[\d)])?(?: \(?\d(?:[\d()./-]*[\d)])?)*")
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
# whitespace but the separator of texts joined by `Scanner.scan_many` (no rule reads across it)
_AGE_UNIT = re.compile(r"[^\S\x1f]*-?[^\S\x1f]*(?:y/?o\b|yo\b|y\.o\.|yrs?\b|years?\b|year-old)")
_STATE_BEFORE = re.compile(r"\b([A-Z]{2}) ?[,|]? ?$")
# identifier tokens by shape, each with the check a match must pass (None: the shape suffices)
_ID_SHAPES: tuple[tuple[re.Pattern[str], Entity, float, Callable[[str], bool] | None], ...] = (
    (re.compile(r"\d[A-Z][A-Z\d]\d-?[A-Z][A-Z\d]\d-?[A-Z]{2}\d\d"), Entity.HEALTH_PLAN_ID, 0.85,
     v.mbi_ok),  # a Medicare Beneficiary Identifier
    (re.compile(r"[A-Z]{3}\d{9}"), Entity.HEALTH_PLAN_ID, 0.6, None),
    (re.compile(r"[A-HJ-NPR-Z0-9]{17}"), Entity.VEHICLE_ID, 0.9, v.vin_ok),
    (re.compile(r"[A-Z][A-Z9]\d{7}"), Entity.LICENSE, 0.85, v.dea_ok),  # a DEA registration
)  # fmt: skip
_LABELLED_TOKEN = {
    "plan": Entity.HEALTH_PLAN_ID,
    "license": Entity.LICENSE,
    "device": Entity.DEVICE_ID,
    "plate": Entity.VEHICLE_ID,
    "account": Entity.ACCOUNT,
    "npi": Entity.OTHER_ID,
}
_YYYYMMDD = re.compile(r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")
_NOT_DIGITS = str.maketrans("", "", " ()+-.")
_STATES = frozenset(
    words(
        "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE "
        "NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR VI GU AS MP "
        "FM MH PW AA AE AP"
    )
)


def number_runs(text: str) -> list[tuple[int, int]]:
    """The runs of digits the detector judges (start, end): every match of `_RUN` but the short
    numbers (doses, vitals, counts), which matter only as an age over 89, or as a house number,
    or glued to letters (an identifier token). The reference of ``_scan.number_runs``."""
    runs = []
    for m in _RUN.finditer(text):
        start, end = m.span()
        if end - start <= 3 and m[0].isdigit():
            after = text[end : end + 2]
            if not (
                90 <= int(m[0]) <= 119
                or (after[:1] == " " and after[1:].isupper())
                or (start and text[start - 1].isalpha())
                or after[:1].isalpha()
            ):
                continue
        runs.append((start, end))
    return runs


def _compiled_runs(text: str) -> list[tuple[int, int]]:
    # also drops the runs `find` would judge to be nothing at once ("7.9", "120/80")
    runs: list[tuple[int, int]] = compiled.fast.number_runs(text, sh.SHAPES)
    return runs


_runs: Callable[[str], list[tuple[int, int]]] = _compiled_runs if compiled.COMPILED else number_runs


def shape_of(text: str, a: int, b: int) -> str | None:
    """The shape of text[a:b] (shapes.py), if it has one. The reference of ``_scan.shape_of``."""
    return sh.SHAPES.get(text[a:b].translate(sh.DIGITS_TO_9))


_shape: Callable[[str, int, int], str | None] = (
    functools.partial(compiled.fast.shape_of, sh.SHAPES) if compiled.COMPILED else shape_of
)


class NumberDetector:
    name = "numbers"

    def __init__(self, mrn_formats: tuple[MrnFormat, ...] = DEFAULT_MRN_FORMATS) -> None:
        self._mrn_any = re.compile("|".join(f"(?:{f.pattern})" for f in mrn_formats))
        bare = [f.pattern for f in mrn_formats if not f.needs_context]
        self._mrn_bare = re.compile("|".join(f"(?:{p})" for p in bare)) if bare else None

    def find(self, text: str) -> Iterator[Span]:
        n = len(text)
        labels = _Labels(text)
        for start, end in _runs(text):
            while text[end - 1] in "./-(" or (
                text[end - 1] == ")"
                and text.count("(", start - 1, end) < text.count(")", start, end)
            ):
                end -= 1
            before = text[start - 1] if start else " "
            after = text[end] if end < n else " "
            if before in _TOKEN_CHARS or (after in _TOKEN_CHARS and after != "-"):
                if after in _TOKEN_CHARS and before not in _TOKEN_CHARS:
                    age = self._age(text, start, end)
                    if age is not None:
                        yield age
                        continue
                yield from self._token(text, start, end, labels)
                continue
            if before in "(+":
                start -= 1
                if before == "(" and text[end - 1] == ")" and text.count(")", start, end) == 1:
                    start, end = start + 1, end - 1  # "(6789)": the parentheses are not part of it
            if text.find(" ", start, end) < 0:
                span = self._classify(text, start, end, labels, single=True)
                if span is not None:
                    yield span
                    if span.detector == "zip_state":
                        yield from _city(text, span.start)
            else:
                yield from self._run(text, start, end, labels)

    def _token(self, text: str, start: int, end: int, labels: _Labels) -> Iterator[Span]:
        """A run glued to letters: an identifier like BCX123456789, or nothing (E11.9, 500mg)."""
        n = len(text)
        end = start
        while end < n and text[end] in _TOKEN_CHARS:
            end += 1
        while start > 0 and text[start - 1] in _TOKEN_CHARS:
            start -= 1
        while start < end and text[start] == "-":
            start += 1
        while end > start and text[end - 1] == "-":
            end -= 1
        token = text[start:end]
        label = labels.get(start)
        if label == "mrn" and self._mrn_any.fullmatch(token):
            yield Span(Entity.MRN, start, end, 0.95, "mrn")
            return
        entity = _LABELLED_TOKEN.get(label or "")
        if entity is not None:
            yield Span(entity, start, end, 0.9, f"{label}_label")
            return
        upper = token.upper()  # identifiers in a note written (or upper()-ed) in any case
        for pattern, shaped, score, check in _ID_SHAPES:
            if pattern.fullmatch(upper):
                if check is not None and not check(upper):
                    continue
                yield Span(shaped, start, end, score, "id_shape")
                return
        if self._mrn_bare is not None and self._mrn_bare.fullmatch(token):
            yield Span(Entity.MRN, start, end, 0.6, "mrn_bare")

    def _age(self, text: str, start: int, end: int) -> Span | None:
        if (
            end - start in (2, 3)
            and text[start:end].isdigit()  # not "1.5mg", "1/2tab"
            and 90 <= int(text[start:end]) <= 119
            and _AGE_UNIT.match(text, end)
        ):
            return Span(Entity.AGE_OVER_89, start, end, 0.85, "age")
        return None

    def _run(self, text: str, start: int, end: int, labels: _Labels) -> Iterator[Span]:
        # parts joined by single spaces, tried longest first
        parts: list[tuple[int, int]] = []
        position = start
        while True:
            space = text.find(" ", position, end)
            if space < 0:
                parts.append((position, end))
                break
            parts.append((position, space))
            position = space + 1
        i = 0
        while i < len(parts):
            for j in range(min(len(parts), i + 5) - 1, i - 1, -1):
                a, b = parts[i][0], parts[j][1]
                span = self._classify(text, a, b, labels, single=i == j)
                if span is not None:
                    yield span
                    if span.detector == "zip_state":
                        yield from _city(text, span.start)
                    i = j + 1
                    break
            else:
                i += 1

    def _classify(self, text: str, a: int, b: int, labels: _Labels, *, single: bool) -> Span | None:
        if text[b - 1] == ")":
            return None
        shape = _shape(text, a, b)
        if shape is None:
            return self._unshaped(text, a, b, text[a:b], labels) if single else None
        candidate = text[a:b]
        if shape == sh.DATE_ISO:
            y, m, d = candidate.split("-")
            return Span(Entity.DATE, a, b, 0.9, "date_iso") if _valid(y, m, d) else None
        if shape == sh.DATE_US:
            sep = candidate[len(candidate.rstrip("0123456789")) - 1]
            m, d, y = candidate.split(sep)
            if not _valid(y if len(y) == 4 else "20" + y, m, d):
                return None
            return Span(Entity.DATE, a, b, 0.9 if sep == "/" else 0.7, "date_us")
        if shape == sh.PHONE:  # written with separators: a phone or a fax, whatever the label
            digits = candidate.translate(_NOT_DIGITS)
            if len(digits) == 11:
                if digits[0] != "1":
                    return None
                digits = digits[1:]
            if not v.nanp_ok(digits[:3], digits[3:6]):
                return None
            fax = "fax" in text[max(0, a - 14) : a].rpartition("\x1f")[2].lower()
            return Span(Entity.FAX if fax else Entity.PHONE, a, b, 0.85, "phone")
        if shape == sh.SSN:
            digits = candidate.replace("-", "")
            if v.ssn_ok(digits[:3], digits[3:5], digits[5:]):
                return Span(Entity.SSN, a, b, 0.9, "ssn")
            return None
        if shape == sh.IPV4:
            if all(int(octet) <= 255 for octet in candidate.split(".")):
                return Span(Entity.IP, a, b, 0.85, "ipv4")
            return None
        if shape == sh.MONTH_DAY:
            m, d = candidate.split("/")
            if _valid("2000", m, d) and label_before(text, a) == "date":
                return Span(Entity.DATE, a, b, 0.65, "month_day")
            return None
        label = labels.get(a)
        digits = candidate.replace(" ", "").replace("-", "")
        if shape in (sh.SSN_SPACED, sh.SSN_BARE):
            if not v.ssn_ok(digits[:3], digits[3:5], digits[5:]):
                return None
            if label == "ssn":
                return Span(Entity.SSN, a, b, 0.9, "ssn")
            if shape == sh.SSN_SPACED:
                return Span(Entity.SSN, a, b, 0.6, "ssn")
            return self._unshaped(text, a, b, candidate, labels)
        if shape == sh.PHONE_BARE:
            if label == "npi":
                return Span(Entity.OTHER_ID, a, b, 0.95 if v.npi_ok(digits) else 0.7, "npi")
            if label in ("mrn", "plan", "account", "license", "device"):
                return self._unshaped(text, a, b, candidate, labels)
            if not v.nanp_ok(digits[:3], digits[3:6]):
                return Span(Entity.OTHER_ID, a, b, 0.6, "npi") if v.npi_ok(digits) else None
            entity = Entity.FAX if label == "fax" else Entity.PHONE
            return Span(entity, a, b, 0.8 if label == "fax" else 0.55, "phone")
        if shape == sh.CARD:
            if v.luhn_ok(digits):
                return Span(Entity.ACCOUNT, a, b, 0.85, "card")
            return self._unshaped(text, a, b, candidate, labels) if single else None
        return None

    def _unshaped(self, text: str, a: int, b: int, candidate: str, labels: _Labels) -> Span | None:
        plain = candidate.replace("-", "")
        if not plain.isdigit():
            return None  # 7.9, 120/80, 2.1.4: no identifier is written so
        length = b - a
        if length <= 3:
            if (
                candidate.isdigit()
                and 90 <= int(candidate) <= 119
                and (_AGE_UNIT.match(text, b) or label_before(text, a) == "age")
            ):
                return Span(Entity.AGE_OVER_89, a, b, 0.85, "age")
            street = street_at(text, a) if text[b : b + 1] == " " else None
            return None if street is None else Span(Entity.GEO, a, street, 0.92, "street")
        label = labels.get(a)
        if label == "mrn" and self._mrn_any.fullmatch(candidate):
            return Span(Entity.MRN, a, b, 0.95, "mrn")
        if label == "ssn" and len(candidate) == 4 and candidate.isdigit():
            return Span(Entity.SSN, a, b, 0.8, "ssn_last4")
        if label == "account" and sum(c.isdigit() for c in candidate) >= 5:
            return Span(Entity.ACCOUNT, a, b, 0.85, "account")
        if label in ("npi", "plan", "license", "device", "plate"):
            return Span(_LABELLED_TOKEN[label], a, b, 0.85, f"{label}_label")
        if length in (5, 10) and (candidate.isdigit() or candidate[5:6] == "-"):
            if label == "zip":
                return Span(Entity.ZIP, a, b, 0.85, "zip")
            state = _STATE_BEFORE.search(text, max(0, a - 7), a)
            if state is not None and state[1] in _STATES:
                return Span(Entity.ZIP, a, b, 0.85, "zip_state")
        if candidate.isdigit():
            if length <= 6 and text[b : b + 1] == " ":
                street = street_at(text, a)
                if street is not None:
                    return Span(Entity.GEO, a, street, 0.92, "street")
            if self._mrn_bare is not None and self._mrn_bare.fullmatch(candidate):
                if _YYYYMMDD.fullmatch(candidate):
                    return Span(Entity.DATE, a, b, 0.55, "date_compact")
                return Span(Entity.MRN, a, b, 0.6, "mrn_bare")
        return None


class _Labels:
    """The labels before positions of one text, looked up when first asked for."""

    __slots__ = ("_seen", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._seen: dict[int, str | None] = {}

    def get(self, position: int) -> str | None:
        if position in self._seen:
            return self._seen[position]
        label = self._seen[position] = label_before(self._text, position)
        return label


def _city(text: str, zip_start: int) -> Iterator[Span]:
    city = city_before_state(text, zip_start)
    if city is not None:
        yield Span(Entity.GEO, city[0], city[1], 0.92, "city")


def _valid(year: str, month: str, day: str) -> bool:
    y, m, d = int(year), int(month), int(day)
    if not (1 <= m <= 12 and 1 <= d <= 31 and 1800 <= y <= 2199):
        return False
    if d > 30 and m in (4, 6, 9, 11):
        return False
    return m != 2 or d <= 29 - (y % 4 != 0 or (y % 100 == 0 and y % 400 != 0))

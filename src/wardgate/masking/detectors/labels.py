"""Labels: the words just before a number that say what it is ("SSN ending", "MRN:", "NPI #").

A label is looked up, not searched for: the last one to three words before a candidate are
joined and found in a table, after dropping filler words ("ending", "number", "#"). Searching
every text for every label costs more than looking back from the few numbers that need one."""

from __future__ import annotations

LABELS: dict[str, str] = {}


def _add(kind: str, phrases: str) -> None:
    for phrase in phrases.split(","):
        LABELS[phrase.strip()] = kind


_add("ssn", "ssn, ss#, ss, social security, social security no, soc sec, ssn#")
_add(
    "mrn",
    "mrn, mr#, mrn#, mr, medical record, medical record no, med rec, chart, chart #, "
    "chart no, patient id, pt id, hospital no, hosp #, record",
)
_add("npi", "npi, npi#")
_add(
    "plan",
    "member, member id, subscriber, subscriber id, beneficiary, policy, insurance, "
    "insurance id, insurance member id, medicaid, medicaid id, medicare, medicare id, mbi, "
    "group, health plan, health plan id, plan id",
)
_add("account", "acct, acct#, account, billing, invoice, account no")
_add(
    "license",
    "license, licence, dl, dl#, driver's license, drivers license, dea, dea#, "
    "certificate, cert, lic, lic#",
)
_add("device", "serial, s/n, sn, udi, imei, device, device id, serial no, model serial")
_add("plate", "plate, license plate, licence plate, vin, tag")
_add("zip", "zip, zip code, postal code, zipcode")
_add("fax", "fax, fax#, facsimile, fax no, faxed to, at fax")
_add("age", "age, aged")
_add(
    "date",
    "on, by, until, till, since, from, to, rtc, f/u, follow-up, followup, visit, appt, "
    "appointment, next, seen, date, dated, dos, dob, admitted, discharged, scheduled, "
    "moved to, return, next visit, due",
)

_FILLER = frozenset({"ending", "ends", "in", "is", "no", "number", "num", "#", "id", "of",
                     "last", "4", "was", "at"})  # fmt: skip
_STRIP = " \t\n:().=-"
_SEPARATOR = "\x1f"  # between the texts `Scanner.scan_many` joins: no label is read across it


_LAST_WORDS = frozenset(phrase.split()[-1] for phrase in LABELS) | _FILLER


_CACHE: dict[str, str | None] = {}
_CACHE_SIZE = 8192


def label_before(text: str, start: int, width: int = 32) -> str | None:
    """The kind of label ending just before `start`, if any ("ssn", "mrn", "date", ...): the
    last words before it, with only punctuation between them and `start`. Notes repeat their
    phrases ("SSN ending", "in 2024"), so answers are cached by the text before `start`."""
    window = text[max(0, start - width) : start]
    try:
        return _CACHE[window]
    except KeyError:
        pass
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.clear()
    label = _CACHE[window] = _label_before(window, len(window), 0)
    return label


def _label_before(text: str, start: int, low: int) -> str | None:
    low = max(low, text.rfind(_SEPARATOR, low, start) + 1)
    end = start
    while end > low and text[end - 1] in _STRIP:
        end -= 1
    if end == low or not (text[end - 1].isalpha() or text[end - 1] in "#/'"):
        return None
    # the last word, after any whitespace (a label may start a line: "...\nSSN: 6789")
    if text[low:end].rsplit(None, 1)[-1].lower().strip(".,;:()") not in _LAST_WORDS:
        return None  # the common case, decided without splitting the window
    words = [w.strip(".,;:()") for w in text[low:end].lower().split()[-5:]]
    for _ in range(3):
        if not words:
            return None
        for k in (3, 2, 1):
            if len(words) >= k:
                kind = LABELS.get(" ".join(words[-k:]))
                if kind is not None:
                    return kind
        if words[-1] not in _FILLER:
            return None
        words.pop()
    return None

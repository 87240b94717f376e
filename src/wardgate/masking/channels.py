"""What a masked role receives outside result rows: errors, notices, reported settings,
notifications and column names. Pure functions; the SQL masking addon calls them.

Errors and notices. A server's message can echo a value of the row it failed on, in any
transformed form (``invalid input syntax for type integer: "MRN00012345"``, a whole row cast
to text, a value reversed or hex-encoded), and detectors find only what they recognise. So
while a statement that reads masked PHI (or that the analysis could not follow) is in flight,
the value-bearing fields are withheld: the message becomes a fixed text naming the SQLSTATE,
the detail survives only as a constraint violation's template with its values masked, and
context (where), the internal query and the hint are dropped. SQLSTATE, severity, positions
and the server's source location are kept: they carry no data. Otherwise, and for the names
a diagnostic carries (schema, table, column, data type, constraint), every text field is
content-scanned.
"""

from __future__ import annotations

import re

from wardgate.masking.text import TextMasker

# Fields that carry no data: severity (both), SQLSTATE, cursor positions, the server's own
# source file, line and routine.
KEPT = frozenset("SVCPpFLR")
# Fields that can echo a value from the row: message, detail, hint, context, internal query.
VALUE_FIELDS = frozenset("MDHWq")
# Constraint violations quote stored values: "Key (ssn)=(123-45-6789) already exists.",
# "Failing row contains (1, MRN-..., Ann, ...)." (server text, not SQL)
_QUOTED_VALUES = re.compile(r"(Key \([^)]*\)=\()(.*)(\))|(Failing row contains \()(.*)(\))", re.S)
# What is left of a constraint violation's detail once its values are masked: server text and
# catalog names only.
_TEMPLATE = re.compile(
    r"Key \([^=]*\)=\(\[MASKED\]\)( already exists| is (not present in|still referenced from)"
    r' table "[^"]*")?\.|Failing row contains \(\[MASKED\]\)\.'
)
WITHHELD_HINT = (
    "wardgate withholds the server's text of errors and notices of statements that read"
    " masked PHI, since it can echo the values; the SQLSTATE says what kind of error it was"
)


def masked_quotes(text: str) -> str:
    return _QUOTED_VALUES.sub(_masked_quote, text)


def _masked_quote(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        return f"{match.group(1)}[MASKED]{match.group(3)}"
    return f"{match.group(4)}[MASKED]{match.group(6)}"


def diagnostic(fields: dict[str, str], text: TextMasker, phi: bool) -> dict[str, str]:
    """The fields of an error or notice as a masked role receives them; ``phi``: a statement
    in flight reads masked PHI."""
    out: dict[str, str] = {}
    for code, value in fields.items():
        if code in KEPT or not value:
            out[code] = value
        elif code not in VALUE_FIELDS or not phi:
            out[code] = text.mask(masked_quotes(value))
    if phi:
        sqlstate = fields.get("C", "XX000")
        kind = "notice" if fields.get("V", fields.get("S", "")) in _NOTICES else "error"
        out["M"] = f"wardgate: the server's {kind} text is withheld (SQLSTATE {sqlstate})"
        detail = masked_quotes(fields.get("D", ""))
        if detail and _TEMPLATE.fullmatch(detail):
            out["D"] = text.mask(detail)
        out["H"] = WITHHELD_HINT
    return out


_NOTICES = frozenset({"NOTICE", "WARNING", "INFO", "LOG", "DEBUG"})

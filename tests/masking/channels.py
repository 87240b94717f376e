"""Everything a psycopg client receives, on every channel, and a search of it for raw PHI.

``receive`` runs statements through a gateway and collects rows, column names, notices,
notifications, the reported settings and every field of an error. ``Leaks`` knows the seeded
values and finds them in any case, reversed, as digits only, and encoded in base64 or hex
(it also decodes every base64 or hex run it meets), so a transformed value counts as a leak.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg

# Reported settings psycopg keeps (ParameterStatus): what a statement could have changed.
SETTINGS = ("application_name", "TimeZone", "DateStyle", "IntervalStyle", "client_encoding",
            "session_authorization", "is_superuser", "standard_conforming_strings")  # fmt: skip
_DIAG = (
    "severity", "sqlstate", "message_primary", "message_detail", "message_hint",
    "statement_position", "internal_position", "internal_query", "context", "schema_name",
    "table_name", "column_name", "datatype_name", "constraint_name", "source_file",
    "source_line", "source_function",
)  # fmt: skip
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{12,}={0,2}")
_HEX_RUN = re.compile(r"(?:[0-9a-fA-F]{2}){6,}")
# Texts of the gateway itself, which a seeded name that is also an English word could match.
_OWN = re.compile(r"wardgate[^\n]*")


@dataclass
class Received:
    rows: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    notifications: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)
    error: list[str] = field(default_factory=list)
    sqlstate: str | None = None

    def text(self) -> str:
        parts = (self.rows, self.names, self.notices, self.notifications, self.settings, self.error)
        return "\n".join(x for part in parts for x in part)


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return raw.decode("utf-8", "replace") + "\n" + raw.hex()
    return str(value)


def _diagnostic(diag: Any) -> list[str]:
    return [str(v) for name in _DIAG if (v := getattr(diag, name, None))]


def receive(dsn: str, statements: Iterable[str], *, binary: bool = False) -> Received:
    """Run ``statements`` in order on one autocommit connection; stop at the first error."""
    got = Received()
    conn = psycopg.connect(dsn, autocommit=True)
    conn.add_notice_handler(lambda d: got.notices.extend(_diagnostic(d)))
    conn.add_notify_handler(lambda n: got.notifications.extend((n.channel, n.payload)))
    try:
        with conn.cursor(binary=binary) as cur:
            for statement in statements:
                if statement.upper().startswith("COPY"):
                    with cur.copy(statement) as copy:
                        got.rows.extend(_text(chunk) for chunk in copy)
                    continue
                cur.execute(statement)
                while True:
                    if cur.description is not None:
                        got.names.extend(c.name for c in cur.description)
                        got.rows.extend(_text(v) for row in cur.fetchall() for v in row)
                    if not cur.nextset():
                        break
        conn.execute("SELECT 1")  # a round trip: notifications sent meanwhile arrive
    except psycopg.Error as exc:
        got.error = [str(exc), *_diagnostic(exc.diag)]
        got.sqlstate = exc.sqlstate
    finally:
        if not conn.closed:
            got.settings = [v for s in SETTINGS if (v := conn.info.parameter_status(s))]
        conn.close()
    return got


def _variants(value: str) -> set[str]:
    low = value.lower()
    found = {low, low[::-1]}
    digits = re.sub(r"\D", "", value)
    if len(digits) >= 7:
        found |= {digits, digits[::-1]}
    return {v for v in found if len(v) >= 3}


class Leaks:
    """Seeded raw values, searched for in everything a client received."""

    def __init__(self, values: Iterable[str], names: Iterable[str]) -> None:
        self.values = {v: _variants(v) for v in values if v}
        self.names = {n: _variants(n) for n in names if len(n) > 2}

    def decoded(self, text: str) -> str:
        """``text`` with every base64 and hex run it holds decoded and appended."""
        extra = []
        for run in _BASE64_RUN.findall(text):
            for cut in range(4):  # a run need not start where the encoding did
                piece = run[cut:]
                piece = piece[: len(piece) - len(piece) % 4]
                with contextlib.suppress(binascii.Error, ValueError):
                    extra.append(base64.b64decode(piece).decode("utf-8", "replace"))
        for run in _HEX_RUN.findall(text):
            for cut in (0, 1):
                piece = run[cut:][: (len(run) - cut) // 2 * 2]
                extra.append(bytes.fromhex(piece).decode("utf-8", "replace"))
        return "\n".join([text, *extra])

    def __call__(self, text: str) -> list[str]:
        low = self.decoded(_OWN.sub("", text)).lower()
        found = [v for v, forms in self.values.items() if any(f in low for f in forms)]
        found += [
            n
            for n, forms in self.names.items()
            if any(re.search(rf"\b{re.escape(f)}\b", low) for f in forms)
        ]
        return found

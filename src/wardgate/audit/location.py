"""Where the audit store is: a SQLite file (a ``Path``) or a PostgreSQL conninfo URL (a ``str``).

Kept free of any driver import, so the configuration and the command line can tell the two apart
and name a URL in logs without its password.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

Location = Path | str  # a str is always a PostgreSQL URL

SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(value: object) -> bool:
    return isinstance(value, str) and value.lower().startswith(SCHEMES)


def location(value: str) -> Location:
    """A PostgreSQL URL as it is, anything else as a path (the command line's ``--db``)."""
    return value if is_postgres_url(value) else Path(value)


def redacted(where: Location) -> str:
    """``where`` fit for a log line or an error message: a URL loses its password."""
    if isinstance(where, Path):
        return str(where)
    parts = urlsplit(where)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, hosts = netloc.rpartition("@")
        user, colon, _ = credentials.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hosts}"
    query = [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, True)]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="*/:")))

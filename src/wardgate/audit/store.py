"""The append-only audit store: records, the entry hash, the portable schema, the interface.

An entry is ``seq`` (1, 2, ... without gaps), ``time`` and ``type`` (copied from the event for
searching), ``event`` (the event's RFC 8785 canonical JSON), ``prev_hash`` (the previous entry's
``hash``, or 64 zeros for seq 1) and ``hash``::

    hash = hex(SHA-256(JCS({"event": <event>, "prev_hash": <prev_hash>, "seq": <seq>})))

whose bytes are exactly ``{"event":`` + event JSON + ``,"prev_hash":"`` + 64 hex digits +
``","seq":`` + decimal seq + ``}``. ``sqlite.SQLiteStore`` implements ``AuditStore``;
``pgstore.PostgresStore`` uses the same tables (``schema("BIGINT", ...)``) with triggers written
in PL/pgSQL. ``open_store`` picks one by the form of the location.
"""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wardgate.audit.canonical import CanonicalizationError, canonical
from wardgate.audit.events import Event
from wardgate.audit.location import Location

GENESIS = "0" * 64


class AuditUnavailable(Exception):
    """The store cannot make events durable; requests must be refused until it can."""


class Tampered(AuditUnavailable):
    """The store's chain is not the one this gateway wrote (an entry it did not append, or one it
    appended missing): a tamper alarm, which only an operator's acknowledgement clears."""

    def __init__(self, message: str, wrote: tuple[int, str] | None = None) -> None:
        super().__init__(message)
        self.wrote = wrote  # (seq, hash) of the last entry this gateway wrote


def tamper_message(found: tuple[int, str], wrote: tuple[int, str]) -> str:
    """The alarm's text: what the store ends with against what this gateway last wrote."""
    return (
        f"audit store tampered with: it ends at entry {found[0]} (hash {found[1][:16]}),"
        f" but this gateway last wrote entry {wrote[0]} (hash {wrote[1][:16]})"
    )


def entry_mac(key: bytes, entry_hash_hex: str) -> str:
    """The MAC a replica writes beside each entry it appends: HMAC-SHA256 over the entry's raw
    hash, keyed with ``mac_key(signing key)``; only a holder of the signing key can make it."""
    return hmac.new(key, bytes.fromhex(entry_hash_hex), hashlib.sha256).hexdigest()


def chain_encoding(seq: int, prev_hash: str, event_json: bytes) -> bytes:
    """JCS of {"event", "prev_hash", "seq"}, built from the event's canonical bytes."""
    return b'{"event":%s,"prev_hash":"%s","seq":%d}' % (event_json, prev_hash.encode(), seq)


def entry_hash(seq: int, prev_hash: str, event_json: bytes) -> str:
    return hashlib.sha256(chain_encoding(seq, prev_hash, event_json)).hexdigest()


# An event ready to be chained: (time, type, event JSON, the same as UTF-8, subject, on_behalf,
# target, tables, decision). Encoding is the costly part of an append, so it is done once, before
# the commit, and the commit only hashes and inserts.
Prepared = tuple[str, str, str, bytes, str | None, str, str | None, str, str | None]
# An audit_entry row: seq, time, type, event, prev_hash, hash, then the five search columns.
Row = tuple[int, str, str, str, str, str, str | None, str, str | None, str, str | None]


def prepare(event: Event) -> Prepared:
    data = encode_event(event)
    time, kind = str(event.get("time", "")), str(event.get("type", ""))
    return (time, kind, data.decode(), data, *search_columns(event))


def chain(records: Sequence[Prepared], seq: int, prev: str) -> tuple[list[Row], list[bytes]]:
    """The rows of ``records`` appended after entry ``seq`` whose hash is ``prev``, and the raw
    32-byte hash of each (the Merkle leaves' data)."""
    rows: list[Row] = []
    digests: list[bytes] = []
    sha256 = hashlib.sha256
    for time, kind, text, data, subject, on_behalf, target, tables, decision in records:
        seq += 1
        digest = sha256(b'{"event":%s,"prev_hash":"%s","seq":%d}' % (data, prev.encode(), seq))
        raw = digest.digest()
        hexed = raw.hex()
        rows.append(
            (seq, time, kind, text, prev, hexed, subject, on_behalf, target, tables, decision)
        )
        digests.append(raw)
        prev = hexed
    return rows, digests


def encode_event(event: Event) -> bytes:
    """The canonical bytes of ``event``; an event JSON cannot carry is kept as its ``ascii()``
    text rather than lost."""
    try:
        return canonical(event)
    except CanonicalizationError:
        kept = {
            "time": str(event.get("time", "")),
            "type": "audit.unencodable",
            "original_type": str(event.get("type", "")),
            "repr": ascii(event),
        }
        return canonical(kept)


@dataclass(frozen=True)
class Entry:
    seq: int
    time: str
    type: str
    event: str
    prev_hash: str
    hash: str
    # The search columns as stored (subject, on_behalf, target, tables, decision): copies the
    # hash does not cover, so ``verify`` recomputes them from the event.
    columns: tuple[str | None, ...] | None = field(default=None, compare=False)


def entry_of(row: Sequence[Any]) -> Entry:
    """An ``Entry`` from a row of the eleven columns (see ``Row``)."""
    return Entry(int(row[0]), row[1], row[2], row[3], row[4], row[5], columns=tuple(row[6:11]))


@dataclass(frozen=True)
class Head:
    """A signed tree head. ``frontier`` (hex, not signed) lets the gateway and the verifier resume
    the Merkle tree at this size; its root must equal ``root_hash``."""

    tree_size: int
    root_hash: str
    time: str
    key_id: str
    signature: str
    frontier: tuple[str, ...] = field(default=(), compare=False)

    def signed(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "root_hash": self.root_hash,
            "time": self.time,
            "tree_size": self.tree_size,
        }

    def public(self) -> dict[str, Any]:
        return {**self.signed(), "signature": self.signature}


@dataclass(frozen=True)
class Cut:
    """What a retention purge leaves of entries 1..tree_size: the hash of entry ``tree_size``
    and its inclusion proof under the signed head of that size."""

    tree_size: int
    last_hash: str
    last_proof: tuple[str, ...]


@dataclass(frozen=True)
class Query:
    user: str | None = None  # subject or claimed user, or a name in the on-behalf-of chain
    agent: str | None = None  # subject acting on behalf of someone
    target: str | None = None
    table: str | None = None
    decision: str | None = None
    type: str | None = None
    since: str | None = None  # RFC 3339 UTC, as in events
    until: str | None = None
    limit: int | None = None

    def conditions(self, mark: str) -> tuple[list[str], list[Any]]:
        """The WHERE conditions (joined by AND) and their parameters, with ``mark`` as the
        driver's placeholder (``?`` for SQLite, ``%s`` for psycopg); the same in both stores."""
        where: list[str] = []
        params: list[Any] = []
        if self.user:
            where.append(f"(subject = {mark} OR on_behalf LIKE {mark} ESCAPE '!')")
            params += [self.user, f"%|{like_escape(self.user)}|%"]
        if self.agent:
            where.append(f"(subject = {mark} AND on_behalf <> '')")
            params.append(self.agent)
        if self.table:
            where.append(f"tables LIKE {mark} ESCAPE '!'")
            params.append(f"%|{like_escape(self.table)}|%")
        for column in ("target", "decision", "type"):
            value = getattr(self, column)
            if value:
                where.append(f"{column} = {mark}")
                params.append(value)
        if self.since:
            where.append(f"time >= {mark}")
            params.append(self.since)
        if self.until:
            where.append(f"time < {mark}")
            params.append(self.until)
        return where, params


def like_escape(value: str) -> str:
    """``value`` inside a LIKE pattern with ESCAPE '!': ``%`` and ``_`` lose their meaning."""
    return value.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def search_columns(event: Event) -> tuple[str | None, str, str | None, str, str | None]:
    """(subject, on_behalf, target, tables, decision); lists are stored as ``|a|b|``."""
    try:  # the shape the event builders make, fast
        who = event["who"]
        chain = who.get("on_behalf_of")
        tables = event.get("tables")
        return (
            who.get("subject") or who.get("claimed_user") or None,
            f"|{'|'.join(chain)}|" if chain else "",
            event["session"].get("target") or None,
            f"|{'|'.join(tables)}|" if tables else "",
            event.get("decision"),
        )
    except (KeyError, AttributeError, TypeError):
        return _search_columns_of_any(event)


def _search_columns_of_any(event: Event) -> tuple[str | None, str, str | None, str, str | None]:
    who = event.get("who")
    who = who if isinstance(who, dict) else {}
    subject = who.get("subject") or who.get("claimed_user") or None
    session = event.get("session")
    target = session.get("target") if isinstance(session, dict) else event.get("target")
    decision = event.get("decision")
    return (
        str(subject) if subject else None,
        _bars(who.get("on_behalf_of")),
        str(target) if target else None,
        _bars(event.get("tables")),
        str(decision) if decision else None,
    )


def _bars(items: Any) -> str:
    if not isinstance(items, list | tuple) or not items:
        return ""
    return "|" + "|".join(str(i) for i in items) + "|"


def schema(seq_type: str = "INTEGER", text: str = "TEXT") -> list[str]:
    """Tables and indexes in SQL both SQLite and PostgreSQL accept (``BIGINT`` there, and text
    that compares byte-wise: ``TEXT COLLATE "C"``)."""
    return [
        f"""CREATE TABLE IF NOT EXISTS audit_entry (
            seq {seq_type} PRIMARY KEY, time {text} NOT NULL, type {text} NOT NULL,
            event {text} NOT NULL, prev_hash CHAR(64) NOT NULL, hash CHAR(64) NOT NULL,
            subject {text}, on_behalf {text} NOT NULL, target {text}, tables {text} NOT NULL,
            decision {text})""",
        f"""CREATE TABLE IF NOT EXISTS audit_head (
            tree_size {seq_type} PRIMARY KEY, root_hash CHAR(64) NOT NULL, time {text} NOT NULL,
            key_id {text} NOT NULL, signature {text} NOT NULL, frontier {text} NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS audit_cut (
            tree_size {seq_type} PRIMARY KEY REFERENCES audit_head (tree_size),
            last_hash CHAR(64) NOT NULL, last_proof {text} NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS audit_key (
            key_id {text} PRIMARY KEY, public_pem {text} NOT NULL, first_used {text} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS audit_entry_time ON audit_entry (time)",
        "CREATE INDEX IF NOT EXISTS audit_entry_subject ON audit_entry (subject)",
        "CREATE INDEX IF NOT EXISTS audit_entry_type ON audit_entry (type)",
    ]


class AuditStore(ABC):
    """Append-only: entries, heads and cuts are only ever inserted; entries are deleted only by
    ``purge`` and only up to a recorded cut, which the database itself enforces."""

    # True where several gateways append to one chain (PostgreSQL): entries this gateway did not
    # write are then expected, each vouched for by the MAC of the replica that wrote it. A store
    # that is not shared has exactly one writer, the gateway.
    shared = False
    mac_key: bytes | None = None  # the replicas' MAC key (from the signing key), set by its owner

    def vouches(self, first: int, last: int) -> dict[int, str]:
        """The replica MACs of entries ``first..last`` by seq (a shared store keeps them)."""
        return {}

    @abstractmethod
    def resync(self) -> None:
        """Forget the remembered tail: the next append chains after what the store holds (only
        after an operator acknowledged a tamper alarm)."""

    @abstractmethod
    def append_prepared(self, records: Sequence[Prepared]) -> tuple[list[Row], list[bytes]]:
        """Chain and append ``records`` in one durable transaction; returns their rows and the
        raw hash of each. Raises ``AuditUnavailable`` when it cannot."""

    def append_entries(self, events: Sequence[Event]) -> list[Entry]:
        rows, _ = self.append_prepared([prepare(e) for e in events])
        return [Entry(*row[:6]) for row in rows]

    def append_many(self, events: Sequence[Event]) -> list[int]:
        return [e.seq for e in self.append_entries(events)]

    @abstractmethod
    def last(self) -> tuple[int, str]:
        """(seq, hash) of the newest entry, or of the cut, or (0, GENESIS)."""

    @abstractmethod
    def entries(self, first: int = 1, last: int | None = None) -> Iterator[Entry]: ...

    @abstractmethod
    def add_head(self, head: Head) -> None: ...

    @abstractmethod
    def heads(self) -> list[Head]:
        """Every stored head, by tree size."""

    @abstractmethod
    def cut(self) -> Cut | None:
        """The latest retention cut, if any."""

    @abstractmethod
    def purge(self, cut: Cut) -> int:
        """Record ``cut`` (its head must be stored), delete entries up to it; returns how many."""

    @abstractmethod
    def older_than(self, time: str) -> int:
        """The largest seq such that every entry up to it has a time before ``time``."""

    @abstractmethod
    def search(self, query: Query) -> Iterator[Entry]: ...

    @abstractmethod
    def record_key(self, key_id: str, public_pem: str, now: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def head_at(self, size: int) -> Head | None:
        return next((h for h in self.heads() if h.tree_size == size), None)


def open_store(where: Location, *, readonly: bool = False) -> AuditStore:
    """The SQLite store at a path, or the PostgreSQL store at a ``postgresql://`` URL."""
    if isinstance(where, Path):
        from wardgate.audit.sqlite import SQLiteStore

        return SQLiteStore(where, readonly=readonly)
    from wardgate.audit.pgstore import PostgresStore

    return PostgresStore(where, readonly=readonly)

"""``wardgate audit ...``: verify, prove, search, export, key, purge, ack.

Paths default to the ``audit`` section of the configuration (``-c`` or ``$WARDGATE_CONFIG``);
explicit options win, so an auditor needs no configuration: ``--db`` and ``--key`` suffice.
Exit status: 0 good, 1 the log failed verification, 2 a usage or configuration problem.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wardgate.audit.checkpoints import key_id, load_public_key, public_pem
from wardgate.audit.location import Location, location
from wardgate.audit.store import AuditUnavailable, Query, open_store
from wardgate.config import CONFIG_ENV, Audit, ConfigError, config_path, load


class _Usage(Exception):
    """A problem with what was asked; exit status 2."""


def add_parser(subparsers: Any) -> None:
    audit = subparsers.add_parser("audit", help="verify, prove, search and export the audit log")
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")

    def action(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help)
        p.add_argument("-c", "--config", default=None, help="configuration file")
        p.add_argument(
            "--db",
            type=location,
            default=None,
            help="audit store: a SQLite file or a postgresql:// URL (default: audit.store)",
        )
        return p

    verify = action("verify", "verify the log offline with the public key")
    verify.add_argument("--key", type=Path, default=None, help="public key PEM")
    verify.add_argument("--head", type=Path, default=None, help="anchored head file")
    verify.add_argument(
        "--pin",
        default=None,
        metavar="KEYID",
        help="refuse heads signed by any key but this (`wardgate audit key --id`; or audit.pin)",
    )
    prove = action("prove", "print the inclusion proof of an entry and its signed head (JSON)")
    prove.add_argument("seq", type=int)
    search = action("search", "find entries")
    for name in ("user", "agent", "target", "table", "decision", "type", "since", "until"):
        search.add_argument(f"--{name}", default=None)
    search.add_argument("--limit", type=int, default=None)
    search.add_argument("--json", action="store_true", help="one canonical event per line")
    export = action("export", "write events as OCSF, CEF or JSON lines")
    export.add_argument("--format", choices=("ocsf", "cef", "jsonl"), default="jsonl")
    export.add_argument("--since", default=None)
    export.add_argument("--until", default=None)
    key = action("key", "print the public key (PEM) that verifies the signed heads")
    key.add_argument("--key-file", type=Path, default=None, help="the private key file")
    key.add_argument("--id", action="store_true", help="print only the key id, which auditors pin")
    ack = action("ack", "acknowledge a tamper alarm: the gateway resumes and records this")
    ack.add_argument("--reason", required=True, help="what was found and done (recorded)")
    purge = action("purge", "delete entries older than the retention period, at a signed cut")
    purge.add_argument("--days", type=int, default=None, help="retention (default: config)")


def run(args: argparse.Namespace) -> int:
    try:
        handler: Callable[[argparse.Namespace, Audit], int] = _HANDLERS[args.audit_command]
        return handler(args, _settings(args.config))
    except (_Usage, ConfigError, AuditUnavailable, ValueError) as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 2


def _settings(explicit: str | None) -> Audit:
    if explicit or os.environ.get(CONFIG_ENV):
        return load(config_path(explicit)).audit
    return Audit()


def _db(args: argparse.Namespace, cfg: Audit) -> Location:
    db: Location | None = args.db or cfg.store
    if db is None:
        raise _Usage("no audit store: pass --db FILE|URL or set audit.store in the configuration")
    if isinstance(db, Path) and not db.is_file():
        raise _Usage(f"{db}: no such audit store")
    return db


def _public_key(explicit: Path | None, cfg: Audit) -> Ed25519PublicKey:
    if explicit is not None:
        return load_public_key(_read(explicit))
    private = cfg.key_path()
    if private is None:
        raise _Usage("no key: pass --key PUBKEY.pem (or a configuration with audit.store)")
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(_read(private), password=None)
    public = key.public_key()
    if not isinstance(public, Ed25519PublicKey):
        raise _Usage(f"{private}: not an Ed25519 key")
    return public


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _Usage(f"{path}: {exc.strerror}") from exc


def _verify(args: argparse.Namespace, cfg: Audit) -> int:
    from wardgate.audit.verify import verify

    db = _db(args, cfg)
    head: Path | None = args.head or cfg.head_file
    if head is not None and not head.is_file():
        raise _Usage(f"{head}: no such head file")
    report = verify(db, _public_key(args.key, cfg), head, args.pin or cfg.pin)
    for note in report.notes:
        print(f"note: {note}")
    if not report.ok:
        where = f" (first bad entry: {report.bad_seq})" if report.bad_seq is not None else ""
        print(f"FAILED{where}: {report.problem}")
        return 1
    print(
        f"OK: entries {report.first_seq}..{report.last_seq} chained; {report.heads} signed heads"
        f" and {report.anchored} anchored heads verified"
    )
    return 0


def _prove(args: argparse.Namespace, cfg: Audit) -> int:
    from wardgate.audit.verify import prove

    store = open_store(_db(args, cfg), readonly=True)
    try:
        print(json.dumps(prove(store, args.seq), indent=2))
    finally:
        store.close()
    return 0


def _when(value: str | None) -> str | None:
    """An ISO date or time (UTC unless it says otherwise) in the events' form."""
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _Usage(f"{value!r} is not an ISO 8601 date or time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _search(args: argparse.Namespace, cfg: Audit) -> int:
    query = Query(
        user=args.user,
        agent=args.agent,
        target=args.target,
        table=args.table,
        decision=args.decision,
        type=args.type,
        since=_when(args.since),
        until=_when(args.until),
        limit=args.limit,
    )
    store = open_store(_db(args, cfg), readonly=True)
    try:
        for entry in store.search(query):
            if args.json:
                print(entry.event)
                continue
            event = json.loads(entry.event)
            who = event.get("who") or {}
            subject = who.get("subject") or who.get("claimed_user") or "-"
            what = event.get("statement") or event.get("reason") or ""
            target = (event.get("session") or {}).get("target") or "-"
            decision = event.get("decision") or event.get("outcome") or "-"
            print(
                f"{entry.seq}\t{entry.time}\t{entry.type}\t{subject}\t{target}\t{decision}\t{what}"
            )
    finally:
        store.close()
    return 0


def _export(args: argparse.Namespace, cfg: Audit) -> int:
    convert: Callable[[dict[str, Any]], str] | None = None
    if args.format != "jsonl":
        try:
            siem = importlib.import_module("wardgate.audit.siem")
            fn = getattr(siem, f"to_{args.format}")
        except (ImportError, AttributeError):
            raise _Usage(f"export --format {args.format} is not available in this build") from None
        if args.format == "ocsf":
            convert = lambda e: json.dumps(fn(e), separators=(",", ":"))  # noqa: E731
        else:
            convert = lambda e: str(fn(e))  # noqa: E731
    store = open_store(_db(args, cfg), readonly=True)
    try:
        query = Query(since=_when(args.since), until=_when(args.until))
        for entry in store.search(query):
            print(entry.event if convert is None else convert(json.loads(entry.event)))
    finally:
        store.close()
    return 0


def _key(args: argparse.Namespace, cfg: Audit) -> int:
    private: Path | None = args.key_file or cfg.key_path()
    if private is None:
        raise _Usage("no key: pass --key-file or a configuration with audit.key or audit.store")
    public = _public_key(None, cfg.model_copy(update={"key": private}))
    if args.id:
        print(key_id(public))
        return 0
    print(f"key id (pin it: wardgate audit verify --pin): {key_id(public)}", file=sys.stderr)
    print(public_pem(public), end="")
    return 0


def _ack(args: argparse.Namespace, cfg: Audit) -> int:
    import getpass
    import time

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from wardgate.audit.alarms import AlarmFile

    private, alarms = cfg.key_path(), cfg.alarm_path()
    if private is None or alarms is None:
        raise _Usage("ack needs the signing key: set audit.store (and audit.key)")
    key = load_pem_private_key(_read(private), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise _Usage(f"{private}: not an Ed25519 key")
    done = AlarmFile(alarms, key).acknowledge(args.reason, getpass.getuser(), time.time())
    if done is None:
        print(f"no open tamper alarm in {alarms}")
        return 1
    print(
        f"acknowledged the tamper alarm of {done['alarm']}; the gateway resumes within a second"
        " and records the acknowledgement in the log"
    )
    return 0


def _purge(args: argparse.Namespace, cfg: Audit) -> int:
    from wardgate.audit.chained import ChainedAudit
    from wardgate.audit.retention import purge

    private = cfg.key_path()
    if private is None:
        raise _Usage("purge needs the signing key: set audit.store (and audit.key)")
    audit = ChainedAudit.open(
        _db(args, cfg), private, head_file=cfg.head_file, webhook=cfg.webhook, gateway=False
    )
    checkpointer = audit.checkpointer
    assert checkpointer is not None
    try:  # no final head: a running gateway keeps signing the tail
        done = purge(checkpointer, args.days or cfg.retention_days)
    finally:
        if checkpointer.anchors is not None:
            checkpointer.anchors.close()
        audit.store.close()
    if done is None:
        print("nothing to purge")
    else:
        print(f"purged entries 1..{done.cut} ({done.deleted} deleted) at a signed head")
    return 0


_HANDLERS: dict[str, Callable[[argparse.Namespace, Audit], int]] = {
    "verify": _verify,
    "prove": _prove,
    "search": _search,
    "export": _export,
    "key": _key,
    "purge": _purge,
    "ack": _ack,
}

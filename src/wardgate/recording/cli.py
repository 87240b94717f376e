"""``wardgate sessions list|show|verify|kill|delete|purge`` and ``wardgate replay``.

Run on the gateway host with the gateway's configuration: recordings are read from
``recording.directory`` with ``recording.key``. The administrator's acts that change something
(kill, delete, purge) are queued for the audit in the identity state store's outbox, which the
running gateway drains (see ``identity/state.py``); kill and delete need that store.
Exit status: 0 done, 1 a failed verification or a kill that no gateway acted on, 2 a usage or
configuration problem.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
import time
from pathlib import Path
from typing import Any

from wardgate.audit.events import identity_event
from wardgate.config import Config, ConfigError, config_path, load
from wardgate.recording.addon import locations
from wardgate.recording.keys import FileKeyProvider, KeyUnavailable
from wardgate.recording.reader import Summary, records, summary, verify
from wardgate.recording.replay import FORMATS, replay
from wardgate.recording.retention import expired, recordings
from wardgate.recording.writer import SUFFIX

COMMANDS = ("sessions", "replay")


class _Usage(Exception):
    """Exit status 2."""


def add_parsers(sub: Any) -> None:
    def command(parent: Any, name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help)
        p.add_argument("-c", "--config", default=None, help="configuration file")
        return p

    sessions = sub.add_parser("sessions", help="recorded sessions: list, show, verify, kill")
    actions = sessions.add_subparsers(dest="sessions_command", required=True, metavar="ACTION")
    listing = command(actions, "list", "recent recordings, newest first")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    command(actions, "show", "a recording's session and how it ended").add_argument("id")
    command(actions, "verify", "decrypt every chunk; compare with the audit's hash").add_argument(
        "id"
    )
    kill = command(actions, "kill", "end a live session (FATAL 57P01), as an audited act")
    kill.add_argument("session", help="the session id (as in `sessions list` or the audit)")
    kill.add_argument("--reason", default="")
    kill.add_argument("--wait", type=float, default=5.0, help="seconds to wait for the gateway")
    delete = command(actions, "delete", "delete a recording before its time (audited)")
    delete.add_argument("id")
    delete.add_argument("--reason", required=True)
    purge = command(actions, "purge", "delete recordings older than audit.retention_days")
    purge.add_argument("--dry-run", action="store_true")

    play = command(sub, "replay", "a recorded session's statements and results")
    play.add_argument("id")
    pace = play.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=None, help="1 is real time; 0 no pauses")
    pace.add_argument("--step", action="store_true", help="wait for Enter before each statement")
    play.add_argument("--format", choices=FORMATS, default="text")


def run(args: argparse.Namespace) -> int:
    try:
        config = load(config_path(args.config))
        if args.command == "replay":
            return _replay(config, args)
        handler = _HANDLERS[args.sessions_command]
        return handler(config, args)
    except (_Usage, ConfigError, KeyUnavailable) as exc:
        print(f"wardgate: {exc}", file=sys.stderr)
        return 2


def _actor() -> str:
    return f"admin:{getpass.getuser()}"


def _keys(config: Config) -> FileKeyProvider:
    return FileKeyProvider(locations(config)[1])


def _find(config: Config, wanted: str) -> Path:
    """A recording by session id, by a unique prefix of one, or by its path."""
    as_path = Path(wanted)
    if as_path.suffix == SUFFIX and as_path.is_file():
        return as_path
    directory = locations(config)[0]
    exact = directory / f"{wanted}{SUFFIX}"
    if exact.is_file():
        return exact
    matches = sorted(directory.glob(f"{wanted}*{SUFFIX}")) if len(wanted) >= 4 else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise _Usage(f"{wanted!r} names {len(matches)} recordings; give more of the id")
    raise _Usage(f"no recording {wanted!r} in {directory}")


def _time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def _row(item: Summary) -> dict[str, Any]:
    who = item.header.get("who", {})
    session = item.header.get("session", {})
    end = item.end or {}
    how = end.get("reason") or (
        "unreadable: " + item.problem if item.problem and not item.header else "live, or cut off"
    )
    return {
        "id": item.id,
        "who": who.get("subject") or who.get("claimed_user") or "?",
        "on_behalf_of": list(who.get("on_behalf_of") or []),
        "target": session.get("target", "?"),
        "client": session.get("client_addr", "?"),
        "application": session.get("application", ""),
        "start": _time(item.header.get("started")),
        "end": _time(end.get("time")),
        "ended": how,
        "truncated": bool(end.get("truncated")),
        "bytes": item.size,
    }


def _list(config: Config, args: argparse.Namespace) -> int:
    found = recordings(locations(config)[0], _keys(config))[: args.limit]
    rows = [_row(item) for item in found]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("ID\tWHO\tON BEHALF OF\tTARGET\tSTART\tEND\tENDED\tBYTES")
    for r in rows:
        chain = ",".join(r["on_behalf_of"]) or "-"
        print(
            f"{r['id']}\t{r['who']}\t{chain}\t{r['target']}\t{r['start']}\t{r['end']}\t"
            f"{r['ended']}\t{r['bytes']}"
        )
    return 0


def _show(config: Config, args: argparse.Namespace) -> int:
    item = summary(_find(config, args.id), _keys(config))
    out = {**_row(item), "path": str(item.path), "header": item.header, "end": item.end}
    if item.problem:
        out["problem"] = item.problem
    print(json.dumps(out, indent=2))
    return 0


def _replay(config: Config, args: argparse.Namespace) -> int:
    path = _find(config, args.id)
    try:
        replay(
            records(path, _keys(config)), sys.stdout, fmt=args.format, speed=args.speed,
            step=args.step,
        )  # fmt: skip
    except Exception as exc:  # a damaged or cut-off recording: what came before it is shown
        sys.stdout.flush()
        print(f"wardgate: the recording ends here: {exc}", file=sys.stderr)
        return 1
    return 0


def _verify(config: Config, args: argparse.Namespace) -> int:
    path = _find(config, args.id)
    result = verify(path, _keys(config))
    if not result.ok:
        print(f"FAILED: {path.name}: {result.problem}")
        return 1
    session_id = path.name.removesuffix(SUFFIX)
    audited = _audited_hash(config, session_id)
    if audited is None:
        print(f"FAILED: no session-end audit event carries recording {session_id}")
        return 1
    if audited != result.sha256:
        print(f"FAILED: sha256 {result.sha256} differs from the audit event's {audited}")
        return 1
    print(
        f"OK: {result.chunks} chunks and {result.records} records decrypt and authenticate;"
        f" sha256 {result.sha256} is the one in the session-end audit event"
    )
    return 0


def _audited_hash(config: Config, session_id: str) -> str | None:
    """The recording hash of the session's ``session.end`` event, from the audit store or the
    JSON-lines file."""
    for event in _session_ends(config, session_id):
        recording = event.get("recording") or {}
        if (event.get("session") or {}).get("id") == session_id and recording.get("sha256"):
            return str(recording["sha256"])
    return None


def _session_ends(config: Config, session_id: str) -> Any:
    audit = config.audit
    if audit.store is not None:
        from wardgate.audit.store import Query, open_store

        store = open_store(audit.store, readonly=True)
        try:
            for entry in store.search(Query(type="session.end")):
                if session_id in entry.event:
                    yield json.loads(entry.event)
        finally:
            store.close()
    if audit.path is not None and audit.path.is_file():
        with audit.path.open(encoding="utf-8") as f:
            for line in f:
                if session_id in line and '"session.end"' in line:
                    yield json.loads(line)


def _store(config: Config) -> Any:
    from wardgate.identity.state import StateStore

    state = config.identity.state
    if state is None:
        raise _Usage(
            "this needs identity.state: the state store is how the gateway is reached and how"
            " an administrator's act reaches the audit"
        )
    return StateStore(state)


def _kill(config: Config, args: argparse.Namespace) -> int:
    store = _store(config)
    try:
        actor = _actor()
        event = identity_event(
            "session.kill_requested", actor, time.time(), session={"id": args.session},
            reason=args.reason,
        )  # fmt: skip
        store.request_kill(args.session, actor, args.reason, event)
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            if store.kill_ended(args.session) is not None:
                print(f"ended session {args.session}", file=sys.stderr)
                return 0
            time.sleep(0.1)
    finally:
        store.close()
    print(
        f"wardgate: no gateway ended session {args.session} within {args.wait:g} s"
        " (is it live, and is the gateway running?)",
        file=sys.stderr,
    )
    return 1


def _delete(config: Config, args: argparse.Namespace) -> int:
    path = _find(config, args.id)
    item = summary(path, _keys(config))
    store = _store(config)
    try:
        verified = verify(path, _keys(config))
        store.queue(
            identity_event(
                "recording.deleted", _actor(), time.time(),
                recording={"id": item.id, "sha256": verified.sha256, "bytes": item.size},
                session={"id": item.header.get("session", {}).get("id", item.id)},
                reason=args.reason,
            )
        )  # fmt: skip
    finally:
        store.close()
    path.unlink()
    print(f"deleted recording {item.id}", file=sys.stderr)
    return 0


def _purge(config: Config, args: argparse.Namespace) -> int:
    days = config.audit.retention_days
    old = expired(locations(config)[0], _keys(config), days, time.time())
    for item in old:
        print(f"{'would delete' if args.dry_run else 'deleted'} {item.id}")
        if not args.dry_run:
            item.path.unlink()
    if old and not args.dry_run and config.identity.state is not None:
        store = _store(config)
        try:
            store.queue(
                identity_event(
                    "recording.purged", _actor(), time.time(), retention_days=days,
                    recordings=[item.id for item in old],
                )
            )  # fmt: skip
        finally:
            store.close()
    print(f"{len(old)} recording(s) older than {days} days", file=sys.stderr)
    return 0


_HANDLERS = {
    "list": _list, "show": _show, "verify": _verify, "kill": _kill, "delete": _delete,
    "purge": _purge,
}  # fmt: skip

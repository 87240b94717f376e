"""A recording's timeline in the terminal, or exported as JSON lines or CSV.

Values are shown as the client received them: a text-format value as its text, a binary-format
one as ``\\x`` and its bytes in hex (what psql prints for bytea). Timing: with ``speed`` the
pauses between timed records are replayed (1 is real time, 10 ten times faster); with ``step``
the replay waits for Enter before each statement.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

from wardgate.recording.format import State

FORMATS = ("text", "json", "csv")
MAX_PAUSE = 5.0  # a long idle stretch is shortened to this many seconds at any speed


def value_text(value: bytes | None, binary: bool) -> str | None:
    if value is None:
        return None
    if binary:
        return "\\x" + value.hex()
    return value.decode("utf-8", "replace")


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M:%S.%f")[:-3]


class _Formats:
    """The columns of each request's current result, for rendering its rows."""

    def __init__(self) -> None:
        self.binary: dict[int, list[bool]] = {}

    def values(self, state: State) -> list[str | None]:
        flags = self.binary.get(state["seq"], [])
        values: list[bytes | None] = state["values"]
        return [value_text(v, flags[i] if i < len(flags) else False) for i, v in enumerate(values)]


def exported(state: State, formats: _Formats) -> dict[str, Any]:
    """A state as JSON-ready data (row values as text)."""
    if state["type"] == "columns":
        formats.binary[state["seq"]] = [c["binary"] for c in state["columns"]]
    if state["type"] == "row":
        return {"type": "row", "seq": state["seq"], "values": formats.values(state)}
    return dict(state)


def replay(
    states: Iterable[State],
    out: TextIO,
    *,
    fmt: str = "text",
    speed: float | None = None,
    step: bool = False,
    wait: Callable[[], object] = input,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    formats = _Formats()
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(["type", "seq", "time", "detail"])
    last: float | None = None
    for state in states:
        when = state.get("time", state.get("started"))
        if speed and when is not None:
            if last is not None and when > last:
                sleep(min((when - last) / speed, MAX_PAUSE))
            last = when
        if step and state["type"] == "request":
            out.flush()
            wait()
        data = exported(state, formats)
        if fmt == "json":
            out.write(json.dumps(data, ensure_ascii=False) + "\n")
        elif writer is not None:
            writer.writerow(_csv_row(data))
        else:
            out.write(_text(data))
        if speed or step:
            out.flush()


def _csv_row(data: dict[str, Any]) -> list[Any]:
    kind = data["type"]
    head = [kind, data.get("seq", ""), data.get("time", data.get("started", ""))]
    if kind == "row":
        return head + ["" if v is None else v for v in data["values"]]
    if kind == "columns":
        return head + [c["name"] for c in data["columns"]]
    if kind == "request":
        return [*head, data["text"]]
    rest = {k: v for k, v in data.items() if k not in ("type", "seq", "time", "started")}
    return [*head, json.dumps(rest, ensure_ascii=False)]


def _text(data: dict[str, Any]) -> str:
    kind = data["type"]
    if kind == "header":
        s, w = data["session"], data["who"]
        name = w.get("subject") or w.get("claimed_user") or "?"
        chain = w.get("on_behalf_of") or []
        acting = f" on behalf of {' <- '.join(chain)}" if chain else ""
        started = dt.datetime.fromtimestamp(data["started"], dt.UTC).isoformat(timespec="seconds")
        return (
            f"== session {s['id']} ({s['protocol']}) {started}\n"
            f"== {name}{acting} from {s['client_addr']} ({s['application'] or '-'})"
            f" to {s['target']}; tls client {s['client_tls'] or 'none'},"
            f" target {s['upstream_tls'] or 'none'}\n"
        )
    if kind == "request":
        return f"\n[{_clock(data['time'])}] #{data['seq']} {data['kind']}: {data['text']}\n"
    if kind == "columns":
        return "  | " + "\t".join(c["name"] for c in data["columns"]) + "\n"
    if kind == "row":
        return "  | " + "\t".join("NULL" if v is None else v for v in data["values"]) + "\n"
    if kind == "document":
        text = json.dumps(data["body"], ensure_ascii=False)
        return "  " + (text if len(text) <= 2000 else text[:2000] + " ...") + "\n"
    if kind == "diagnostic":
        f = data["fields"]
        return f"  {f.get('S', f.get('V', 'NOTICE'))} {f.get('C', '')}: {f.get('M', '')}\n"
    if kind == "result_end":
        error = data.get("error")
        tail = f" {error['sqlstate']} {error['message']}" if error else ""
        return f"  ({data['rows']} rows, {data['outcome']}, {data['duration_ms']:.1f} ms){tail}\n"
    if kind == "truncated":
        return f"\n[{_clock(data['time'])}] -- recording truncated: {data['reason']}\n"
    if kind == "session_end":
        return f"\n[{_clock(data['time'])}] == session ended: {data['reason']}\n"
    return json.dumps(data) + "\n"

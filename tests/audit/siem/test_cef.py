"""CEF lines parse back to what went in, whatever the values hold."""

from __future__ import annotations

import re

import pytest

from tests.audit.siem.samples import HOSTILE, all_events
from wardgate.audit.events import Event
from wardgate.audit.siem import to_cef

_KEY = re.compile(r"(?:^| )([A-Za-z0-9]+)=")
_UNESCAPE = {"\\": "\\", "=": "=", "n": "\n", "r": "\r", "|": "|"}


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: _UNESCAPE[m.group(1)], value)


def parse(line: str) -> tuple[list[str], dict[str, str]]:
    """An independent reader: split the header on unescaped pipes, the extension on keys."""
    header: list[str] = []
    rest = line
    for _ in range(7):
        m = re.match(r"((?:[^\\|]|\\.)*)\|", rest)
        assert m, rest
        header.append(_unescape(m.group(1)))
        rest = rest[m.end() :]
    keys = list(_KEY.finditer(rest))
    ext = {}
    for here, after in zip(keys, [*keys[1:], None], strict=True):
        end = after.start() if after else len(rest)
        ext[here.group(1)] = _unescape(rest[here.end() : end])
    return header, ext


def _by_type(kind: str) -> list[Event]:
    return [e for e in all_events() if e.get("type") == kind]


@pytest.mark.parametrize("event", all_events(), ids=lambda e: str(e.get("type", "empty")))
def test_every_event_is_one_parseable_line(event: Event) -> None:
    line = to_cef(event)
    assert "\n" not in line and "\r" not in line
    header, ext = parse(line)
    assert header[:4] == ["CEF:0", "wardgate", "wardgate", "0.1.0"]
    assert 0 <= int(header[6]) <= 10
    assert ext["rt"].isdigit() and len(ext["externalId"]) == 32


def test_hostile_statement_round_trips() -> None:
    (event,) = [e for e in _by_type("statement") if e["statement"] == HOSTILE]
    header, ext = parse(to_cef(event))
    assert header[4:] == ["statement.allow", "Statement allowed", "1"]
    assert ext["cs1"] == HOSTILE.replace("\x01", "\ufffd")
    assert ext["cs1Label"] == "statement"
    assert (ext["suser"], ext["cs2"], ext["cs2Label"]) == (
        "triage-bot",
        "dr.bob,clinic-owner",
        "onBehalfOf",
    )
    assert (ext["src"], ext["spt"], ext["cn1"], ext["out"]) == ("127.0.0.1", "49086", "12", "4096")
    assert (ext["act"], ext["outcome"], ext["cs3"]) == ("allow", "ok", "clinic")
    assert ext["rt"] == "1764400000250"


def test_hostile_header_values_are_escaped() -> None:
    event = {"type": "x|y\\z\nw=v", "who": {"verified": False, "claimed_user": "m|a=l\\"}}
    line = to_cef(event)
    assert line.startswith("CEF:0|wardgate|wardgate|0.1.0|x\\|y\\\\z w=v|x\\|y\\\\z w=v|1|")
    header, ext = parse(line)
    assert header[4] == "x|y\\z w=v"
    assert ext["suser"] == "m|a=l\\" and ext["cn3"] == "0"


def test_denied_and_refused() -> None:
    denied = next(e for e in _by_type("statement") if e["decision"] == "deny")
    header, ext = parse(to_cef(denied))
    assert header[4:] == ["statement.deny", "Statement denied", "5"]
    assert (ext["act"], ext["outcome"], ext["reason"]) == ("deny", "denied", "writes need approval")
    header, ext = parse(to_cef(_by_type("session.refused")[0]))
    assert header[4:] == ["session.refused", "Login refused", "5"]
    assert (ext["act"], ext["outcome"], ext["cs5"]) == ("logon", "failure", "28P01")
    assert (ext["suser"], ext["src"], ext["spt"]) == ("eve", "::1", "50000")
    assert "cs2" not in ext


def test_error_and_session_end() -> None:
    failed = next(e for e in _by_type("statement") if e.get("error"))
    _, ext = parse(to_cef(failed))
    assert (ext["cs5"], ext["msg"]) == ("22012", 'division by "zero"')
    _, ext = parse(to_cef(_by_type("session.end")[0]))
    assert (ext["act"], ext["reason"], ext["cn2"]) == ("logoff", "client disconnected", "5000")

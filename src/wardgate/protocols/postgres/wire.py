"""Single PostgreSQL v3 messages: constants, parsers and builders.

Message bodies are given and returned without the type byte and length word unless a name says
``message`` (complete, ready to send). See the PostgreSQL manual, "Message Formats".
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

PROTOCOL_3_0 = 196608  # 3 << 16
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102

# Frontend message types.
F_QUERY = ord("Q")
F_PARSE = ord("P")
F_BIND = ord("B")
F_DESCRIBE = ord("D")
F_EXECUTE = ord("E")
F_SYNC = ord("S")
F_FLUSH = ord("H")
F_CLOSE = ord("C")
F_TERMINATE = ord("X")
F_COPY_DATA = ord("d")
F_COPY_DONE = ord("c")
F_COPY_FAIL = ord("f")
F_PASSWORD = ord("p")  # also SASLInitialResponse and SASLResponse
F_FUNCTION_CALL = ord("F")

# Backend message types.
B_AUTH = ord("R")
B_BACKEND_KEY = ord("K")
B_PARAMETER_STATUS = ord("S")
B_READY = ord("Z")
B_ROW_DESCRIPTION = ord("T")
B_DATA_ROW = ord("D")
B_COMMAND_COMPLETE = ord("C")
B_EMPTY_QUERY = ord("I")
B_ERROR = ord("E")
B_NOTICE = ord("N")
B_NOTIFICATION = ord("A")
B_PARSE_COMPLETE = ord("1")
B_BIND_COMPLETE = ord("2")
B_CLOSE_COMPLETE = ord("3")
B_NO_DATA = ord("n")
B_PARAMETER_DESCRIPTION = ord("t")
B_PORTAL_SUSPENDED = ord("s")
B_COPY_IN = ord("G")
B_COPY_OUT = ord("H")
B_COPY_BOTH = ord("W")
B_COPY_DATA = ord("d")
B_COPY_DONE = ord("c")
B_NEGOTIATE_VERSION = ord("v")

# Authentication request codes (the int32 after 'R').
AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12

_I32 = struct.Struct("!i")
_I16 = struct.Struct("!h")
_HEAD = struct.Struct("!Bi")  # a message's type byte and length
_HEADER = struct.Struct("!ci")
UTF8 = "utf-8"


class ProtocolViolation(Exception):
    """The peer sent bytes that are not a valid message here. Carries the SQLSTATE to report."""

    def __init__(self, message: str, sqlstate: str = "08P01") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def message(kind: int, body: bytes = b"") -> bytes:
    return bytes((kind,)) + _I32.pack(len(body) + 4) + body


def cstr(text: str, encoding: str = UTF8) -> bytes:
    """A NUL-terminated string; a character the encoding lacks becomes ``?``, as the server's
    own conversions would refuse it and a message the gateway makes must still be sent."""
    return text.encode(encoding, "replace") + b"\x00"


def read_cstr(body: bytes | memoryview, pos: int, encoding: str = UTF8) -> tuple[str, int]:
    """Return the NUL-terminated string at ``pos`` and the position after its NUL.

    ``encoding`` is a Python codec: the session's client_encoding (see ``client_encoding``).
    """
    raw = bytes(body) if isinstance(body, memoryview) else body
    end = raw.find(b"\x00", pos)
    if end < 0:
        raise ProtocolViolation("string without terminator")
    try:
        return raw[pos:end].decode(encoding), end + 1
    except UnicodeDecodeError as exc:
        raise ProtocolViolation(f"string is not valid {encoding.upper()}", "22021") from exc


def _read_raw(body: bytes, pos: int) -> tuple[bytes, int]:
    end = body.find(b"\x00", pos)
    if end < 0:
        raise ProtocolViolation("string without terminator")
    return body[pos:end], end + 1


# ---- start-up phase ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Startup:
    protocol: int
    parameters: Mapping[str, str]

    @property
    def user(self) -> str:
        return self.parameters.get("user", "")

    @property
    def database(self) -> str:
        return self.parameters.get("database", "") or self.user


def parse_startup(body: bytes, codec: Callable[[str], str] | None = None) -> Startup:
    """``body`` is everything after the length word of a StartupMessage. Its strings are read in
    the encoding ``codec`` names for the packet's own ``client_encoding`` (UTF-8 without one)."""
    if len(body) < 4:
        raise ProtocolViolation("start-up packet too short")
    protocol = _I32.unpack_from(body)[0]
    raw: list[tuple[bytes, bytes]] = []
    pos = 4
    while pos < len(body) and body[pos] != 0:
        key, pos = _read_raw(body, pos)
        value, pos = _read_raw(body, pos)
        raw.append((key, value))
    encoding = UTF8
    declared = dict(raw).get(b"client_encoding")
    if codec is not None and declared is not None and declared.isascii():
        encoding = codec(declared.decode())
    params: dict[str, str] = {}
    for key, value in raw:
        try:
            params[key.decode(encoding)] = value.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ProtocolViolation(f"string is not valid {encoding.upper()}", "22021") from exc
    if pos != len(body) - 1:
        raise ProtocolViolation("start-up packet has no final terminator")
    if "user" not in params:
        raise ProtocolViolation("no PostgreSQL user name specified in startup packet", "28000")
    return Startup(protocol, params)


def startup_message(
    parameters: Mapping[str, str], protocol: int = PROTOCOL_3_0, encoding: str = UTF8
) -> bytes:
    body = _I32.pack(protocol)
    pairs = (cstr(k, encoding) + cstr(v, encoding) for k, v in parameters.items())
    body += b"".join(pairs) + b"\x00"
    return _I32.pack(len(body) + 4) + body


def ssl_request() -> bytes:
    return _I32.pack(8) + _I32.pack(SSL_REQUEST)


def cancel_request(pid: int, key: int) -> bytes:
    return _I32.pack(16) + _I32.pack(CANCEL_REQUEST) + struct.pack("!ii", pid, key)


def negotiate_version(newest_minor: int, unknown: Iterable[str]) -> bytes:
    names = list(unknown)
    body = _I32.pack(PROTOCOL_3_0 | newest_minor) + _I32.pack(len(names))
    return message(B_NEGOTIATE_VERSION, body + b"".join(cstr(n) for n in names))


# ---- backend messages the gateway makes ---------------------------------------------------------


def auth_request(code: int, data: bytes = b"") -> bytes:
    return message(B_AUTH, _I32.pack(code) + data)


def auth_sasl(mechanisms: Iterable[str]) -> bytes:
    return auth_request(AUTH_SASL, b"".join(cstr(m) for m in mechanisms) + b"\x00")


def parameter_status(name: str, value: str) -> bytes:
    return message(B_PARAMETER_STATUS, cstr(name) + cstr(value))


def backend_key_data(pid: int, key: int) -> bytes:
    return message(B_BACKEND_KEY, struct.pack("!ii", pid, key))


def ready_for_query(status: bytes = b"I") -> bytes:
    return message(B_READY, status)


@dataclass(frozen=True)
class ErrorFields:
    """An ErrorResponse or NoticeResponse, by field code (S, V, C, M, D, H, ...)."""

    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def sqlstate(self) -> str:
        return self.fields.get("C", "")

    @property
    def text(self) -> str:
        return self.fields.get("M", "")

    @property
    def severity(self) -> str:
        return self.fields.get("V", self.fields.get("S", ""))


def error_body(
    severity: str, sqlstate: str, text: str, detail: str = "", hint: str = "", encoding: str = UTF8
) -> bytes:
    fields = {"S": severity, "V": severity, "C": sqlstate, "M": text}
    if detail:
        fields["D"] = detail
    if hint:
        fields["H"] = hint
    return fields_body(fields, encoding)


def error_response(
    severity: str,
    sqlstate: str,
    text: str,
    detail: str = "",
    hint: str = "",
    encoding: str = UTF8,
) -> bytes:
    return message(B_ERROR, error_body(severity, sqlstate, text, detail, hint, encoding))


def notice_response(text: str, detail: str = "", hint: str = "", encoding: str = UTF8) -> bytes:
    return message(B_NOTICE, error_body("NOTICE", "00000", text, detail, hint, encoding))


def fields_body(fields: Mapping[str, str], encoding: str = UTF8) -> bytes:
    """An ErrorResponse or NoticeResponse body from its fields, in the order given."""
    parts = (code.encode() + cstr(value, encoding) for code, value in fields.items())
    return b"".join(parts) + b"\x00"


def parse_error_fields(body: bytes, encoding: str = UTF8) -> ErrorFields:
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(body) and body[pos] != 0:
        code = chr(body[pos])
        value, pos = read_cstr(body, pos + 1, encoding)
        fields[code] = value
    return ErrorFields(fields)


# ---- frontend messages the gateway inspects -----------------------------------------------------


def parse_query(body: bytes, encoding: str = UTF8) -> str:
    return read_cstr(body, 0, encoding)[0]


def parse_parse(body: bytes, encoding: str = UTF8) -> tuple[str, str]:
    """Parse message: (statement name, query text)."""
    name, pos = read_cstr(body, 0, encoding)
    query, _ = read_cstr(body, pos, encoding)
    return name, query


def parse_bind_names(body: bytes, encoding: str = UTF8) -> tuple[str, str]:
    """Bind message: (portal, statement) only."""
    portal, pos = read_cstr(body, 0, encoding)
    return portal, read_cstr(body, pos, encoding)[0]


def parse_bind(body: bytes, encoding: str = UTF8) -> tuple[str, str, tuple[int, ...]]:
    """Bind message: (portal, statement, result format codes); parameter values are skipped."""
    portal, pos = read_cstr(body, 0, encoding)
    statement, pos = read_cstr(body, pos, encoding)
    try:
        (count,) = _I16.unpack_from(body, pos)
        pos += 2 + 2 * count
        (count,) = _I16.unpack_from(body, pos)
        pos += 2
        for _ in range(count):
            (size,) = _I32.unpack_from(body, pos)
            pos += 4 + max(size, 0)
        (count,) = _I16.unpack_from(body, pos)
        formats = struct.unpack_from(f"!{count}h", body, pos + 2)
    except struct.error as exc:
        raise ProtocolViolation("malformed Bind message") from exc
    if pos + 2 + 2 * count != len(body) or any(f not in (0, 1) for f in formats):
        raise ProtocolViolation("malformed Bind message")
    return portal, statement, formats


def parse_execute(body: bytes, encoding: str = UTF8) -> tuple[str, int]:
    portal, pos = read_cstr(body, 0, encoding)
    if len(body) < pos + 4:
        raise ProtocolViolation("Execute message too short")
    return portal, _I32.unpack_from(body, pos)[0]


def parse_close(body: bytes, encoding: str = UTF8) -> tuple[str, str]:
    """Close or Describe: (kind 'S' or 'P', name)."""
    if not body:
        raise ProtocolViolation("Close/Describe message too short")
    name, _ = read_cstr(body, 1, encoding)
    return chr(body[0]), name


def parse_command_tag_rows(body: bytes) -> int | None:
    """Rows affected or returned, from a CommandComplete tag such as ``INSERT 0 5``."""
    tag = body.rstrip(b"\x00")
    _, _, last = tag.rpartition(b" ")
    return int(last) if last.isdigit() else None


def parse_row_description(
    body: bytes, encoding: str = UTF8
) -> list[tuple[str, int, int, int, int]]:
    """Columns as (name, table oid, column number, type oid, format code)."""
    count = struct.unpack_from("!h", body)[0]
    pos = 2
    columns = []
    for _ in range(count):
        name, pos = read_cstr(body, pos, encoding)
        table, col, typ, _size, _mod, fmt = struct.unpack_from("!ihihih", body, pos)
        pos += 18
        columns.append((name, table, col, typ, fmt))
    return columns


def header(kind: int, length: int) -> bytes:
    return _HEADER.pack(bytes((kind,)), length)

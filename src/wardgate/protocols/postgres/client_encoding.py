"""The session's client_encoding, as the server reports it, and the Python codec that reads it.

Everything text in the protocol after start-up (query strings, statement and portal names, column
names, error and notice fields, notification payloads) travels in the encoding the server last
reported in a ParameterStatus for ``client_encoding``. The server reports its canonical names
(``LATIN9``, never the alias ``ISO885915``), so only those are listed. An encoding that Python
cannot read exactly (``MULE_INTERNAL``, ``EUC_TW``) is refused: reading SQL in the wrong encoding is
how a statement the gateway judged becomes another one on the server.
"""

from __future__ import annotations

from wardgate.protocols.postgres import wire
from wardgate.protocols.postgres.wire import ProtocolViolation

_PARAMETER = wire.cstr("client_encoding")

# PostgreSQL's canonical name -> Python codec. SQL_ASCII means "bytes, not interpreted" on the
# server: every byte above 127 is a character of its own, which latin-1 reproduces exactly.
_CODECS = {
    "UTF8": "utf-8",
    "SQL_ASCII": "latin-1",
    "LATIN1": "latin-1",
    "LATIN2": "iso8859-2",
    "LATIN3": "iso8859-3",
    "LATIN4": "iso8859-4",
    "LATIN5": "iso8859-9",
    "LATIN6": "iso8859-10",
    "LATIN7": "iso8859-13",
    "LATIN8": "iso8859-14",
    "LATIN9": "iso8859-15",
    "LATIN10": "iso8859-16",
    "ISO_8859_5": "iso8859-5",
    "ISO_8859_6": "iso8859-6",
    "ISO_8859_7": "iso8859-7",
    "ISO_8859_8": "iso8859-8",
    "WIN866": "cp866",
    "WIN874": "cp874",
    "WIN1250": "cp1250",
    "WIN1251": "cp1251",
    "WIN1252": "cp1252",
    "WIN1253": "cp1253",
    "WIN1254": "cp1254",
    "WIN1255": "cp1255",
    "WIN1256": "cp1256",
    "WIN1257": "cp1257",
    "WIN1258": "cp1258",
    "KOI8R": "koi8-r",
    "KOI8U": "koi8-u",
    "EUC_CN": "gb2312",
    "EUC_JP": "euc_jp",
    "EUC_JIS_2004": "euc_jis_2004",
    "EUC_KR": "euc_kr",
    "SJIS": "cp932",
    "SHIFT_JIS_2004": "shift_jis_2004",
    "BIG5": "cp950",
    "GBK": "gbk",
    "GB18030": "gb18030",
    "UHC": "cp949",
    "JOHAB": "johab",
}


def codec(name: str) -> str:
    """The Python codec for the server's name of a client_encoding; refused if there is none."""
    found = _CODECS.get(name.upper())
    if found is None:
        raise ProtocolViolation(
            f"wardgate cannot read client_encoding {name}; use UTF8",
            "0A000",
        )
    return found


def reported(parameter_status: bytes) -> str | None:
    """The codec a ParameterStatus body sets, or None if it is about another parameter. Only
    client_encoding's value is read: another's (a role name in session_authorization) is in the
    client encoding, and passes untouched."""
    if not parameter_status.startswith(_PARAMETER):
        return None
    return codec(wire.read_cstr(parameter_status, len(_PARAMETER))[0])


# Other names the server accepts for a client_encoding, in its normalized form (letters and
# digits, upper case): ISO8859N is spelled out below.
_ALIASES = {
    "UNICODE": "UTF8",
    "ALT": "WIN866",
    "WIN": "WIN1251",
    "ABC": "WIN1258",
    "TCVN": "WIN1258",
    "TCVN5712": "WIN1258",
    "VSCII": "WIN1258",
    "TIS620": "WIN874",
    "KOI8": "KOI8R",
    "MSKANJI": "SJIS",
    "SHIFTJIS": "SJIS",
    "KOREAN": "EUC_KR",
}
_ISO8859 = {"1": "LATIN1", "2": "LATIN2", "3": "LATIN3", "4": "LATIN4", "9": "LATIN5"}
_ISO8859 |= {"10": "LATIN6", "13": "LATIN7", "14": "LATIN8", "15": "LATIN9", "16": "LATIN10"}
_ISO8859 |= {n: f"ISO_8859_{n}" for n in ("5", "6", "7", "8")}
_NORMALIZED = {name.replace("_", ""): name for name in _CODECS}


def declared(name: str) -> str:
    """The codec for the client_encoding a client names in its start-up packet, where the
    server takes aliases (``latin9``, ``ISO-8859-15``, ``windows-1252``): UTF-8 for a name not
    known here (``auto``, say), as the server's ParameterStatus decides what the session uses."""
    key = "".join(c for c in name.upper() if c.isalnum())
    if key.startswith("WINDOWS"):
        key = "WIN" + key.removeprefix("WINDOWS")
    canonical = _NORMALIZED.get(key) or _ALIASES.get(key)
    if canonical is None and key.startswith("ISO8859"):
        canonical = _ISO8859.get(key.removeprefix("ISO8859"))
    return _CODECS[canonical] if canonical is not None else wire.UTF8

"""COPY TO STDOUT data in CSV format, row by row, for addons that look at rows. Sans-io.

PostgreSQL writes CSV as: fields separated by the delimiter; NULL as the null string unquoted
(empty by default), so an empty string is written quoted (``""``); a field is quoted when it
holds the delimiter, the quote, the escape, a carriage return or a newline, equals the null
string, or FORCE_QUOTE names it; inside quotes the quote and the escape are preceded by the
escape (by default the quote itself, so a quote is doubled). Quoted fields can span lines,
so a row ends at a newline outside quotes, and a CopyData message may end inside one.
With HEADER the first line holds the column names and passes as it came.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wardgate.protocols.postgres.copy import Row, RowHook
from wardgate.protocols.postgres.wire import ProtocolViolation


@dataclass(frozen=True, slots=True)
class CsvOptions:
    delimiter: bytes = b","
    quote: bytes = b'"'
    escape: bytes = b'"'
    null: bytes = b""
    header: bool = False
    force_quote: bool = False  # every non-NULL field quoted (FORCE_QUOTE of any column)

    def __post_init__(self) -> None:
        if len(self.delimiter) != 1 or len(self.quote) != 1 or len(self.escape) != 1:
            raise ValueError("CSV delimiter, quote and escape must be single bytes")


def csv_options(options: dict[str, str]) -> CsvOptions:
    """The options of a COPY statement (as the analysis reads them) as ``CsvOptions``; the
    escape defaults to the quote, as in PostgreSQL."""
    quote = options.get("quote", '"').encode()
    return CsvOptions(
        delimiter=options.get("delimiter", ",").encode(),
        quote=quote,
        escape=options.get("escape", "").encode() or quote,
        null=options.get("null", "").encode(),
        header=options.get("header", "false").lower() in ("true", "on", "1", "yes"),
        force_quote=options.get("force_quote") == "*",
    )


class CsvCopy:
    """CSV CopyData payloads in, the same data with every row passed through ``hook``, out."""

    def __init__(self, hook: RowHook, options: CsvOptions | None = None) -> None:
        self._hook = hook
        self.options = o = options or CsvOptions()
        self._rest = b""
        self._header = o.header
        self.rows = 0
        q, e, d = (re.escape(x) for x in (o.quote, o.escape, o.delimiter))
        inner = rb"(?:[^" + q + rb"]|" + q + q + rb")*" if o.quote == o.escape else (
            rb"(?:[^" + q + e + rb"]|" + e + rb"[\s\S])*"
        )  # fmt: skip
        self._field = re.compile(
            rb"(?:" + q + rb"(" + inner + rb")" + q + rb"|([^" + d + rb"\n" + q + rb"]*))"
        )
        self._unescape = re.compile(e + rb"([\s\S])")
        self._special = re.compile(rb"[" + d + q + e + rb"\r\n]")

    def feed(self, data: bytes) -> bytes:
        data = self._rest + data
        out: list[bytes] = []
        pos = 0
        while True:
            parsed = self._row(data, pos)
            if parsed is None:
                break
            row, end = parsed
            if self._header:
                self._header = False
                out.append(data[pos:end])
            else:
                out.append(self._write(self._hook(row)))
                self.rows += 1
            pos = end
        self._rest = data[pos:]
        return b"".join(out)

    def _row(self, data: bytes, pos: int) -> tuple[Row, int] | None:
        """The row at ``pos`` and where the next begins, or None if it is not complete."""
        if pos >= len(data):
            return None
        o = self.options
        row: Row = []
        while True:
            match = self._field.match(data, pos)
            assert match is not None  # the unquoted branch matches the empty string
            quoted, plain = match.group(1), match.group(2)
            end = match.end()
            if end >= len(data):
                return None  # a field may go on in the next message
            if quoted is not None:
                row.append(self._unquote(quoted))
            elif data[pos : pos + 1] == o.quote:
                return None  # an opening quote whose closing one has not arrived
            else:
                row.append(None if plain == o.null else plain)
            sep = data[end : end + 1]
            if sep == b"\n":
                return row, end + 1
            if sep != o.delimiter:
                # A quoted field cut between two quotes (``"a""`` + ``b"``) reads so until the
                # rest arrives; data that never parses is refused by ``finish``.
                return None
            pos = end + 1

    def _unquote(self, raw: bytes) -> bytes:
        o = self.options
        if o.quote == o.escape:
            return raw.replace(o.quote + o.quote, o.quote)
        return self._unescape.sub(lambda m: m.group(1), raw)

    def _write(self, values: Row) -> bytes:
        o = self.options
        fields = []
        for value in values:
            if value is None:
                fields.append(o.null)
            elif o.force_quote or value == o.null or self._special.search(value):
                body = value.replace(o.escape, o.escape + o.escape)
                if o.quote != o.escape:
                    body = body.replace(o.quote, o.escape + o.quote)
                fields.append(o.quote + body + o.quote)
            else:
                fields.append(value)
        return o.delimiter.join(fields) + b"\n"

    def finish(self) -> None:
        if self._rest:
            raise ProtocolViolation("CSV COPY data ended inside a row")

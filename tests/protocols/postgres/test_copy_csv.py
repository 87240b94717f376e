"""CSV COPY data as PostgreSQL writes it, decoded into rows and written back (copy_csv.py):
the values read are the server's values, the data written back is byte for byte what came,
however the stream is cut into messages."""

from __future__ import annotations

import psycopg
import pytest

from wardgate.demo.postgres import LocalPostgres
from wardgate.protocols.postgres.copy import Row
from wardgate.protocols.postgres.copy_csv import CsvCopy, csv_options
from wardgate.protocols.postgres.wire import ProtocolViolation
from wardgate.sql.analysis import analyse

VALUES = "(VALUES (1, 'plain', ''), (2, NULL, 'a,b'), (3, 'say \"hi\"', E'two\\nlines'),"
VALUES += " (4, E'back\\\\slash', 'it''s'), (5, E'cr\\r', 'none'), (6, ';', E'\"\\n\"'))"
OPTIONS = [
    "FORMAT csv",
    "FORMAT csv, HEADER",
    "FORMAT csv, FORCE_QUOTE *",
    "FORMAT csv, DELIMITER ';', QUOTE '''', ESCAPE '\\', NULL 'none', HEADER",
    "FORMAT csv, ESCAPE '\\'",
]


def server_copy(dsn: str, options: str) -> tuple[bytes, list[list[str | None]]]:
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        query = f"SELECT * FROM {VALUES} v(a, b, c)"
        with cur.copy(f"COPY ({query}) TO STDOUT ({options})") as copy:
            data = b"".join(bytes(c) for c in copy)
        rows = [[None if v is None else str(v) for v in r] for r in cur.execute(query)]
    return data, rows


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("step", [1, 3, 7, 10_000])
def test_rows_read_and_written_back(
    pg_server: LocalPostgres, scratch_db: str, options: str, step: int
) -> None:
    data, expected = server_copy(pg_server.dsn(scratch_db), options)
    copy_out = analyse(f"COPY patients TO STDOUT ({options})").copy_out
    assert copy_out is not None and copy_out.readable
    seen: list[Row] = []

    def hook(row: Row) -> Row:
        seen.append(list(row))
        return row

    codec = CsvCopy(hook, csv_options(dict(copy_out.csv)))
    out = b"".join(codec.feed(data[i : i + step]) for i in range(0, len(data), step))
    codec.finish()
    assert [[None if v is None else v.decode() for v in r] for r in seen] == expected
    if "FORCE_QUOTE" in options or "ESCAPE" not in options:
        assert out == data  # the server's minimal quoting is ours too
    else:
        assert out.count(b"\n") == data.count(b"\n")


def test_masked_values_are_quoted_as_needed() -> None:
    codec = CsvCopy(lambda row: [b'x,"y"', None, b""])
    assert codec.feed(b"1,2,3\n") == b'"x,""y""",,""\n'


def test_data_that_ends_inside_a_row_is_refused() -> None:
    codec = CsvCopy(lambda row: row)
    assert codec.feed(b'1,"open\n') == b""
    with pytest.raises(ProtocolViolation):
        codec.finish()

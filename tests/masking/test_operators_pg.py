"""Masked values are valid because PostgreSQL says so: raw values come from the server in both
wire formats, masked values go back to it as parameters of the same type and format, and the
server's own rendering of what it accepted is compared with what masking promised."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from psycopg import pq

from wardgate.demo.postgres import LocalPostgres
from wardgate.masking import (
    AgeOver89,
    DateToYear,
    Keep,
    Null,
    Operator,
    Partial,
    Pseudonym,
    Redact,
    Zip3,
    mask_value,
)
from wardgate.masking import pgtypes as pg
from wardgate.masking.pgtypes import Format

KEY = b"wardgate-test-key-0123456789abcdef"
FORMATS: tuple[Format, ...] = (0, 1)

# (type as SQL names it, OID, a literal of that type)
TYPES = {
    "text": ("text", 25),
    "varchar": ("varchar", 1043),
    "bpchar": ("bpchar", 1042),
    "name": ("name", 19),
    "int2": ("int2", 21),
    "int4": ("int4", 23),
    "int8": ("int8", 20),
    "numeric": ("numeric", 1700),
    "float8": ("float8", 701),
    "date": ("date", 1082),
    "timestamp": ("timestamp", 1114),
    "timestamptz": ("timestamptz", 1184),
    "interval": ("interval", 1186),
    "json": ("json", 114),
    "jsonb": ("jsonb", 3802),
    "bool": ("bool", 16),
    "uuid": ("uuid", 2950),
    "inet": ("inet", 869),
    "cidr": ("cidr", 650),
    "text[]": ("text[]", 1009),
    "varchar[]": ("varchar[]", 1015),
    "int4[]": ("int4[]", 1007),
    "date[]": ("date[]", 1182),
    "timestamptz[]": ("timestamptz[]", 1185),
    "jsonb[]": ("jsonb[]", 3807),
    "uuid[]": ("uuid[]", 2951),
}


@pytest.fixture(scope="module")
def conn(pg_server: LocalPostgres) -> Iterator[pq.abc.PGconn]:
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as connection:
        connection.execute("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'")
        connection.execute("SET IntervalStyle = 'postgres'")
        yield connection.pgconn


def server_value(conn: pq.abc.PGconn, literal: str, type_name: str, fmt: Format) -> bytes:
    """The wire bytes PostgreSQL sends for `literal::type_name` in format `fmt`."""
    query = f"SELECT {literal}::{type_name}".encode()
    result = conn.exec_params(query, [], [], [], fmt)
    assert result.status == pq.ExecStatus.TUPLES_OK, result.error_message
    value = result.get_value(0, 0)
    assert value is not None
    return value


def server_reads(conn: pq.abc.PGconn, value: bytes, type_name: str, oid: int, fmt: Format) -> str:
    """How PostgreSQL renders `value` received as a parameter of type `oid` in format `fmt`;
    fails the test when the server rejects it."""
    query = f"SELECT $1::{type_name}::text".encode()
    result = conn.exec_params(query, [value], [oid], [fmt], 0)
    assert result.status == pq.ExecStatus.TUPLES_OK, (value, result.error_message)
    text = result.get_value(0, 0)
    assert text is not None
    return text.decode()


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


CASES: list[tuple[str, str, Operator, str | None]] = [
    # type, value, operator, what PostgreSQL must read back (None: the masked cell is NULL)
    ("text", "123-45-6789", Redact(), "***"),
    ("varchar", "Kathleen", Redact("[NAME]"), "[NAME]"),
    ("bpchar", "00123456", Redact(), "***"),
    ("name", "kathleen", Redact(), "***"),
    ("json", '{"ssn": "123-45-6789"}', Redact(), '"***"'),
    ("jsonb", '{"ssn": "123-45-6789"}', Redact(), '"***"'),
    ("int4", "42", Redact(), None),
    ("date", "1984-05-12", Redact(), None),
    ("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", Redact(), None),
    ("bool", "true", Redact(), None),
    ("text", "123-45-6789", Partial(), "***-**-6789"),
    ("varchar", "(212) 555-0142", Partial(), "(***) ***-0142"),
    ("text", "4321", Partial(), "****"),
    ("int8", "4111111111111111", Partial(), "1111"),
    ("int4", "12345", Partial(), None),
    ("jsonb", '{"ssn": "123-45-6789", "n": 3}', Partial(), '{"n": null, "ssn": "***-**-6789"}'),
    ("date", "1984-05-12", Partial(), None),
    ("date", "1984-05-12", DateToYear(), "1984-01-01"),
    ("date", "2024-02-29", DateToYear(), "2024-01-01"),
    ("date", "0044-03-15 BC", DateToYear(), "0044-01-01 BC"),
    ("date", "infinity", DateToYear(), "infinity"),
    ("timestamp", "1984-05-12 13:14:15.5", DateToYear(), "1984-01-01 00:00:00"),
    ("timestamptz", "1984-05-12 13:14:15+00", DateToYear(), "1984-01-01 12:00:00+00"),
    ("timestamptz", "1999-12-31 23:59:59+00", DateToYear(), "1999-01-01 12:00:00+00"),
    ("text", "05/12/1984", DateToYear(), "1984"),
    ("text", "March 3, 2020", DateToYear(), "2020"),
    ("text", "no date here", DateToYear(), None),
    ("json", '"1984-05-12"', DateToYear(), '"1984"'),
    ("int4", "19840512", DateToYear(), None),
    ("text", "02134-1234", Zip3(), "021"),
    ("text", "03601", Zip3(), "000"),
    ("varchar", "89301", Zip3(), "000"),
    ("bpchar", "90210", Zip3(), "902"),
    ("text", "Boston", Zip3(), None),
    ("int4", "90210", Zip3(), "902"),
    ("int4", "2134", Zip3(), "21"),
    ("int4", "82301", Zip3(), "0"),
    ("int4", "93", AgeOver89(), "90"),
    ("int4", "45", AgeOver89(), "45"),
    ("int2", "104", AgeOver89(), "90"),
    ("int8", "90", AgeOver89(), "90"),
    ("numeric", "93.5", AgeOver89(), "90"),
    ("numeric", "45.25", AgeOver89(), "45.25"),
    ("float8", "95", AgeOver89(), "90"),
    ("text", "93", AgeOver89(), "90+"),
    ("text", "93 y/o", AgeOver89(), "90+"),
    ("text", "57", AgeOver89(), "57"),
    ("interval", "93 years 2 mons 3 days", AgeOver89(), "90 years"),
    ("interval", "45 years 1 mon", AgeOver89(), "45 years 1 mon"),
    ("jsonb", '{"age": 93, "label": "93"}', AgeOver89(), '{"age": 90, "label": "90+"}'),
    ("text", "anything", Null(), None),
    ("date", "1984-05-12", Null(), None),
    ("jsonb", "[1, 2]", Null(), None),
    ("timestamptz", "2024-03-04 05:06:07.123456+00", Keep(), "2024-03-04 05:06:07.123456+00"),
    ("text[]", '{123-45-6789,NULL,"a b"}', Redact(), "{***,NULL,***}"),
    ("text[]", '{"123-45-6789","(212) 555-0142"}', Partial(), '{***-**-6789,"(***) ***-0142"}'),
    ("text[]", '{"x,y","q\\"z",""}', Keep(), '{"x,y","q\\"z",""}'),
    ("text[]", "{{02134,03601},{90210,nope}}", Zip3(), "{{021,000},{902,NULL}}"),
    ("text[]", "[0:1]={02134,90210}", Zip3(), "[0:1]={021,902}"),
    ("text[]", "{}", Redact(), "{}"),
    ("varchar[]", "{Kathleen,Smith}", Redact("[NAME]"), "{[NAME],[NAME]}"),
    ("int4[]", "{93,45,NULL,104}", AgeOver89(), "{90,45,NULL,90}"),
    ("int4[]", "{1,2}", Redact(), None),
    ("date[]", "{1984-05-12,2001-02-03}", DateToYear(), "{1984-01-01,2001-01-01}"),
    ("timestamptz[]", '{"1984-05-12 01:02:03+00"}', DateToYear(), '{"1984-01-01 12:00:00+00"}'),
    (
        "jsonb[]",
        '{"{\\"ssn\\": \\"123-45-6789\\"}"}',
        Partial(),
        '{"{\\"ssn\\": \\"***-**-6789\\"}"}',
    ),
    ("numeric", "-0.00012300", Keep(), "-0.00012300"),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("type_key", "value", "operator", "expected"), CASES)
def test_masked_value_is_what_postgres_reads(
    conn: pq.abc.PGconn,
    type_key: str,
    value: str,
    operator: Operator,
    expected: str | None,
    fmt: Format,
) -> None:
    type_name, oid = TYPES[type_key]
    raw = server_value(conn, quote(value), type_name, fmt)
    masked = mask_value(raw, oid, fmt, operator, KEY)
    if expected is None:
        assert masked is None
    else:
        assert masked is not None
        assert server_reads(conn, masked, type_name, oid, fmt) == expected


PSEUDONYM_VALUES = [
    ("text", "123-45-6789"),
    ("varchar", "kathleen.smith12@example.com"),
    ("bpchar", "00123456"),
    ("name", "kathleen"),
    ("int2", "1234"),
    ("int4", "123456"),
    ("int8", "-9000000000"),
    ("numeric", "123456.789"),
    ("float8", "12345"),
    ("date", "1984-05-12"),
    ("date", "0044-03-15 BC"),
    ("timestamp", "1984-05-12 13:14:15.5"),
    ("timestamptz", "1984-05-12 13:14:15.25+00"),
    ("json", '{"mrn": "00123456", "visits": [1, 2]}'),
    ("jsonb", '{"mrn": "00123456", "visits": [1, 2]}'),
    ("uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("inet", "192.168.1.5/24"),
    ("inet", "192.168.1.5"),
    ("inet", "2001:db8::1"),
    ("cidr", "192.168.0.0/16"),
    ("cidr", "2001:db8::/32"),
    ("text[]", '{00123456,"a b",NULL}'),
    ("int4[]", "{{1,2},{3,NULL}}"),
    ("date[]", "{1984-05-12}"),
    ("uuid[]", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"),
]


@pytest.mark.parametrize(("type_key", "value"), PSEUDONYM_VALUES)
def test_pseudonym_is_valid_stable_and_the_same_in_both_formats(
    conn: pq.abc.PGconn, type_key: str, value: str
) -> None:
    type_name, oid = TYPES[type_key]
    seen = set()
    for fmt in FORMATS:
        raw = server_value(conn, quote(value), type_name, fmt)
        first = mask_value(raw, oid, fmt, Pseudonym(), KEY)
        assert first is not None
        assert mask_value(raw, oid, fmt, Pseudonym(), KEY) == first
        assert mask_value(raw, oid, fmt, Pseudonym(), b"another key") != first
        seen.add(server_reads(conn, first, type_name, oid, fmt))
    assert len(seen) == 1, seen  # text and binary results name the same value
    original = server_reads(conn, server_value(conn, quote(value), type_name, 0), type_name, oid, 0)
    assert seen != {original}


@pytest.mark.parametrize("type_key", ["bool", "interval"])
def test_pseudonym_of_a_type_without_one_is_null(conn: pq.abc.PGconn, type_key: str) -> None:
    type_name, oid = TYPES[type_key]
    literal = {"bool": "true", "interval": "'1 day'"}[type_key]
    for fmt in FORMATS:
        assert (
            mask_value(server_value(conn, literal, type_name, fmt), oid, fmt, Pseudonym(), KEY)
            is None
        )


def test_pseudonyms_join_across_integer_widths_and_formats(conn: pq.abc.PGconn) -> None:
    text4 = mask_value(server_value(conn, "42", "int4", 0), 23, 0, Pseudonym(), KEY)
    binary8 = mask_value(server_value(conn, "42", "int8", 1), 20, 1, Pseudonym(), KEY)
    assert text4 is not None and binary8 is not None
    # int8 keeps 63 bits where int4 keeps 31; both come from the same digest of "42"
    assert int(server_reads(conn, binary8, "int8", 20, 1)) & 0x7FFFFFFF >= 0
    assert server_reads(conn, text4, "int4", 23, 0) == server_reads(
        conn,
        mask_value(server_value(conn, "42", "int4", 1), 23, 1, Pseudonym(), KEY) or b"",
        "int4",
        23,
        1,
    )


@pytest.mark.parametrize(
    "literal",
    ["0", "1", "-1", "0.0001", "12345.678", "-0.00012300", "100000000", "1.50", "NaN",
     "99999999999999999999.5", "123456789.000000001", "0.00", "1e-20", "Infinity", "-Infinity"],
)  # fmt: skip
def test_numeric_binary_codec_agrees_with_postgres(conn: pq.abc.PGconn, literal: str) -> None:
    if "Infinity" in literal and conn.server_version < 140000:
        pytest.skip("numeric has infinities from PostgreSQL 14 on")
    wire = server_value(conn, quote(literal), "numeric", 1)
    value = pg.decode_numeric_binary(wire)
    text = server_value(conn, quote(literal), "numeric", 0).decode()
    assert str(value) == str(Decimal(text))
    ours = pg.encode_numeric_binary(value)
    if value.is_finite():  # PostgreSQL gives infinities a display scale; we send none
        assert ours == wire
    assert server_reads(conn, ours, "numeric", 1700, 1) == text


@pytest.mark.parametrize(
    "literal",
    ["2000-01-01", "1999-12-31", "1984-05-12", "2024-02-29", "0001-01-01", "0001-12-31 BC",
     "0044-03-15 BC", "4713-11-24 BC", "9999-12-31", "12345-06-07"],
)  # fmt: skip
def test_date_codec_agrees_with_postgres(conn: pq.abc.PGconn, literal: str) -> None:
    text = server_value(conn, quote(literal), "date", 0)
    days = pg.DATE_STRUCT.unpack(server_value(conn, quote(literal), "date", 1))[0]
    assert pg.parse_date_text(text) == days
    assert pg.format_date(days) == text


@pytest.mark.parametrize(
    "literal",
    ["2000-01-01 00:00:00", "1984-05-12 13:14:15.5", "1969-07-20 20:17:40.000001",
     "0044-03-15 12:00:00 BC", "2262-04-11 23:47:16.854775"],
)  # fmt: skip
@pytest.mark.parametrize("zone", [False, True])
def test_timestamp_codec_agrees_with_postgres(
    conn: pq.abc.PGconn, literal: str, zone: bool
) -> None:
    type_name = "timestamptz" if zone else "timestamp"
    text = server_value(conn, quote(literal), type_name, 0)
    usec = pg.TIMESTAMP_STRUCT.unpack(server_value(conn, quote(literal), type_name, 1))[0]
    assert pg.parse_timestamp_text(text, with_zone=zone) == usec
    assert pg.format_timestamp(usec, with_zone=zone) == text


def test_timestamptz_year_survives_the_session_time_zone(pg_server: LocalPostgres) -> None:
    with psycopg.connect(pg_server.dsn("postgres"), autocommit=True) as connection:
        connection.execute("SET TimeZone = 'America/New_York'")
        c = connection.pgconn
        for fmt in FORMATS:
            raw = server_value(c, quote("1984-01-01 00:30:00-05"), "timestamptz", fmt)
            masked = mask_value(raw, 1184, fmt, DateToYear(), KEY)
            assert masked is not None
            assert server_reads(c, masked, "timestamptz", 1184, fmt).startswith("1984-01-01 ")
        connection.execute("SET TimeZone = 'Pacific/Kiritimati'")  # UTC+14
        raw = server_value(c, quote("1984-12-31 23:30:00+14"), "timestamptz", 1)
        masked = mask_value(raw, 1184, 1, DateToYear(), KEY)
        assert masked is not None
        assert server_reads(c, masked, "timestamptz", 1184, 1).startswith("1984-01-01 ")


def test_malformed_cells_become_null() -> None:
    assert mask_value(b"\x00\x01", 23, 1, AgeOver89(), KEY) is None  # 2 bytes for an int4
    assert mask_value(b"not a date", 1082, 0, DateToYear(), KEY) is None
    assert mask_value(b"\x02{}", 3802, 1, Partial(), KEY) is None  # jsonb version 2
    assert mask_value(b"{", 114, 0, Pseudonym(), KEY) is None
    assert mask_value(None, 25, 0, Redact(), KEY) is None

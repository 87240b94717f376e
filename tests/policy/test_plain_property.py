"""The policy's fast path (`danger.plain`) never lets a dangerous statement through unparsed.

Hypothesis writes every dangerous function and every dangerous statement kind in many ways
(case, quoting, schema qualification, Unicode escapes, comments, dollar quoting) and embeds
the functions in many statement shapes; each text must be one that the full classification
deems dangerous (so the property is never vacuous) and that `plain` refuses to call plain.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate.sql import classify
from wardgate.sql.danger import DANGEROUS_SETTINGS
from wardgate.sql.danger import plain as _plain
from wardgate.sql.functions import DANGEROUS, DANGEROUS_PREFIXES

NAMES = sorted(DANGEROUS) + [f"{p}{s}" for p in DANGEROUS_PREFIXES for s in ("", "x", "exec")]
SETTINGS = [*sorted(DANGEROUS_SETTINGS), "log_statement", "pgaudit.log", "debug_print_parse"]

_harmless = st.text(alphabet="abc XYZ 019_-+=.,'\"$", max_size=12)  # no "*/", no newline


@st.composite
def gap(draw: st.DrawFn) -> str:
    """What may stand between two tokens: spaces, newlines, comments."""
    parts = draw(st.lists(st.sampled_from(["block", "line", "space"]), min_size=1, max_size=3))
    out = []
    for part in parts:
        if part == "block":
            out.append(f" /*{draw(_harmless)}*/ ")
        elif part == "line":
            out.append(f" --{draw(_harmless)}\n")
        else:
            out.append(draw(st.sampled_from([" ", "\n", "\t", "  "])))
    return "".join(out)


def cased(draw: st.DrawFn, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if f else c for c, f in zip(word, flips, strict=True))


def unicode_escaped(draw: st.DrawFn, name: str) -> str:
    escape = draw(st.sampled_from(["\\", "!"]))
    chars = []
    for c in name:
        how = draw(st.sampled_from(["plain", "four", "six"]))
        if how == "four":
            chars.append(f"{escape}{ord(c):04x}")
        elif how == "six":
            chars.append(f"{escape}+{ord(c):06x}")
        else:
            chars.append(c)
    tail = f" UESCAPE '{escape}'" if escape != "\\" else ""
    return f'{draw(st.sampled_from(["U&", "u&"]))}"{"".join(chars)}"{tail}'


@st.composite
def function_name(draw: st.DrawFn, name: str) -> str:
    style = draw(st.sampled_from(["bare", "quoted", "unicode"]))
    if style == "bare":
        written = cased(draw, name)
    elif style == "quoted":
        written = f'"{name}"'
    else:
        written = unicode_escaped(draw, name)
    schema = draw(st.sampled_from(["", "pg_catalog", '"pg_catalog"', "public", "PG_CATALOG"]))
    if schema:
        return f"{schema}{draw(st.sampled_from(['', ' ', ' /* q */ ']))}.{written}"
    return written


@st.composite
def call(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(NAMES))
    args = draw(st.sampled_from(["", "'/etc/hostname'", "1, 2", "$$x$$", "$q$a;b$q$"]))
    return f"{draw(function_name(name))}{draw(st.sampled_from(['', ' ']))}({args})"


SHAPES = [
    "SELECT {c}",
    "select {c} AS x",
    "SELECT * FROM {c} AS t(a text)",
    "SELECT 1 WHERE {c} IS NOT NULL",
    "SELECT (SELECT {c})",
    "WITH x AS (SELECT {c}) SELECT * FROM x",
    "INSERT INTO t (a) VALUES ({c})",
    "INSERT INTO t SELECT {c} ON CONFLICT DO NOTHING",
    "UPDATE t SET a = {c} WHERE id = 1",
    "DELETE FROM t WHERE a = {c}",
    "PREPARE p AS SELECT {c}",
    "EXPLAIN ANALYZE SELECT {c}",
    "CREATE VIEW v AS SELECT {c}",
    "COPY (SELECT {c}) TO STDOUT",
    "DECLARE k CURSOR FOR SELECT {c}",
    "SELECT $d$ not here $d$, {c}",
    "VALUES ({c})",
    "SELECT CASE WHEN true THEN {c} END",
    "SELECT coalesce(NULL, {c})",
]


@st.composite
def embedded_call(draw: st.DrawFn) -> str:
    shape = draw(st.sampled_from(SHAPES))
    text = shape.format(c=draw(call()))
    return (
        draw(st.sampled_from(["", "/* lead */ ", "-- lead\n"]))
        + text
        + draw(st.sampled_from(["", ";", " ; "]))
    )


@st.composite
def dangerous_statement(draw: st.DrawFn) -> str:
    def kw(*words: str) -> str:
        return draw(gap()).join(cased(draw, w) for w in words)

    setting = draw(st.sampled_from(SETTINGS))
    quoted = draw(st.sampled_from([setting, f'"{setting}"'])) if "." not in setting else setting
    dollar = draw(st.sampled_from(["$$", "$body$", "$_$"]))
    body = draw(st.sampled_from(["BEGIN NULL; END", "BEGIN RAISE NOTICE 'x'; END", "SELECT 1"]))
    # Built only once chosen: each costs draws.
    choices: list[Callable[[], str]] = [
        lambda: f"{kw('do')} {dollar}{body}{dollar}",
        lambda: f"{kw('do')} {kw('language')} plpgsql {dollar}{body}{dollar}",
        lambda: f"{kw('create', 'function')} f() RETURNS int {kw('language')} sql AS $$SELECT 1$$",
        lambda: (
            f"{kw('create', 'or', 'replace', 'function')} f() RETURNS int LANGUAGE c AS 'x', 'y'"
        ),
        lambda: f"{kw('create', 'procedure')} p() LANGUAGE sql AS $$SELECT 1$$",
        lambda: (
            f"CREATE FUNCTION f() RETURNS int LANGUAGE sql {kw('begin', 'atomic')} SELECT 1; END"
        ),
        lambda: f"{kw('call')} p()",
        lambda: f"{kw('call')} s.p(1, 2)",
        lambda: f"{kw('alter', 'system')} SET work_mem = '1MB'",
        lambda: f"{kw('alter', 'system')} RESET ALL",
        lambda: f"{kw('load')} 'plugin'",
        lambda: f"{kw('create', 'extension')} file_fdw",
        lambda: f"{kw('create', 'extension', 'if', 'not', 'exists')} dblink",
        lambda: f"{kw('alter', 'extension')} x UPDATE",
        lambda: f"{kw('create', 'foreign', 'data', 'wrapper')} w",
        lambda: f"{kw('create', 'server')} s FOREIGN DATA WRAPPER file_fdw",
        lambda: f"{kw('create', 'foreign', 'table')} ft (a text) SERVER s OPTIONS (program 'id')",
        lambda: f"{kw('import', 'foreign', 'schema')} r FROM SERVER s INTO l",
        lambda: f"{kw('create', 'user', 'mapping')} FOR CURRENT_USER SERVER s",
        lambda: f"{kw('copy')} t {kw('to', 'program')} 'id'",
        lambda: f"{kw('copy')} (SELECT 1) TO '/tmp/x'",
        lambda: f"{kw('copy')} t FROM '/etc/passwd'",
        lambda: f"{kw('set')} {quoted} = 'x'",
        lambda: f"{kw('set', 'session')} {quoted} TO 'x'",
        lambda: f"{kw('set', 'local')} {quoted} TO DEFAULT",
        lambda: f"{kw('alter', 'role')} r {kw('set')} {quoted} = 'x'",
        lambda: f"SELECT {kw('set_config')}('{setting}', 'x', false)",
        lambda: f"SELECT pg_catalog.{kw('set_config')}(current_user, 'x', false)",
        lambda: f"{kw('create', 'event', 'trigger')} e ON ddl_command_start EXECUTE FUNCTION f()",
    ]
    return draw(st.sampled_from(choices))()


def _check(text: str) -> None:
    found = classify(text)
    assert found.dangerous, f"not deemed dangerous: {text!r}"
    assert not _plain(text), f"the fast path lets through: {text!r}"


@settings(max_examples=1500, deadline=None)
@given(embedded_call())
def test_no_dangerous_function_is_plain(text: str) -> None:
    _check(text)


@settings(max_examples=1500, deadline=None)
@given(dangerous_statement())
def test_no_dangerous_statement_is_plain(text: str) -> None:
    _check(text)


def test_every_listed_function_is_refused_bare() -> None:
    for name in NAMES:
        _check(f"SELECT {name}()")


def test_plain_statements_stay_on_the_fast_path() -> None:
    """The shortcut still does its job for everyday statements."""
    for text in ("SELECT * FROM patients WHERE id = $1", "INSERT INTO t VALUES (1)", "SELECT 1;"):
        assert _plain(text) and not classify(text).dangerous

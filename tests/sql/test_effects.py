"""Session effects read from the parse tree: one tuple per statement, in order."""

from __future__ import annotations

import pytest

from wardgate.sql import effects as fx
from wardgate.sql.model import AnalysisError

CASES: list[tuple[str, tuple[tuple[fx.Effect, ...], ...]]] = [
    ("SELECT 1", ((),)),
    (
        "PREPARE w AS SELECT 1; EXECUTE w; DEALLOCATE w; DEALLOCATE ALL",
        (
            (fx.Prepare("w", "PREPARE w AS SELECT 1"),),
            (fx.Executes("w"),),
            (fx.Deallocate("w"),),
            (fx.Deallocate(None),),
        ),
    ),
    (
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1; FETCH 2 FROM c; MOVE c; CLOSE c; CLOSE ALL",
        (
            (fx.Declare("c", "DECLARE c CURSOR WITH HOLD FOR SELECT 1", True),),
            (fx.Fetches("c"),),
            (fx.Fetches("c"),),
            (fx.CloseCursor("c"),),
            (fx.CloseCursor(None),),
        ),
    ),
    (
        "DECLARE d CURSOR FOR SELECT 1",
        ((fx.Declare("d", "DECLARE d CURSOR FOR SELECT 1", False),),),
    ),
    (
        'SET search_path = a, "B c"; SET LOCAL search_path TO DEFAULT; RESET search_path',
        (
            (fx.Set("search_path", '"a", "B c"'),),
            (fx.Set("search_path", None, local=True, default=True),),
            (fx.Set("search_path", None, default=True),),
        ),
    ),
    ("RESET ALL", ((fx.Set("", None, default=True),),)),
    ("SET search_path = ''", ((fx.Set("search_path", '""'),),)),
    (
        "SELECT set_config('search_path', 'x', true), set_config('search_path', 'p' || 'q', false)",
        ((fx.Set("search_path", "x", local=True), fx.Set("search_path", None)),),
    ),
    ("SELECT set_config($1, 'x', false)", ((fx.Set("search_path", None),),)),
    (
        "PREPARE s AS SELECT set_config('search_path', 'x', false)",
        (
            (
                fx.Prepare(
                    "s",
                    "PREPARE s AS SELECT set_config('search_path', 'x', false)",
                    (fx.Set("search_path", "x"),),
                ),
            ),
        ),
    ),
    (
        "DISCARD ALL; DISCARD PLANS",
        ((fx.DiscardEffect(fx.Discard.ALL),), (fx.DiscardEffect(fx.Discard.PLANS),)),
    ),
    (
        "BEGIN; SAVEPOINT s; ROLLBACK TO SAVEPOINT s; RELEASE s; COMMIT AND CHAIN; ABORT",
        (
            (fx.Transaction(fx.Tx.BEGIN),),
            (fx.Transaction(fx.Tx.SAVEPOINT, "s"),),
            (fx.Transaction(fx.Tx.ROLLBACK_TO, "s"),),
            (fx.Transaction(fx.Tx.RELEASE, "s"),),
            (fx.Transaction(fx.Tx.COMMIT, chain=True),),
            (fx.Transaction(fx.Tx.ROLLBACK),),
        ),
    ),
    ("EXPLAIN ANALYZE EXECUTE w(1)", ((fx.Executes("w"),),)),
    ("CREATE TABLE t AS EXECUTE w", ((fx.Executes("w"),),)),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_effects(text: str, expected: tuple[tuple[fx.Effect, ...], ...]) -> None:
    assert fx.effects(text) == expected


def test_what_does_not_parse_raises() -> None:
    with pytest.raises(AnalysisError):
        fx.effects("SELEC 1")
    assert fx.effects("SELECT 1") == ((),)


SHORTCUT = [
    "SELECT 1",
    "SELECT 1; SELECT 2;;",
    "",
    "-- nothing",
    "UPDATE t SET x = 1",
    "SELECT set_config('search_path', 'x', false)",
    "SELECT \"set_config\"('search_path', 'x', false)",
    "SELECT pg_catalog.SET_CONFIG('search_path', 'x', false)",
    "SELECT U&\"set\\005Fconfig\"('search_path', 'x', false)",
    "SELECT 'set_config' /* set_config */",
    "select 1; begin; select 2",
    "WITH x AS (SELECT 1) SELECT * FROM x",
    "INSERT INTO t VALUES ('é')",
]


@pytest.mark.parametrize("text", SHORTCUT)
def test_the_scanner_shortcut_agrees_with_the_parse(text: str) -> None:
    assert fx.effects(text) == fx.parse_effects(text)


def test_a_unicode_escaped_set_config_is_seen() -> None:
    text = "SELECT U&\"set\\005Fconfig\"('search_path', 'x', false)"
    assert fx.effects(text) == ((fx.Set("search_path", "x"),),)

"""Reversible pseudonyms of stored values (``masking.tokens``) and the rewrite of a look-up
(``masking.lookups``), without sockets: what decodes, what does not, and that the server gets
the client's statement with nothing changed but the look-up's literals."""

from __future__ import annotations

import pytest

from wardgate.masking.lookups import NotRewritable, rewrite
from wardgate.masking.operators import Pseudonym
from wardgate.masking.tokens import Tokens
from wardgate.sql.analysis import ParseCounter, analyse
from wardgate.sql.model import Lookup, SourceColumn

KEY = b"k" * 32
MRN = Pseudonym(prefix="MRN-")
TOKENS = Tokens(KEY)


def test_a_token_decodes_to_its_value_for_its_entity_and_operator_only() -> None:
    token = TOKENS.encode("MRN", MRN, b"00012345").decode()
    assert token.startswith("MRN-") and TOKENS.encode("MRN", MRN, b"00012345").decode() == token
    assert TOKENS.decode("MRN", MRN, token) == "00012345"
    assert TOKENS.decode("HEALTH_PLAN_ID", MRN, token) is None  # another entity
    assert TOKENS.decode("MRN", Pseudonym(prefix="MRN-", domain="team-b"), token) is None
    assert Tokens(b"another key" * 3).decode("MRN", MRN, token) is None
    for i in range(4, len(token)):  # any character changed
        other = "A" if token[i] != "A" else "B"
        assert TOKENS.decode("MRN", MRN, token[:i] + other + token[i + 1 :]) is None
    for junk in ("", "MRN-", "MRN-00012345", token[:-1], token + "A", token + "'", "x" + token):
        assert TOKENS.decode("MRN", MRN, junk) is None


def test_a_token_tells_a_length_only_to_within_sixteen_bytes() -> None:
    lengths = {len(TOKENS.encode("MRN", MRN, b"9" * n)) for n in range(16)}
    assert len(lengths) == 1
    assert all(c.isalnum() or c in "-_" for c in TOKENS.encode("MRN", MRN, b"x").decode())
    value = "O'Brien \\ Ñúñez".encode()
    assert TOKENS.decode("NAME", MRN, TOKENS.encode("NAME", MRN, value).decode()) == value.decode()


def lookup(*values: str) -> Lookup:
    return Lookup(frozenset({SourceColumn("public", "patients", "mrn")}), values)


def test_the_rewrite_changes_the_look_ups_literals_and_nothing_else() -> None:
    token = TOKENS.encode("MRN", MRN, b"0001'\\x").decode()
    text = f"SELECT id, 'a' FROM patients WHERE mrn = '{token}' AND id > 1"
    before = ParseCounter.count
    out = rewrite(analyse(text), [(lookup(token), "MRN")], {("MRN", token): "0001'\\x"}, analyse)
    assert out == "SELECT id, 'a' FROM patients WHERE mrn = E'0001''\\\\x' AND id > 1"
    assert ParseCounter.count == before + 2  # the client's text, then the rewritten one


@pytest.mark.parametrize(
    "text",
    [
        "SELECT '{t}' FROM patients WHERE mrn = '{t}'",  # also in the select list
        "SELECT 1 FROM patients WHERE mrn = E'{t}'",  # not a plain literal
        "SELECT 1 FROM patients WHERE mrn = E'{t}' -- '{t}'",  # a plain one in a comment only
        "SELECT $$'{t}'$$ FROM patients WHERE mrn = E'{t}'",
    ],
)
def test_a_rewrite_that_would_change_anything_else_is_refused(text: str) -> None:
    token = TOKENS.encode("MRN", MRN, b"00012345").decode()
    with pytest.raises(NotRewritable):
        rewrite(
            analyse(text.format(t=token)),
            [(lookup(token), "MRN")],
            {("MRN", token): "00012345"},
            analyse,
        )

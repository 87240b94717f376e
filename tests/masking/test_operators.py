from __future__ import annotations

import dataclasses

import pytest

from wardgate.masking import (
    CATALOG,
    OPERATORS,
    AgeOver89,
    ColumnMasker,
    ContentScan,
    DateToYear,
    Entity,
    Keep,
    Null,
    Partial,
    Pseudonym,
    Redact,
    TextMasker,
    Zip3,
    column_masker,
    mask_value,
    operator_config,
    operator_from_config,
)
from wardgate.masking.operators import RESTRICTED_ZIP3, OperatorConfigError
from wardgate.masking.pgtypes import Family, family_of

KEY = b"unit-test-key"


def test_catalog_covers_every_safe_harbor_identifier() -> None:
    assert {info.paragraph for info in CATALOG.values()} == set("ABCDEFGHIJKLMNOPQR")
    assert set(CATALOG) == set(Entity)
    for entity, info in CATALOG.items():
        assert info.entity is entity and info.description
        assert info.default_operator.name in OPERATORS


def test_entity_names_are_stable_strings() -> None:
    assert Entity("SSN") is Entity.SSN
    assert [e.value for e in Entity][:5] == ["NAME", "GEO", "ZIP", "DATE", "AGE_OVER_89"]


def test_restricted_zip3_is_the_hhs_list() -> None:
    assert len(RESTRICTED_ZIP3) == 17
    assert {"036", "059", "102", "203", "556", "692", "790", "893"} <= RESTRICTED_ZIP3


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("redact", {}, Redact()),
        ("redact", {"replacement": "[X]"}, Redact("[X]")),
        ("partial", {"keep": 2}, Partial(keep=2)),
        ("pseudonym", {"prefix": "P-", "preserve_format": True},
         Pseudonym("P-", preserve_format=True)),
        ("zip3", {"restricted": ["123"]}, Zip3(frozenset({"123"}))),
        ("date_to_year", None, DateToYear()),
        ("age_over_89", {}, AgeOver89()),
        ("null", {}, Null()),
        ("keep", {}, Keep()),
    ],
)  # fmt: skip
def test_operators_from_config(
    name: str, params: dict[str, object] | None, expected: object
) -> None:
    operator = operator_from_config(name, params)
    assert operator == expected
    config = operator_config(operator)
    assert operator_from_config(str(config.pop("operator")), config) == operator


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("shred", {}),
        ("redact", {"replacment": "x"}),
        ("partial", {"keep": "4"}),
        ("partial", {"keep": True}),
        ("partial", {"keep": -1}),
        ("pseudonym", {"length": 2}),
    ],
)
def test_bad_operator_config_is_refused(name: str, params: dict[str, object]) -> None:
    with pytest.raises(OperatorConfigError):
        operator_from_config(name, params)


def test_operators_are_frozen_and_hashable() -> None:
    for cls in OPERATORS.values():
        operator = cls()
        assert hash(operator) == hash(cls())
        with pytest.raises(dataclasses.FrozenInstanceError):
            operator.name = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("123-45-6789", "***-**-6789"),
        ("4111 1111 1111 1111", "**** **** **** 1111"),
        ("00123456", "****3456"),
        ("1234567", "*******"),  # showing 4 of 7 would show more than it hides
        ("", ""),
        ("José-Ñúñez 1234", "****-***** 1234"),
    ],
)
def test_partial_shows_at_most_half(value: str, expected: str) -> None:
    assert mask_value(value.encode(), 25, 0, Partial(), KEY) == expected.encode()


def test_pseudonym_text_shapes() -> None:
    plain = mask_value(b"123-45-6789", 25, 0, Pseudonym(prefix="SSN-", length=12), KEY)
    assert plain is not None and plain.startswith(b"SSN-") and len(plain) == 16
    shaped = mask_value(
        b"Kathleen O'Brien-Smith 123-45-6789", 25, 0, Pseudonym(preserve_format=True), KEY
    )
    assert shaped is not None
    text = shaped.decode()
    assert text[8] == " " and text[10] == "'" and text[16] == "-" and text[-5] == "-"
    assert text[0].isupper() and text[1:8].islower() and text[-4:].isdigit()
    assert text != "Kathleen O'Brien-Smith 123-45-6789"
    long_value = ("x" * 100).encode()
    out = mask_value(long_value, 25, 0, Pseudonym(preserve_format=True), KEY)
    assert out is not None and len(out) == 100 and out.isalpha()


def test_pseudonym_domains_separate_namespaces() -> None:
    a = mask_value(b"00123456", 25, 0, Pseudonym(domain="a"), KEY)
    b = mask_value(b"00123456", 25, 0, Pseudonym(domain="b"), KEY)
    assert a != b


def test_pseudonym_needs_a_key() -> None:
    with pytest.raises(ValueError):
        ColumnMasker(25, 0, Pseudonym(), b"")


def test_column_masker_reports_fallback() -> None:
    assert ColumnMasker(23, 0, Redact(), KEY).fallback
    assert not ColumnMasker(25, 0, Redact(), KEY).fallback
    masker = ColumnMasker(99999, 1, Pseudonym(), KEY)  # an extension type we do not know
    assert masker.family is Family.OTHER and masker.fallback and masker(b"x") is None
    citext = ColumnMasker(99999, 0, Redact(), KEY, family=Family.TEXT)
    assert citext(b"kathleen") == b"***"
    assert "fallback" in repr(ColumnMasker(1082, 1, Redact(), KEY))


def test_column_masker_keeps_null_null() -> None:
    for operator in (Redact(), Keep(), Pseudonym(), Partial()):
        assert ColumnMasker(25, 0, operator, KEY)(None) is None


def test_column_masker_cache_returns_one_masker() -> None:
    assert column_masker(25, 0, Redact(), KEY) is column_masker(25, 0, Redact(), KEY)


def test_family_of_builtins() -> None:
    assert family_of(25) is Family.TEXT and family_of(1043) is Family.TEXT
    assert family_of(3802) is Family.JSONB and family_of(1184) is Family.TIMESTAMPTZ
    assert family_of(1009) is Family.OTHER  # text[]: ColumnMasker masks arrays element-wise
    assert not ColumnMasker(1009, 0, Redact(), KEY).fallback
    assert ColumnMasker(1007, 1, Redact(), KEY).fallback  # int4[]: no redacted int4


def test_text_masker_replaces_spans_with_entity_operators() -> None:
    masker = TextMasker(KEY)
    out = masker.mask("Pt Kathleen Smith, SSN 123-45-6789, DOB 03/12/1954, 93 y/o, MRN 00123456.")
    assert out.startswith("Pt [NAME], SSN [SSN], DOB 1954, 90+ y/o, MRN MRN-")
    assert masker.counts[Entity.NAME] == 1 and masker.counts[Entity.MRN] == 1
    assert masker.mask("nothing to see") == "nothing to see"


def test_text_masker_with_null_operator_uses_the_tag() -> None:
    masker = TextMasker(KEY, {Entity.SSN: Null()})
    assert masker.mask("SSN 123-45-6789") == "SSN [SSN]"


def test_content_scan_operator_masks_text_and_json_strings() -> None:
    operator = ContentScan(TextMasker(KEY))
    assert mask_value(b"call 212-555-0142", 25, 0, operator, KEY) == b"call [PHONE]"
    out = mask_value(b'\x01{"note": "SSN 123-45-6789", "n": 7}', 3802, 1, operator, KEY)
    assert out == b'\x01{"note": "SSN [SSN]", "n": 7}'
    assert mask_value(b"\x00\x00\x00\x07", 23, 1, operator, KEY) is None

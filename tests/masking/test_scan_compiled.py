"""The compiled scanner loops (``detectors/_scan.c``) against their Python references: the same
digit runs, the same resolution of overlapping spans, and so the same spans of every note --
on texts Hypothesis makes of the pieces notes are made of (and of any characters), and on the
labelled corpora, the address corpus and the demo's notes, as written and in one case.

A difference is a leak waiting to happen (the compiled path is what production runs), so every
comparison is exact. Skipped where the extension is not built; ``.ci/run`` runs the whole suite
again with ``WARDGATE_PURE_PYTHON=1``, where the Python references run everywhere."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.masking import address_corpus, corpus
from tests.masking.test_scanner_property import PIECES
from wardgate.masking.detectors import Scanner, Span, compiled, numbers, scanner, shapes
from wardgate.masking.detectors.names import NameDetector
from wardgate.masking.entities import Entity

pytestmark = pytest.mark.skipif(
    not compiled.COMPILED,
    reason="the compiled scanner is not built (or WARDGATE_PURE_PYTHON is set)",
)

pieces = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
digits = st.sampled_from("0123456789\u0660\u0669\u09e6\uff10\u00b2 ()./-+A a\n")
any_text = st.one_of(pieces, st.text(max_size=60), st.text(digits, max_size=60))
SCANNER = Scanner()


@contextmanager
def pure_python() -> Iterator[None]:
    """The Python references in place of the compiled functions, for the scanner in this
    process."""
    saved = numbers._runs, numbers._shape, scanner._resolve
    numbers._runs, numbers._shape = numbers.number_runs, numbers.shape_of
    scanner._resolve = scanner.resolve_python
    names = [d for d in SCANNER.detectors if isinstance(d, NameDetector)]
    anchors = [d._anchors for d in names]
    for d in names:
        d._anchors = d.anchors_python
    try:
        yield
    finally:
        numbers._runs, numbers._shape, scanner._resolve = saved
        for d, a in zip(names, anchors, strict=True):
            d._anchors = a


def both(texts: list[str]) -> tuple[list[list[Span]], list[list[Span]]]:
    fast = [SCANNER.scan(t) for t in texts]
    with pure_python():
        reference = [SCANNER.scan(t) for t in texts]
    return fast, reference


@settings(max_examples=3000, deadline=None)
@given(any_text)
def test_the_same_digit_runs(text: str) -> None:
    runs = compiled.fast.number_runs(text)
    assert runs == numbers.number_runs(text)
    # with the shapes, some runs the detector judges to be nothing are dropped, none added
    # (that the spans stay the same is tested on whole scans below)
    assert set(compiled.fast.number_runs(text, shapes.SHAPES)) <= set(runs)


@settings(max_examples=3000, deadline=None)
@given(any_text, st.integers(0, 60), st.integers(1, 30))
@example("\u2019555-0142", 1, 8)
def test_the_same_shapes(text: str, a: int, length: int) -> None:
    a = min(a, len(text))
    b = min(a + length, len(text))
    assert numbers._shape(text, a, b) == numbers.shape_of(text, a, b)
    for run_a, run_b in numbers.number_runs(text):
        assert numbers._shape(text, run_a, run_b) == numbers.shape_of(text, run_a, run_b)


def test_runs_judged_to_be_nothing_are_dropped_early() -> None:
    text = "BP 120/80, T 98.6, 1.5 tab; (120/80) SSN 123-45-6789 on 3/4/2024 and 10.0.0.1"
    found = [text[a:b] for a, b in compiled.fast.number_runs(text, shapes.SHAPES)]
    assert found == ["120/80)", "123-45-6789", "3/4/2024", "10.0.0.1"]  # "(" kept it


NAMES = NameDetector()
name_pieces = st.lists(
    st.sampled_from(
        (*PIECES, "John", "Ann", "Anna", "Smith", "Jones", "Mc", "Donald", "O'", "\u2019", "-",
         "_", "\u00e9", "Kathleen", "KATHLEEN", "x", "1", "Lee", "Le", "Van", "Dyke", "Grace")
    ),
    max_size=30,
).map("".join)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(st.one_of(name_pieces, st.text(max_size=60)))
def test_the_same_name_anchors(text: str) -> None:
    assert NAMES._anchors(text) == NAMES.anchors_python(text)


def test_the_compiled_name_anchors_run_for_the_built_in_lists_only() -> None:
    assert NAMES._anchors != NAMES.anchors_python
    odd = NameDetector(first=frozenset({"mary-jo", "ann"}), last=frozenset({"smith"}))
    assert odd._anchors == odd.anchors_python


ENTITIES = (Entity.NAME, Entity.SSN, Entity.PHONE, Entity.GEO)
spans = st.lists(
    st.builds(
        lambda e, start, length, score, d: Span(e, start, start + length, score, d),
        st.sampled_from(ENTITIES),
        st.integers(0, 40),
        st.integers(0, 12),
        st.sampled_from((0.5, 0.55, 0.6, 0.7, 0.85, 0.9, 0.92, 0.95)),
        st.sampled_from(("a", "b", "")),
    ),
    max_size=14,
)


@settings(max_examples=3000, deadline=None)
@given(spans)
def test_the_same_resolution(found: list[Span]) -> None:
    fast = compiled.fast.resolve(found)
    reference = scanner.resolve_python(found)
    assert fast == reference
    assert [type(s) for s in fast] == [type(s) for s in reference]


@settings(max_examples=1500, deadline=None)
@given(any_text)
@example("\u201910.0.0.1")  # a shape looked up as a str of a wider kind than ASCII was missed
def test_the_same_spans_of_any_text(text: str) -> None:
    fast, reference = both([text])
    assert fast == reference


@settings(max_examples=200, deadline=None)
@given(st.lists(pieces, max_size=5))
def test_the_same_spans_of_a_batch(batch: list[str]) -> None:
    fast = SCANNER.scan_many(batch)
    with pure_python():
        reference = SCANNER.scan_many(batch)
    assert fast == reference


def _corpus_texts() -> list[str]:
    from wardgate.demo.seed import _Generator

    texts = [n.text for n in corpus.generate(1500, seed=5)]
    texts += [n.text for n in corpus.generate(1500, seed=7, filler=(4, 8))]
    texts += [n.text for n in address_corpus.generate(600).notes]
    tables = _Generator(20261129).generate(200)
    texts += [row[-1] for row in tables["clinical_notes"]]
    return texts + [t.upper() for t in texts[::7]] + [t.lower() for t in texts[::11]]


def test_the_same_spans_of_the_corpora_and_the_demo_notes() -> None:
    texts = _corpus_texts()
    fast, reference = both(texts)
    differ = [(t, f, r) for t, f, r in zip(texts, fast, reference, strict=True) if f != r]
    assert not differ, differ[:3]
    assert sum(map(len, fast)) > len(texts)  # the corpora hold identifiers: spans were compared
    batches = [texts[i : i + 64] for i in range(0, len(texts), 64)]
    fast_many = [SCANNER.scan_many(b) for b in batches]
    with pure_python():
        reference_many = [SCANNER.scan_many(b) for b in batches]
    assert fast_many == reference_many

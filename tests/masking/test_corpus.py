"""Recall and precision of the detectors on labelled synthetic clinical notes, and recall on the
demo's own notes (wardgate.demo.seed, written independently of the detectors)."""

from __future__ import annotations

import re

import pytest

from tests.masking.corpus import Score, evaluate, generate
from wardgate.masking.detectors import Scanner
from wardgate.masking.detectors.names import NameDetector, name_lists
from wardgate.masking.detectors.scanner import ScannerConfig
from wardgate.masking.entities import Entity

REQUIRED = {
    Entity.SSN: 0.98,
    Entity.PHONE: 0.98,
    Entity.EMAIL: 0.98,
    Entity.MRN: 0.98,
    Entity.NAME: 0.90,
}


def report(title: str, scores: dict[Entity, Score]) -> None:
    print(f"\n{title}")
    print(f"{'entity':16} {'gold':>6} {'recall':>7} {'found':>6} {'precision':>9}")
    for entity, score in sorted(scores.items()):
        print(
            f"{entity.value:16} {score.gold:6} {score.recall:7.3f} {score.predicted:6} "
            f"{score.precision:9.3f}"
        )


@pytest.fixture(scope="module")
def corpus_scores() -> dict[Entity, Score]:
    scores = evaluate(generate(3000, seed=11), Scanner().scan)
    report("labelled synthetic corpus (3000 notes)", scores)
    return scores


@pytest.mark.parametrize("entity", sorted(REQUIRED))
def test_recall_on_the_labelled_corpus(corpus_scores: dict[Entity, Score], entity: Entity) -> None:
    assert corpus_scores[entity].recall >= REQUIRED[entity]


def test_precision_on_the_labelled_corpus(corpus_scores: dict[Entity, Score]) -> None:
    for entity, score in corpus_scores.items():
        assert score.precision >= 0.95, entity


def test_corpus_is_deterministic_and_labelled() -> None:
    a, b = generate(50, seed=3), generate(50, seed=3)
    assert a == b
    for note in a:
        for gold in note.gold:
            assert note.text[gold.start : gold.end].strip() == note.text[gold.start : gold.end]


def test_names_never_seen_are_found_by_context() -> None:
    """Hold out a fifth of the names: the detector keeps only the rest, the corpus draws from
    all. What it still finds of the held-out names it finds by context alone."""
    first, last, common = name_lists()
    keep_first = frozenset(n for i, n in enumerate(sorted(first)) if i % 5)
    keep_last = frozenset(n for i, n in enumerate(sorted(last)) if i % 5)
    scanner = Scanner(
        ScannerConfig(names=False, extra=(NameDetector(keep_first, keep_last, common),))
    )
    scores = evaluate(generate(1500, seed=13), scanner.scan)
    report("names with a fifth of the dictionary held out", {Entity.NAME: scores[Entity.NAME]})
    assert scores[Entity.NAME].recall >= 0.85


def test_recall_on_the_demo_seed_notes() -> None:
    """The demo's generator writes the patient's identifiers into notes in its own ways; every
    occurrence of a seeded SSN, MRN, phone, e-mail and name must be covered by a span."""
    from wardgate.demo.seed import _Generator

    tables = _Generator(20261129).generate(400)
    patients = {row[0]: row for row in tables["patients"]}
    found: dict[str, list[int]] = {}
    scanner = Scanner()
    for _, _, patient_id, _, body in tables["clinical_notes"]:
        p = patients[patient_id]
        mrn, first, last, ssn, phone, email = p[1], p[2], p[3], p[4], p[10], p[11]
        area, exchange, line = phone.split("-")
        values = {
            "SSN": [ssn],
            "MRN": [mrn],
            "EMAIL": [email],
            "NAME": [first, last],
            "PHONE": [f"({area}) {exchange}-{line}", phone, f"{area}.{exchange}.{line}",
                      f"{area}{exchange}{line}", f"+1 {area} {exchange} {line}"],
        }  # fmt: skip
        spans = scanner.scan(body)
        for kind, candidates in values.items():
            for value in candidates:
                for m in re.finditer(rf"(?<!\w){re.escape(value)}(?!\w)", body):
                    covered = any(s.start <= m.start() and m.end() <= s.end for s in spans)
                    found.setdefault(kind, [0, 0])[0] += covered
                    found[kind][1] += 1
    print("\ndemo seed notes (400 patients): recall of seeded values")
    for kind, (hit, total) in sorted(found.items()):
        print(f"{kind:8} {hit:5}/{total:5} = {hit / total:.3f}")
    for kind, (hit, total) in found.items():
        assert hit / total >= (0.90 if kind == "NAME" else 0.98), kind

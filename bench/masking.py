"""Masking costs: detector throughput on clinical notes, and the per-cell cost of column maskers.

    python -m bench.masking [--notes 3000] [--cells 200000] [--repeat 7]   (from the repository
    root: the corpus is test code, tests/masking/corpus.py)

Detectors: MB of note text scanned per second on one core, for the labelled synthetic corpus
(tests/masking/corpus.py) in two densities -- "dense", where nearly every sentence holds an
identifier (the corpus the recall tests use), and "typical", one identifier-bearing sentence
among several without -- plus each detector alone on the dense corpus. Target: >= 5 MB/s.

Column maskers: nanoseconds per cell of ``ColumnMasker.__call__`` for operator, type and wire
format combinations, on realistic values, next to the cost of a bare Python call on the same
cells (the floor any per-cell hook pays). Pseudonyms are timed with their cache (repeated
values, as a join key has) and without (every value new).

Every figure is the best of --repeat runs: other processes share the machine.
"""

from __future__ import annotations

import argparse
import functools
import random
import struct
import time
from collections.abc import Callable

from tests.masking.corpus import generate

from wardgate.masking import (
    AgeOver89,
    ColumnMasker,
    DateToYear,
    Operator,
    Partial,
    Pseudonym,
    Redact,
    Scanner,
    Zip3,
)
from wardgate.masking import pgtypes as pg
from wardgate.masking.detectors import Detector
from wardgate.masking.pgtypes import Format

KEY = b"bench-key-0123456789abcdef0123456"


def best(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def _scan_each(scanner: Scanner, texts: list[str]) -> object:
    return [scanner.scan(t) for t in texts]


def _scan_batches(scanner: Scanner, batches: list[list[str]]) -> object:
    return [scanner.scan_many(b) for b in batches]


def _find_each(detector: Detector, texts: list[str]) -> object:
    return [list(detector.find(t)) for t in texts]


def _mask_each(masker: ColumnMasker, cells: list[bytes]) -> object:
    return [masker(v) for v in cells]


def detectors(notes: int, repeat: int) -> None:
    scanner = Scanner()
    print(f"{'corpus':28} {'notes':>6} {'MB':>6} {'MB/s':>7}")
    for label, filler in (
        ("dense (recall corpus)", (0, 2)),
        ("typical (4-8 plain sentences)", (4, 8)),
    ):
        texts = [note.text for note in generate(notes, seed=7, filler=filler)]
        size = sum(len(t.encode()) for t in texts)
        seconds = best(repeat, functools.partial(_scan_each, scanner, texts))
        print(f"{label:28} {len(texts):6} {size / 1e6:6.2f} {size / seconds / 1e6:7.2f}")
        batches = [texts[i : i + 64] for i in range(0, len(texts), 64)]
        seconds = best(repeat, functools.partial(_scan_batches, scanner, batches))
        print(f"  {'in batches of 64 notes':26} {'':6} {'':6} {size / seconds / 1e6:7.2f}")
    texts = [note.text for note in generate(notes, seed=7)]
    size = sum(len(t.encode()) for t in texts)
    for detector in scanner.detectors:
        seconds = best(repeat, functools.partial(_find_each, detector, texts))
        print(f"  {'detector ' + detector.name:26} {'':6} {'':6} {size / seconds / 1e6:7.2f}")


def _cells(kind: str, fmt: Format, count: int, distinct: int) -> list[bytes]:
    rng = random.Random(kind)
    values: list[bytes] = []
    for _ in range(distinct):
        if kind == "ssn":
            area, group, serial = rng.randint(1, 899), rng.randint(1, 99), rng.randint(1, 9999)
            values.append(f"{area:03d}-{group:02d}-{serial:04d}".encode())
        elif kind == "mrn":
            values.append(f"{rng.randrange(10**8):08d}".encode())
        elif kind == "zip":
            values.append(f"{rng.randint(1001, 99950):05d}".encode())
        elif kind == "date":
            days = rng.randint(pg.days_from_civil(1930, 1, 1), pg.days_from_civil(2023, 12, 31))
            values.append(pg.format_date(days) if fmt == 0 else struct.pack(">i", days))
        elif kind == "timestamptz":
            usec = rng.randint(0, 25 * 365 * pg.USEC_PER_DAY)
            if fmt == 0:
                values.append(pg.format_timestamp(usec, with_zone=True))
            else:
                values.append(struct.pack(">q", usec))
        elif kind == "int4":
            number = rng.randint(1, 110)
            values.append(str(number).encode() if fmt == 0 else struct.pack(">i", number))
    return [values[i % distinct] for i in range(count)]


CASES: list[tuple[str, Operator, str, int, Format]] = [
    ("redact", Redact(), "ssn", 25, 0),
    ("partial", Partial(), "ssn", 25, 0),
    ("pseudonym, cached", Pseudonym(), "mrn", 25, 0),
    ("pseudonym, uncached", Pseudonym(cache_size=0), "mrn", 25, 0),
    ("zip3", Zip3(), "zip", 25, 0),
    ("date_to_year", DateToYear(), "date", 1082, 0),
    ("date_to_year", DateToYear(), "date", 1082, 1),
    ("date_to_year", DateToYear(), "timestamptz", 1184, 0),
    ("date_to_year", DateToYear(), "timestamptz", 1184, 1),
    ("age_over_89", AgeOver89(), "int4", 23, 0),
    ("age_over_89", AgeOver89(), "int4", 23, 1),
    ("pseudonym, uncached", Pseudonym(cache_size=0), "date", 1082, 1),
]


def operators(count: int, repeat: int) -> None:
    print(f"\n{'operator':22} {'type':12} {'fmt':>3} {'ns/cell':>8}")
    floor_cells = _cells("mrn", 0, count, 1000)

    def same(raw: bytes | None) -> bytes | None:
        return raw

    floor = best(repeat, lambda: [same(c) for c in floor_cells]) / count * 1e9
    print(f"{'(a bare Python call)':22} {'':12} {'':>3} {floor:8.0f}")
    for label, operator, kind, oid, fmt in CASES:
        distinct = 1000 if "cached" in label and "uncached" not in label else count
        cells = _cells(kind, fmt, count, distinct)
        masker = ColumnMasker(oid, fmt, operator, KEY)
        nanos = best(repeat, functools.partial(_mask_each, masker, cells)) / count * 1e9
        type_name = {25: "text", 1082: "date", 1184: "timestamptz", 23: "int4"}[oid]
        print(f"{label:22} {type_name:12} {fmt:>3} {nanos:8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--notes", type=int, default=3000)
    parser.add_argument("--cells", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    detectors(args.notes, args.repeat)
    operators(args.cells, args.repeat)


if __name__ == "__main__":
    main()

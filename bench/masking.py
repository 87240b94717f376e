"""Masking costs: detector throughput on clinical notes, and the per-cell cost of column maskers.

    python -m bench.masking [--notes 3000] [--cells 200000] [--repeat 7] [--old TREE/src]
                            [--skip-operators]
    (from the repository root: the corpus is test code, tests/masking/corpus.py)

Detectors: MB of note text scanned per second on one core (CPU time of this process), for the
labelled synthetic corpus (tests/masking/corpus.py) in two densities -- "dense", where nearly
every sentence holds an identifier (the corpus the recall tests use), and "typical", one
identifier-bearing sentence among several without -- one note at a time and in batches of 64
(`Scanner.scan_many`), plus each detector alone on the dense corpus. With ``--old`` the
scanner of another tree (a worktree of main, say) runs beside this one's, interleaved, on the
same notes: MB/s of both, new / old, and whether every span of every note is the same.

Column maskers: nanoseconds per cell of ``ColumnMasker.__call__`` for operator, type and wire
format combinations, on realistic values, next to the cost of a bare Python call on the same
cells (the floor any per-cell hook pays). Pseudonyms are timed with their cache (repeated
values, as a join key has) and without (every value new).

Every figure is the best of --repeat runs: other processes share the machine.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import random
import struct
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

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
from wardgate.masking.detectors import Detector, Span
from wardgate.masking.pgtypes import Format

KEY = b"bench-key-0123456789abcdef0123456"


def best(repeat: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def _scan_each(scanner: Scanner, texts: list[str]) -> list[list[Span]]:
    return [scanner.scan(t) for t in texts]


def _scan_batches(scanner: Scanner, batches: list[list[str]]) -> object:
    return [scanner.scan_many(b) for b in batches]


def _find_each(detector: Detector, texts: list[str]) -> object:
    return [list(detector.find(t)) for t in texts]


def _mask_each(masker: ColumnMasker, cells: list[bytes]) -> object:
    return [masker(v) for v in cells]


def other_scanner(src: str) -> Any:
    """A default `Scanner` of the wardgate package under `src` (another tree's ``src``),
    imported beside this tree's: its modules are loaded afresh and then set aside, so each
    scanner keeps its own code."""
    ours = {k: m for k, m in sys.modules.items() if k.partition(".")[0] == "wardgate"}
    for k in ours:
        del sys.modules[k]
    sys.path.insert(0, src)
    try:
        scanner = importlib.import_module("wardgate.masking.detectors").Scanner()
    finally:
        sys.path.remove(src)
        for k in [k for k in sys.modules if k.partition(".")[0] == "wardgate"]:
            del sys.modules[k]
        sys.modules.update(ours)
    return scanner


def _spans(results: list[list[Any]]) -> list[list[tuple[object, ...]]]:
    """Spans as plain tuples: the two trees' `Entity` enums are different classes."""
    return [[(s.entity.value, s.start, s.end, s.score, s.detector) for s in r] for r in results]


def detectors(notes: int, repeat: int, old_src: str | None) -> None:
    scanner = Scanner()
    old = other_scanner(old_src) if old_src else None
    print(f"{'corpus':32} {'notes':>6} {'MB':>5} {'old MB/s':>9} {'new MB/s':>9} {'new/old':>8}")
    for label, filler in (
        ("dense (recall corpus)", (0, 2)),
        ("typical (4-8 plain sentences)", (4, 8)),
    ):
        texts = [note.text for note in generate(notes, seed=7, filler=filler)]
        size = sum(len(t.encode()) for t in texts)
        batches = [texts[i : i + 64] for i in range(0, len(texts), 64)]
        each = functools.partial(_scan_each, texts=texts)
        batched = functools.partial(_scan_batches, batches=batches)
        rows: list[tuple[str, str, Callable[[Any], object]]] = [
            (label, f"{len(texts):6} {size / 1e6:5.2f}", each),
            ("  in batches of 64 notes", f"{'':12}", batched),
        ]
        for row, counts, scan in rows:
            runs: dict[str, Callable[[], object]] = {"new": functools.partial(scan, scanner)}
            if old is not None:
                runs["old"] = functools.partial(scan, old)
            seconds = interleaved(repeat, runs)
            new_rate = size / seconds["new"] / 1e6
            if old is None:
                print(f"{row:32} {counts} {'':>9} {new_rate:9.2f}")
                continue
            old_rate = size / seconds["old"] / 1e6
            ratio = seconds["old"] / seconds["new"]
            print(f"{row:32} {counts} {old_rate:9.2f} {new_rate:9.2f} {ratio:7.2f}x")
        if old is not None:
            same = _spans(_scan_each(old, texts)) == _spans(_scan_each(scanner, texts))
            print(f"  {'spans the same as old':30} {'yes' if same else 'NO':>6}")
    texts = [note.text for note in generate(notes, seed=7)]
    size = sum(len(t.encode()) for t in texts)
    olds = {d.name: d for d in old.detectors} if old is not None else {}
    for detector in scanner.detectors:
        runs = {"new": functools.partial(_find_each, detector, texts)}
        if detector.name in olds:
            runs["old"] = functools.partial(_find_each, olds[detector.name], texts)
        seconds = interleaved(repeat, runs)
        was = f"{size / seconds['old'] / 1e6:9.2f}" if "old" in seconds else f"{'':9}"
        times = f"{seconds['old'] / seconds['new']:7.2f}x" if "old" in seconds else ""
        print(
            f"  {'detector ' + detector.name:30} {'':6} {'':5} {was} "
            f"{size / seconds['new'] / 1e6:9.2f} {times}"
        )


def interleaved(repeat: int, runs: Mapping[str, Callable[[], object]]) -> dict[str, float]:
    """CPU seconds of each run, best of `repeat`, the runs taking turns: on a shared machine
    a slow spell then hits all of them."""
    seconds = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, run in runs.items():
            started = time.process_time()
            run()
            seconds[name] = min(seconds[name], time.process_time() - started)
    return seconds


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
    parser.add_argument("--old", metavar="SRC", help="another tree's src directory, to compare")
    parser.add_argument("--skip-operators", action="store_true")
    args = parser.parse_args()
    detectors(args.notes, args.repeat, args.old)
    if args.skip_operators:
        return
    operators(args.cells, args.repeat)


if __name__ == "__main__":
    main()

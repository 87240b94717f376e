"""How fast the content scanner could be at best, before any finding is classified.

    python -m bench.scan_ceiling [--notes 3000] [--repeat 5]   (from the repository root)

The scanner's cost is per candidate, in Python: every digit run, every listed name, every
anchor ("@", "://", ":", a month) is looked at by Python code that decides whether it is an
identifier. Two ceilings, on the corpus of bench/masking.py (dense and typical notes), in MB of
note text per second on one core (CPU time of this process):

- the detectors' first-pass regular expressions alone, ``findall`` with no Python per match:
  what any design that keeps them costs before doing anything with a candidate;
- one Hyperscan pass for the same candidates (digit runs, the listed names as whole words,
  titles, months, the net anchors), without a callback (the pass alone, in C) and with a
  Python callback per match that records it (the least a restructure that classifies
  candidates in Python pays), one note a scan and 64 notes a scan.

Issue 15 asks for 50 MB/s per core for the whole scanner; a row below that here is a design
that cannot reach it, whatever its classification costs.
"""

from __future__ import annotations

import argparse
import functools
import re
import time
from collections.abc import Callable
from typing import Any

from tests.masking.corpus import generate

from wardgate.masking.detectors import names, numbers, patterns
from wardgate.masking.detectors.names import NameDetector, name_lists

hyperscan: Any
try:
    import hyperscan
except ImportError:  # pragma: no cover - where the wheel is missing
    hyperscan = None


def first_passes() -> list[re.Pattern[str]]:
    """The regular expressions every note is scanned with before Python sees a candidate."""
    detector = NameDetector()
    return [
        numbers._RUN,
        detector.anchors,
        detector.vouched,
        names._COMPOUND,
        patterns._AT,
        patterns._URL,
        patterns._COLON,
        patterns._MONTH,
    ]


def candidate_database() -> Any:
    """The same candidates as one Hyperscan database: a digit after a non-digit (a run's start),
    every listed name as a whole capitalised word, the anchors, months and titles."""
    first, last, _ = name_lists()
    listed = sorted({n[:1].upper() + n[1:] for n in first | last if n.isascii() and n.isalpha()})
    expressions = [
        rb"(?:^|[^0-9])[0-9]",
        rb"@",
        rb"://",
        rb"(?i:www\.)",
        rb":",
        rb"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)",
        rb"(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Rev|Pt|pt|PT|Patient|patient)",
    ] + [rb"(?:^|[^A-Za-z'])" + n.encode() + rb"(?:$|[^a-z])" for n in listed]
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=expressions, ids=list(range(len(expressions))),
        elements=len(expressions), flags=[0] * len(expressions),
    )  # fmt: skip
    return database


def _record(_id: int, _start: int, end: int, _flags: int, hits: list[tuple[int, int]]) -> None:
    hits.append((_id, end))


def interleaved(repeat: int, runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """CPU seconds of each run, best of `repeat`, the runs taking turns (as in masking.py)."""
    seconds = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, run in runs.items():
            started = time.process_time()
            run()
            seconds[name] = min(seconds[name], time.process_time() - started)
    return seconds


def _findall(passes: list[re.Pattern[str]], texts: list[str]) -> None:
    for text in texts:
        for p in passes:
            p.findall(text)


def _hyperscan(
    database: Any, notes: list[bytes], handler: Callable[..., None] | None, hits: list[Any]
) -> None:
    for note in notes:
        database.scan(note, match_event_handler=handler, context=hits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--notes", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    passes = first_passes()
    database = candidate_database() if hyperscan is not None else None
    print(f"{'ceiling':52} {'dense':>7} {'typical':>8}  (MB/s)")
    rates: dict[str, list[float]] = {}
    for filler in ((0, 2), (4, 8)):
        texts = [note.text for note in generate(args.notes, seed=7, filler=filler)]
        size = sum(len(t.encode()) for t in texts)
        raw = [t.encode() for t in texts]
        joined = [b"\n\x1f\n".join(raw[i : i + 64]) for i in range(0, len(raw), 64)]
        hits: list[tuple[int, int]] = []
        runs: dict[str, Callable[[], object]] = {
            "first-pass regular expressions, no Python per match": functools.partial(
                _findall, passes, texts
            ),
        }
        if database is not None:
            runs |= {
                "one Hyperscan pass, no callback": functools.partial(
                    _hyperscan, database, raw, None, hits
                ),
                "one Hyperscan pass, a Python callback per match": functools.partial(
                    _hyperscan, database, raw, _record, hits
                ),
                "  the same, 64 notes a scan": functools.partial(
                    _hyperscan, database, joined, _record, hits
                ),
            }
        seconds = interleaved(args.repeat, runs)
        for label, s in seconds.items():
            rates.setdefault(label, []).append(size / s / 1e6)
        hits.clear()
        if database is not None:
            _hyperscan(database, raw, _record, hits)
            rates.setdefault("(candidates a note)", []).append(len(hits) / len(texts))
    for label, (dense, typical) in rates.items():
        print(f"{label:52} {dense:7.1f} {typical:8.1f}")


if __name__ == "__main__":
    main()

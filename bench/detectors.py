"""Note scanning, old engine beside new, on the demo's own notes (wardgate.demo.seed).

    python bench/detectors.py [--patients 2000] [--repeat 3]

The demo seeds patients and writes their identifiers into clinical notes in its own ways; the
gateway reads the patients' labelled columns (names, streets, cities, MRNs, member ids, e-mail
addresses, phones) and looks for them in the notes. Two engines for that:

- old: the detector as it was before issue 15 -- names only, every word of the note matched by
  a regular expression and looked up in a Python set;
- new: detectors/known.py -- every labelled value, one Hyperscan literal database, one pass in
  C (and its pure-Python fallback, for where the wheel is missing).

Rows: each engine alone, then the whole scanner (rules + the engine) as the gateway runs it
for a labelled target, each in MB of note text per second on one core, and new / old as a
ratio. One run of each (--repeat N: the best of N), so read the ratios, not the last digit.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Iterator

from wardgate.demo.seed import _Generator
from wardgate.masking.detectors import Scanner, ScannerConfig, Span
from wardgate.masking.detectors.known import KnownValues
from wardgate.masking.entities import Entity

_OLD_WORD = re.compile(r"[^\W\d_][\w'-]*", re.UNICODE)


class OldKnownNames:
    """The known-values detector before issue 15, kept here as the baseline."""

    name = "known-old"

    def __init__(self, names: list[str]) -> None:
        self.values = frozenset(
            w.casefold() for v in names for w in _OLD_WORD.findall(v) if len(w) >= 2
        )

    def find(self, text: str) -> Iterator[Span]:
        values = self.values
        for m in _OLD_WORD.finditer(text):
            if m.group(0).casefold() in values:
                yield Span(Entity.NAME, m.start(), m.end(), 0.9, self.name)


def best(repeat: int, run: Callable[[], object]) -> float:
    """CPU seconds of this process (the figure is per core, and on a shared machine wall time
    also counts the other processes' turns), best of `repeat`."""
    times = []
    for _ in range(repeat):
        started = time.process_time()
        run()
        times.append(time.process_time() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    tables = _Generator(20261129).generate(args.patients)
    notes = [row[4] for row in tables["clinical_notes"]]
    size = sum(len(n.encode()) for n in notes)
    # patients: id, mrn, first, last, ssn, dob, street, city, state, zip, phone, email, member
    rows = tables["patients"]
    values = {
        Entity.NAME: [v for r in rows for v in (r[2], r[3])],
        Entity.MRN: [r[1] for r in rows],
        Entity.GEO: [v for r in rows for v in (r[6], r[7])],
        Entity.PHONE: [r[10] for r in rows],
        Entity.EMAIL: [r[11] for r in rows],
        Entity.HEALTH_PLAN_ID: [r[12] for r in rows],
    }
    print(f"{len(notes)} notes of {len(rows)} patients, {size / 1e6:.2f} MB")

    old = OldKnownNames(values[Entity.NAME])
    started = time.perf_counter()
    new = KnownValues()
    new.replace(values)
    compile_s = time.perf_counter() - started
    fallback = KnownValues()
    fallback.replace(values, python=True)
    print(f"new engine: {new.engine}, {len(new)} keys compiled in {compile_s:.2f} s")

    batches = [notes[i : i + 64] for i in range(0, len(notes), 64)]
    joined = ["\n\x1f\n".join(b) for b in batches]  # as Scanner.scan_many joins them
    scanners = {
        "old": Scanner(ScannerConfig(extra=(old,))),
        "new": Scanner(ScannerConfig(extra=(new,))),
        "rules": Scanner(),
    }
    runs: dict[str, Callable[[], object]] = {
        "known values alone: old (names, Python loop)": lambda: [list(old.find(n)) for n in notes],
        "known values alone: new, Python fallback": lambda: [list(fallback.find(n)) for n in notes],
        "known values alone: new, Hyperscan": lambda: [list(new.find(n)) for n in notes],
        "whole scanner with old known values": lambda: [scanners["old"].scan(n) for n in notes],
        "whole scanner with new known values": lambda: [scanners["new"].scan(n) for n in notes],
        "rules alone (numbers, net, dates, names)": lambda: [
            scanners["rules"].scan(n) for n in notes
        ],
        "known values alone: new, 64 notes a scan": lambda: [list(new.find(b)) for b in joined],
        "whole scanner, new, 64 notes a scan": lambda: [
            scanners["new"].scan_many(b) for b in batches
        ],
    }
    # interleaved, best of --repeat: the machine is shared, and a slow spell then hits all rows
    seconds = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeat):
        for label, run in runs.items():
            seconds[label] = min(seconds[label], best(1, run))
    labels = list(runs)
    base_alone, base_scanner = seconds[labels[0]], seconds[labels[3]]
    print(f"{'':48} {'MB/s':>7} {'vs old':>7}")
    for label in labels:
        base = base_alone if label.startswith("known") else base_scanner
        print(f"{label:48} {size / seconds[label] / 1e6:7.1f} {base / seconds[label]:6.2f}x")


if __name__ == "__main__":
    main()

"""FHIR document masking, in process: the demo's bundles parsed, masked as an engineer (every
entity masked) and serialised, beside parsing and serialising alone.

    python bench/fhir_masking.py [--rounds 3]

Prints MB/s of the mask alone, of parse + serialise, and of parse + mask + serialise, and the
ratio of the last two (what masking costs an answer). Best of ``--rounds`` runs, CPU time.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from wardgate.demo.fhir_data import bundles
from wardgate.masking.fhir import FhirMasker
from wardgate.masking.text import TextMasker
from wardgate.masking.views import Policy

KEY = b"bench-fhir-key-0123456789abcdef"


def _best(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    view = Policy({}, {}).view(None)  # an engineer's: every entity masked
    masker = FhirMasker(view, KEY, TextMasker(KEY, view.text_operators()))
    texts = [json.dumps(b) for b in bundles()]
    size = sum(len(t.encode()) for t in texts)
    docs: list[dict[str, Any]] = []

    def mask_only() -> None:
        docs[:] = [json.loads(t) for t in texts]  # fresh documents: masking works in place
        started = time.process_time()
        for doc in docs:
            masker.mask(doc)
        times.append(time.process_time() - started)

    times: list[float] = []
    for _ in range(args.rounds):
        mask_only()
    plain = _best(lambda: [json.dumps(json.loads(t)) for t in texts], args.rounds)
    full = _best(lambda: [json.dumps(masker.mask(json.loads(t))) for t in texts], args.rounds)
    print(f"FHIR masking of {size / 1e6:.1f} MB of the demo's bundles, best of {args.rounds}:")
    print(f"  mask alone               {size / min(times) / 1e6:7.1f} MB/s")
    print(f"  parse + serialise        {size / plain / 1e6:7.1f} MB/s")
    print(f"  parse + mask + serialise {size / full / 1e6:7.1f} MB/s  ({plain / full:.2f}x)")


if __name__ == "__main__":
    main()

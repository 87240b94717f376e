"""The optional NER hook: a statistical recogniser (Presidio, spaCy, a hosted model) plugs in as
one more detector. Off by default and never required: nothing here imports one. A deployment
names a factory in its configuration ("package.module:factory"); the factory returns an object
with ``name`` and ``find(text) -> Iterable[Span]`` and is loaded only when named."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from wardgate.masking.detectors.base import Detector


class NerUnavailable(RuntimeError):
    pass


def load_ner(factory: str) -> Detector:
    """Imports and calls the factory named ``"module:callable"``; raises `NerUnavailable` when it
    cannot be loaded, so a misconfigured deployment fails at start, not per statement."""
    module_name, _, attr = factory.partition(":")
    if not module_name or not attr:
        raise NerUnavailable(f"NER factory must be 'module:callable', not {factory!r}")
    try:
        make: Callable[[], Detector] = getattr(importlib.import_module(module_name), attr)
        detector = make()
    except (ImportError, AttributeError) as exc:
        raise NerUnavailable(f"cannot load NER factory {factory!r}: {exc}") from exc
    if not callable(getattr(detector, "find", None)):
        raise NerUnavailable(f"NER factory {factory!r} returned no detector")
    return detector

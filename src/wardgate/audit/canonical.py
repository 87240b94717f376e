"""RFC 8785 JSON canonicalization (JCS): the exact bytes that audit hashes and signatures cover.

``canonical(value)`` returns the UTF-8 bytes of the JCS serialization. Two paths give the same
bytes: a fast one (the C JSON encoder with sorted keys and compact separators) and the exact one
(the ``rfc8785`` package). They differ only where Python's JSON output is not JCS:

- floats: Python writes ``12.0``, ``-0.0``, ``1e-05`` and ``1e+16`` where JCS (ECMAScript number
  formatting) writes ``12``, ``0``, ``0.00001`` and ``10000000000000000``. Python's ``repr`` and
  ECMAScript agree on the digits (both are the shortest that round-trip) and on fixed notation for
  every other float, so any output with ``.0`` before ``,``/``}``/``]`` or with ``e-``/``e+``
  takes the exact path;
- keys are sorted by UTF-16 code units in JCS and by code points in Python; the orders differ only
  for characters beyond U+FFFF (four UTF-8 bytes), so any output holding one takes the exact path.

Strings are escaped alike by both (``\\"``, ``\\\\``, ``\\b\\f\\n\\r\\t``, other controls as
lowercase ``\\u00xx``, everything else as UTF-8); lone surrogates and NaN/Infinity are refused.
The fast path does not range-check integers: integers beyond +/-(2**53 - 1), which JCS cannot
represent, are written in full instead of refused (the event builders only emit small counts).
Suspicion costs time, never correctness: a false alarm (say ``e-`` inside a statement's text)
just takes the exact path.
"""

from __future__ import annotations

import re
from _json import make_encoder
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

import rfc8785


class CanonicalizationError(ValueError):
    """A value that has no RFC 8785 form (NaN, Infinity, a lone surrogate, a non-JSON type)."""


def _refuse(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not a JSON type")


def _python_encoder() -> Callable[[Any], str]:
    # (markers, default, encoder, indent, key_separator, item_separator, sort_keys, skipkeys,
    #  allow_nan): built once; json.dumps would build it again on every call.
    encoder = make_encoder(None, _refuse, encode_basestring, None, ":", ",", True, False, False)

    def fast(value: Any) -> str:
        return "".join(encoder(value, 0))

    return fast


_encode = _python_encoder()
_ASTRAL = re.compile(rb"[\xf0-\xf7]")


def _suspect(data: bytes) -> bool:
    return (
        b".0," in data
        or b".0}" in data
        or b".0]" in data
        or b"e-" in data
        or b"e+" in data
        or (not data.isascii() and _ASTRAL.search(data) is not None)
    )


def canonical(value: Any) -> bytes:
    """The RFC 8785 serialization of ``value`` as UTF-8 bytes."""
    try:
        data = _encode(value).encode("utf-8")
    except (ValueError, TypeError) as exc:  # NaN/Infinity, lone surrogates, non-JSON types
        raise CanonicalizationError(str(exc)) from exc
    if _suspect(data):
        return exact(value)
    return data


def exact(value: Any) -> bytes:
    """The RFC 8785 serialization through the reference path only (slow)."""
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise CanonicalizationError(str(exc)) from exc

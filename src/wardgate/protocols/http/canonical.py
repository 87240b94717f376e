"""One spelling per request target: no I/O.

Policy, masking, approvals and the audit all read the request target, and the API reads it
again after them. If the two read it differently (``%24export`` is ``$export`` to the API and not
to a rule that looks for a ``$``), a rule is bypassed by spelling. So the gateway decodes the
target once, refuses what two readers could take differently, and forwards the one canonical
spelling it judged:

- the path is percent-decoded segment by segment (strict UTF-8), empty segments (``//``, a
  trailing ``/``) are dropped, and each segment is re-encoded the same way every time;
- refused (400): ``.`` and ``..`` segments, a decoded ``/`` or ``\\`` (encoded separators), a
  ``;`` (matrix parameters, which some servers strip and others keep), a ``%`` left after
  decoding (double encoding, which a second decoder would turn into something else), control
  characters, and bytes that are not UTF-8;
- the query is split on ``&`` only, names and values decoded (``+`` is a space) and re-encoded;
- for FHIR APIs (``fhir_segments``): a type's place (``Type/id/Type``) naming a resource type
  in any case is spelled as FHIR spells it (``patient`` is ``Patient``), operations and the
  ``_history``/``_search``/``metadata`` keywords in lower case (``$EXPORT`` is ``$export``),
  and a segment with a character no FHIR type, id or operation can hold is refused.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode

from wardgate.protocols.http.codec import CodecError
from wardgate.protocols.http.fhir_types import RESOURCE_TYPES

_SEGMENT_SAFE = "$:@!*'(),+=&-._~"
_QUERY_SAFE = "$:@!*'(),/|-._~"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FHIR_SEGMENT = re.compile(r"[A-Za-z0-9\-._$]{1,200}")
_KEYWORDS = frozenset({"_history", "_search"})
_BY_LOWER = {t.lower(): t for t in RESOURCE_TYPES}


def decode_path(path: str) -> list[str]:
    """The decoded, non-empty segments of ``path``; CodecError 400 for what is ambiguous."""
    segments: list[str] = []
    for raw in path.split("/"):
        if not raw:
            continue
        try:
            segment = unquote(raw, errors="strict")
        except UnicodeDecodeError as exc:
            raise CodecError(400, "the path is not UTF-8 once decoded") from exc
        if segment in (".", ".."):
            raise CodecError(400, "the path has a dot segment")
        if "/" in segment or "\\" in segment:
            raise CodecError(400, "the path has an encoded separator")
        if ";" in segment:
            raise CodecError(400, "the path has a ';' (matrix parameters are ambiguous)")
        if "%" in segment:
            raise CodecError(400, "the path is encoded twice")
        if _CONTROL.search(segment):
            raise CodecError(400, "the path has a control character")
        segments.append(segment)
    return segments


def encode_path(segments: list[str]) -> str:
    return "/".join(quote(s, safe=_SEGMENT_SAFE) for s in segments)


def decode_query(query: str) -> list[tuple[str, str]]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise CodecError(400, "the query is not UTF-8 once decoded") from exc
    for name, value in pairs:
        if _CONTROL.search(name) or _CONTROL.search(value):
            raise CodecError(400, "the query has a control character")
    return pairs


def encode_query(pairs: list[tuple[str, str]]) -> str:
    return urlencode(pairs, quote_via=quote, safe=_QUERY_SAFE)


def fhir_segments(segments: list[str]) -> list[str]:
    """FHIR's own spelling of decoded segments; CodecError 400 for a segment FHIR cannot hold."""
    out: list[str] = []
    for index, segment in enumerate(segments):
        if not _FHIR_SEGMENT.fullmatch(segment):
            raise CodecError(400, f"the path segment {segment[:40]!r} is not a FHIR name or id")
        lower = segment.lower()
        if lower.startswith("$") or lower in _KEYWORDS or (index == 0 and lower == "metadata"):
            out.append(lower)  # no id holds a "$" or starts with "_"
        elif index in (0, 2):  # where a type goes: Type/id/CompartmentType (ids keep their case)
            out.append(_BY_LOWER.get(lower, segment))
        else:
            out.append(segment)
    return out

"""What the ``document`` hook receives for an answer that is not JSON.

An HTTP API can answer in a type the gateway cannot parse (HTML, plain text, PDF...). Such an
answer is not passed around the hooks: the protocol glue hands them a small stand-in,
``opaque(content_type, size)``, and sends the bytes it holds only if every addon returns the
stand-in unchanged. An addon that cannot let the bytes through for this caller (masking, for a
masked view) raises ``Unmaskable`` with the reason the client should read.
"""

from __future__ import annotations

from typing import Any

OPAQUE = "wardgate:opaque"


class Unmaskable(Exception):
    """The answer cannot reach this caller as it is, and cannot be masked."""


def opaque(content_type: str, size: int) -> dict[str, Any]:
    return {OPAQUE: {"contentType": content_type, "bytes": size}}


def is_opaque(document: Any) -> bool:
    return isinstance(document, dict) and OPAQUE in document and len(document) == 1

"""TLS contexts for listeners and for the gateway's connections to targets."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

UpstreamMode = Literal["disable", "require", "verify-full"]


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    # PostgreSQL clients negotiate no ALPN over SSLRequest; nothing else to set.
    return ctx


def client_context(mode: UpstreamMode, ca: Path | None) -> ssl.SSLContext | None:
    if mode == "disable":
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if mode == "require":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca is not None:
        ctx.load_verify_locations(cafile=str(ca))
    else:
        ctx.load_default_certs()
    return ctx


def describe(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str:
    """``TLSv1.3 TLS_AES_256_GCM_SHA384``, or empty for a plaintext connection."""
    if ssl_object is None:
        return ""
    cipher = ssl_object.cipher()
    return f"{ssl_object.version()} {cipher[0] if cipher else ''}".strip()

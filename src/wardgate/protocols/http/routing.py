"""Where a request goes and which headers cross the gateway: no I/O.

``https://gateway/<api>/<rest>?<query>`` goes to ``<api url>/<rest>?<query>``, in the one
canonical spelling of ``canonical`` (decoded, ambiguous spellings refused, re-encoded): what
policy judged is what the API receives, and no request reaches a path outside the API's base
URL however the upstream normalises it.

Headers: hop-by-hop headers (RFC 9110 7.6.1, and those the Connection header names) never cross.
The caller's ``Authorization``, ``Cookie`` and ``Proxy-Authorization`` stay at the gateway (they
are the caller's credentials to wardgate, not to the API), and so does any header the gateway
injects itself, and the method-override headers (``X-HTTP-Method-Override``...), which would
make the API run another method than the one policy judged. From the API, ``Set-Cookie`` is
dropped: every API shares the gateway's origin, so a cookie one sets would be sent on to the
others' paths by browsers, and the gateway keeps no cookie state for its callers.
``Alt-Svc`` (which would send the client around the gateway) is dropped too; the API's base URL
is rewritten to the gateway's wherever a header quotes it (``Location``, ``Content-Location``,
``Link``...): the API's internal address reaches no client.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, replace
from functools import lru_cache

from wardgate.protocols.http import canonical
from wardgate.protocols.http.codec import CodecError

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Never forwarded to the API: the caller's credentials, and what the gateway sets itself.
_REQUEST_DROP = frozenset(
    {"authorization", "cookie", "host", "content-length", "expect", "accept-encoding"}
) | frozenset(  # a method other than the one policy judged
    {"x-http-method-override", "x-http-method", "x-method-override"}
)
# Never forwarded to the client. Length and encoding are the gateway's to set: it may have
# changed the body (a masked document) and it always sends it decoded.
_RESPONSE_DROP = frozenset(
    {"set-cookie", "set-cookie2", "alt-svc", "content-length", "content-encoding"}
)


@dataclass(frozen=True)
class Route:
    api: str
    segments: tuple[str, ...]  # the path under the API's base, decoded
    params: tuple[tuple[str, str], ...]  # the query, decoded

    @property
    def rest(self) -> str:
        """The path under the API's base, canonical, without a leading "/"."""
        return canonical.encode_path(list(self.segments))

    @property
    def query(self) -> str:
        """The query, canonical, without "?"; "" if none."""
        return canonical.encode_query(list(self.params))

    @property
    def path(self) -> str:
        """The canonical path, without the query."""
        rest = self.rest
        return f"/{self.api}/{rest}" if rest else f"/{self.api}"

    @property
    def target(self) -> str:
        """The canonical request target (path and query)."""
        query = self.query
        return f"{self.path}?{query}" if query else self.path

    @property
    def first_segment(self) -> str:
        """The first segment under the API (a FHIR resource type, ``metadata``, ``$export``)."""
        return self.segments[0] if self.segments else ""

    def fhir(self) -> Route:
        """The route in FHIR's own spelling (types, operations); CodecError 400 if it has a
        segment FHIR cannot hold."""
        return replace(self, segments=tuple(canonical.fhir_segments(list(self.segments))))

    def upstream_url(self, base: str) -> str:
        url = base.rstrip("/") + ("/" + self.rest if self.rest else "")
        return f"{url}?{self.query}" if self.query else url


def route(target: str) -> Route:
    """The route of an origin-form request-target; ``CodecError`` 400 or 404 if there is none."""
    if not target.startswith("/"):
        raise CodecError(400, "the request target must be a path (origin form)")
    path, _, query = target.partition("?")
    if "#" in target:
        raise CodecError(400, "the request target has a fragment")
    segments = canonical.decode_path(path)
    if not segments or not path[1:].split("/", 1)[0]:
        raise CodecError(404, "name an API: /<api>/<path>")
    params = canonical.decode_query(query)
    return Route(segments[0], tuple(segments[1:]), tuple(params))


def connection_named(headers: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> set[str]:
    """The headers the Connection header says are hop-by-hop."""
    named: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            named.update(t.strip().lower() for t in value.split(",") if t.strip())
    return named


def request_headers(
    headers: tuple[tuple[str, str], ...], injected: frozenset[str]
) -> list[tuple[str, str]]:
    """The caller's headers to forward to the API (before the gateway adds its credential)."""
    drop = HOP_BY_HOP | _REQUEST_DROP | injected | connection_named(headers)
    return [(k, v) for k, v in headers if k.lower() not in drop]


def response_headers(
    headers: list[tuple[str, str]], upstream_base: str, public_base: str
) -> list[tuple[str, str]]:
    """The API's headers to send to the client."""
    drop = HOP_BY_HOP | _RESPONSE_DROP | connection_named(headers)
    out: list[tuple[str, str]] = []
    for name, value in headers:
        lower = name.lower()
        if lower in drop:
            continue
        out.append((lower, rebase_text(value, upstream_base, public_base)))
    return out


def rebase_text(text: str, upstream_base: str, public_base: str) -> str:
    """``text`` with every URL under the API's base put under the gateway's (the base itself,
    or followed by ``/``, ``?``, ``#`` or a character no URL continues with)."""
    base = upstream_base.rstrip("/")
    if base not in text:
        return text
    return _base_pattern(base).sub(lambda _: public_base.rstrip("/"), text)


@lru_cache(maxsize=64)
def _base_pattern(base: str) -> re.Pattern[str]:
    return re.compile(re.escape(base) + r"(?![^/?#\s\"'<>;,)\]])")


def default_public_url(scheme: str, host: str, port: int) -> str:
    """``scheme://host[:port]`` of the listener; the machine's name for a wildcard address."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" if port == default else f"{scheme}://{host}:{port}"


def rewritten(sent: Route, forward: Route) -> list[tuple[str, str]]:
    """(what the API got, what the client sent) for each segment and value an addon rewrote."""
    pairs = [(f, s) for s, f in zip(sent.segments, forward.segments, strict=False) if s != f]
    for (_, sent_value), (_, value) in zip(sent.params, forward.params, strict=False):
        if sent_value != value:
            pairs += [(f, s) for s, f in zip(sent_value.split(","), value.split(","), strict=False)
                      if s != f]  # fmt: skip
    return [(f.split("/")[-1].split("|")[-1], s.split("/")[-1].split("|")[-1]) for f, s in pairs]


def unecho(value: str, echoes: list[tuple[str, str]]) -> str:
    """``value`` with what the API was sent in place of the client's words put back."""
    for real, sent in echoes:
        if real and real in value:
            value = value.replace(real, sent)
    return value

"""Answers the gateway holds whole before it sends them, through the ``document`` hook: no
sockets.

JSON is parsed, a bulk-data manifest's file URLs are bound to the caller (``exports``) and the
API's links rebased before the hook sees it; NDJSON (a bulk export's files) goes through the
hook line by line; any other type goes through as a stand-in (``core.documents.opaque``) and
its bytes are sent only if every addon lets the stand-in pass. Whatever fails is an
``HttpError`` the glue answers and records.
"""

from __future__ import annotations

from wardgate.config import ApiTarget
from wardgate.core import documents as hooked
from wardgate.core.model import ApiCall
from wardgate.core.pipeline import Pipeline, PipelineFailure
from wardgate.protocols.http import documents
from wardgate.protocols.http.exports import ExportJobs

UNSAFE = "the gateway could not process the API's answer safely"


class HttpError(Exception):
    """Answer the client ``status`` with ``message`` (and record it); ``reason`` says more in
    the audit. ``close`` ends the connection after the answer."""

    def __init__(self, status: int, message: str, reason: str = "", close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or message
        self.close = close


def json_answer(
    pipeline: Pipeline,
    exports: ExportJobs,
    request: ApiCall,
    api: ApiTarget,
    upstream_base: str,
    data: bytes,
    public: str,
) -> bytes:
    doc = _parse(data)
    identity = request.session.identity
    if api.kind == "fhir":  # first: addons (masking, the recorder) see the client's links
        if identity is not None:
            exports.bind_manifest(api.name, doc, upstream_base, identity.subject)
        if documents.may_quote(data, upstream_base):
            documents.rewrite_links(doc, upstream_base, public)
    return documents.dump(_through_hook(pipeline, request, doc))


def ndjson_answer(
    pipeline: Pipeline, request: ApiCall, data: bytes, upstream_base: str, public: str
) -> bytes:
    """Line by line: each a resource, its links rebased (absolute references), then masked."""
    rebase = documents.may_quote(data, upstream_base)
    out = []
    for line in data.split(b"\n"):
        if line.strip():
            doc = _parse(line)
            if rebase:
                documents.rewrite_links(doc, upstream_base, public)
            out.append(documents.dump(_through_hook(pipeline, request, doc)))
    return b"\n".join(out) + b"\n" if out else b""


def opaque_answer(pipeline: Pipeline, request: ApiCall, content_type: str, data: bytes) -> bytes:
    if not data:
        return data
    stand_in = hooked.opaque(content_type, len(data))
    if not hooked.is_opaque(_through_hook(pipeline, request, stand_in)):
        raise HttpError(502, UNSAFE, "an addon replaced an answer it could not read")
    return data


def _through_hook(pipeline: Pipeline, request: ApiCall, doc: object) -> object:
    try:
        return pipeline.document(request, doc)
    except PipelineFailure as exc:
        cause = exc.__cause__
        if isinstance(cause, hooked.Unmaskable):
            raise HttpError(502, str(cause), str(exc)) from exc
        raise HttpError(502, UNSAFE, str(exc)) from exc


def _parse(data: bytes) -> object:
    try:
        return documents.parse(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(
            502, "the upstream answered with malformed JSON", f"malformed JSON: {exc}"
        ) from exc

"""The masking addon for API calls: every JSON document an HTTP API answers is masked per the
caller's view (``documents``), and the pseudonymous patient ids a client sends back go to the API
as the real ones.
"""

from __future__ import annotations

from typing import Any

from wardgate.core.model import ApiCall, Decision
from wardgate.core.pipeline import Addon
from wardgate.masking.documents import Documents, UnknownPseudonym


class DocumentMaskingAddon(Addon):
    name = "masking"

    def __init__(self, documents: Documents) -> None:
        self.documents = documents

    def api_call(self, call: ApiCall) -> Decision | None:
        target = call.text.partition(" ")[2]
        info = call.session
        refused = self.documents.refusal(info.target, info.identity, call.method, target)
        if refused is not None:
            return Decision.deny(refused, "masking")
        try:
            decoded = self.documents.decode_target(target)
        except UnknownPseudonym as exc:
            return Decision.deny(str(exc), "masking")
        if decoded != target:
            call.forward_target = decoded
        return None

    def document(self, call: ApiCall, body: Any) -> Any:
        info = call.session
        target = call.text.partition(" ")[2]  # its pseudonyms go back where echoed
        masked, counts = self.documents.mask(info.target, info.identity, body, target)
        if counts:
            previous = (call.masked or {}).get("masked", {})
            merged = {k: previous.get(k, 0) + counts.get(k, 0) for k in {*previous, *counts}}
            call.masked = {"masked": dict(sorted(merged.items()))}
        return masked

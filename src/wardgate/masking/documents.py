"""Masking the JSON documents HTTP APIs answer, per identity: FHIR by its resource model
(``fhir``), other JSON by the API's path rules (``jsonpath``).

One masker per (API, view), kept for the gateway's life, so its caches of masked values last.
Patient ids go out as reversible ``pid-`` pseudonyms; ``decode_target`` turns the pseudonyms a
client sends back (``GET /ehr/Patient/pid-...``, ``?patient=pid-...``) into the real ids
before the request reaches the API, and refuses tokens the gateway did not make.

For a view that masks anything, three more rules close the ways around the masker:
``refusal`` turns away searches on masked elements (``fhir_search``) and POSTed searches whose
parameters cannot be read; the real ids decoded from a request are put back as the caller's
pseudonyms wherever the answer echoes them (an error's diagnostics: ``Patient/<id> is not
known``); and an answer that is not JSON (``core.documents.opaque``) cannot be masked, so it is
refused (``Unmaskable``) rather than passed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from wardgate.config import ApiTarget
from wardgate.core.documents import Unmaskable, is_opaque
from wardgate.core.model import Identity
from wardgate.masking import fhir_search
from wardgate.masking.detectors import Scanner
from wardgate.masking.fhir import ID_TYPES, FhirMasker
from wardgate.masking.fhir_ids import PREFIX, Pseudonyms
from wardgate.masking.jsonpath import JsonMasker
from wardgate.masking.text import TextMasker
from wardgate.masking.views import Policy, View

_TOKEN = re.compile(re.escape(PREFIX) + r"[A-Za-z0-9.\-]+")


class UnknownPseudonym(ValueError):
    """A ``pid-`` token this gateway did not make (another key, tampered, invented)."""


class Documents:
    def __init__(
        self, apis: Mapping[str, ApiTarget], policy: Policy, key: bytes, scanner: Scanner
    ) -> None:
        self.apis = apis
        self.policy = policy
        self.key = key
        self.scanner = scanner
        self.pseudonyms = Pseudonyms(key)
        # By API and view; the policy keeps one View object per (roles, agent), so its id is a key.
        self._maskers: dict[tuple[str, int], FhirMasker | JsonMasker | None] = {}

    def masker(self, api: str, identity: Identity | None) -> FhirMasker | JsonMasker | None:
        target = self.apis.get(api)
        if target is None:
            return None
        view = self.policy.view(identity)
        key = (api, id(view))
        if key not in self._maskers:
            self._maskers[key] = self._build(target, view)
        return self._maskers[key]

    def _build(self, target: ApiTarget, view: View) -> FhirMasker | JsonMasker | None:
        text = TextMasker(self.key, view.text_operators(), self.scanner)
        if target.kind == "fhir":
            masker = FhirMasker(view, self.key, text, pseudonyms=self.pseudonyms)
            return masker if masker.masks_any else None
        if not target.phi and not target.scan_strings:
            return None
        return JsonMasker(view, self.key, target.phi, text=text, scan_strings=target.scan_strings)

    def refusal(self, api: str, identity: Identity | None, method: str, target: str) -> str | None:
        """Why this call cannot run for the caller's view, or None (FHIR APIs)."""
        found = self.apis.get(api)
        if found is None or found.kind != "fhir" or self.masker(api, identity) is None:
            return None
        path = target.partition("?")[0]
        segments = [s for s in path.split("/")[2:] if s]
        if method == "POST" and segments and segments[-1].lower() == "_search":
            return "a POSTed search cannot be checked for masked elements; search with GET"
        if method == "POST" and not segments:
            return "a batch or transaction cannot be checked for masked elements; send each request"
        matching = _ORACLES.intersection(s.lower() for s in segments)
        if matching:
            return f"{min(matching)} searches masked elements"
        resource = segments[0] if segments else ""
        view = self.policy.view(identity)
        real_id = len(segments) >= 2 and not segments[1].startswith(("$", "_", PREFIX))
        if real_id and resource in ID_TYPES and fhir_search.masks_ids(view):
            return f"a person's id must be one of the gateway's {PREFIX} pseudonyms"
        if len(segments) == 3 and segments[2][:1].isupper():  # a compartment: Patient/x/Type
            resource = segments[2]
        return fhir_search.refusal(view, resource, target)

    def mask(
        self, api: str, identity: Identity | None, document: Any, target: str = ""
    ) -> tuple[Any, dict[str, int]]:
        """The masked document and what was masked, by label. ``target``: the request's, whose
        pseudonyms were decoded on the way in; the real ids go back to them in the answer."""
        masker = self.masker(api, identity)
        if masker is None:
            return document, {}
        if is_opaque(document):
            kind = document[next(iter(document))].get("contentType") or "no content type"
            raise Unmaskable(
                f"the API answered {kind.split(';')[0]!r}, which the gateway cannot mask"
                " for this caller"
            )
        if isinstance(masker, FhirMasker):
            masked = _fhir(masker, document)
        else:
            masked = masker.mask(document)
        echoes = self.decoded(target)
        if echoes:
            masked = _unecho(masked, echoes)
        counts = masker.take_counts() if isinstance(masker, FhirMasker) else _take(masker.counts)
        return masked, {k: v for k, v in sorted(counts.items()) if v}

    def decoded(self, target: str) -> dict[str, str]:
        """The real ids behind the pseudonyms in ``target``, each to its pseudonym."""
        out: dict[str, str] = {}
        for match in _TOKEN.finditer(target):
            token = unquote(match.group(0))
            found = self.pseudonyms.decode(token)
            if found:
                out[found] = token
        return out

    def decode_target(self, target: str) -> str:
        """The request target (path and query) with every pseudonym replaced by the real id."""
        if PREFIX not in target:
            return target

        def real(match: re.Match[str]) -> str:
            found = self.pseudonyms.decode(unquote(match.group(0)))
            if found is None:
                raise UnknownPseudonym(f"{match.group(0)!r} is not a patient id of this gateway")
            return found

        return _TOKEN.sub(real, target)


# Operations that search by the elements a caller may see masked (a patient's demographics).
_ORACLES = frozenset({"$match", "$graphql"})


def _fhir(masker: FhirMasker, node: Any) -> Any:
    """A FHIR API's answer: resources by the resource model; what is not a resource (a list, a
    bulk-data manifest, JSON of the API's own) content-scanned string by string, URLs aside."""
    if isinstance(node, dict):
        if "resourceType" in node:
            return masker.mask(node)
        _check_manifest(node)
        return {k: v if k in _URL_KEYS else _fhir(masker, v) for k, v in node.items()}
    if isinstance(node, list):
        return [_fhir(masker, v) for v in node]
    if isinstance(node, str):
        return masker.text.mask(node)
    return node


_URL_KEYS = frozenset({"url", "request"})  # a manifest's: links the caller must follow


def _check_manifest(node: dict[str, Any]) -> None:
    """A bulk-data manifest whose files are not served where its request was (through the
    gateway, once rebased): the caller would read them around the masker (storage URLs)."""
    if "transactionTime" not in node or not isinstance(node.get("request"), str):
        return
    origin = _origin(node["request"])
    for key in ("output", "error", "deleted"):
        entries = node.get(key)
        for entry in entries if isinstance(entries, list) else ():
            url = entry.get("url") if isinstance(entry, dict) else None
            if isinstance(url, str) and _origin(url) != origin:
                raise Unmaskable("the export's files are not served through the gateway")


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme.lower()}://{rest.split('/', 1)[0].lower()}"


def _unecho(node: Any, echoes: dict[str, str]) -> Any:
    """Every string in ``node`` with the real ids put back as their pseudonyms (any case)."""
    if isinstance(node, str):
        lower = node.lower()
        if any(real.lower() in lower for real in echoes):
            for real, token in echoes.items():
                node = _whole_id(real).sub(token, node)
        return node
    if isinstance(node, dict):
        return {k: _unecho(v, echoes) for k, v in node.items()}
    if isinstance(node, list):
        return [_unecho(v, echoes) for v in node]
    return node


def _whole_id(real: str) -> re.Pattern[str]:
    """``real`` as a whole id (not inside a longer one, nor a date or a number), in any case."""
    return re.compile(
        rf"(?<![A-Za-z0-9\-.]){re.escape(real)}(?![A-Za-z0-9\-]|\.[A-Za-z0-9])", re.IGNORECASE
    )


def _take(counts: Any) -> dict[str, int]:
    out = dict(counts)
    counts.clear()
    return out

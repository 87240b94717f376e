"""Masking the JSON documents HTTP APIs answer, per identity: FHIR by its resource model
(``fhir``), other JSON by the API's path rules (``jsonpath``).

One masker per (API, view), kept for the gateway's life, so its caches of masked values last.
Patient ids go out as reversible ``pid-`` pseudonyms; ``decode_target`` turns the pseudonyms a
client sends back (``GET /ehr/Patient/pid-...``, ``?patient=pid-...``) into the real ids
before the request reaches the API, and refuses tokens the gateway did not make.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from wardgate.config import ApiTarget
from wardgate.core.model import Identity
from wardgate.masking.detectors import Scanner
from wardgate.masking.fhir import FhirMasker
from wardgate.masking.fhir_ids import PREFIX, Pseudonyms
from wardgate.masking.jsonpath import JsonMasker
from wardgate.masking.policy import Policy, View
from wardgate.masking.text import TextMasker

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

    def mask(
        self, api: str, identity: Identity | None, document: Any
    ) -> tuple[Any, dict[str, int]]:
        """The masked document and what was masked, by label."""
        masker = self.masker(api, identity)
        if masker is None:
            return document, {}
        masked = masker.mask(document)
        counts = masker.take_counts() if isinstance(masker, FhirMasker) else _take(masker.counts)
        return masked, {k: v for k, v in sorted(counts.items()) if v}

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


def _take(counts: Any) -> dict[str, int]:
    out = dict(counts)
    counts.clear()
    return out

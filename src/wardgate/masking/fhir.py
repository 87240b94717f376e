"""Masking FHIR R4 JSON for one view: a resource, or a Bundle of any type, nested bundles and
``contained`` resources included.

person resource  Patient, Person, RelatedPerson, Practitioner: their name, telecom, address,
                 birthDate, deceasedDateTime, identifier, photo, contact and qualification
                 fields are masked by entity (``PERSON_FIELDS``)
person id        the id of a Patient, Person or RelatedPerson: an identifier too (Synthea uses
                 the Patient id as the MRN), so for a view that masks MRN it becomes a reversible
                 pseudonym (``fhir_ids.Pseudonyms``) in ``id``, in every reference to it and in
                 the bundle's URLs, and links between resources still resolve
free text        narrative (``text.div``), annotations (``note``), ``description``, ``comment``
                 and ``diagnostics`` strings of every resource are content-scanned
dates            for a view that masks DATE, every date, dateTime and instant (and so every
                 Period, Timing event and ``meta.lastUpdated``) of every resource but the few
                 types that hold no individual's dates (``UNDATED``), found by its lexical
                 type, not by a list of paths: a type or element nobody listed is masked too
everything else  clinical content passes, except identifiers whose type or system says what
                 they are (an SSN in a Coverage, a member number) and extensions carrying a
                 name, an address, a contact point or an identifier

FHIR JSON has no nulls: a value whose operator gives none, or gives what is not valid for the
element (a redacted birth date), is removed, and so is an array left empty.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

from wardgate.masking.detectors import Span
from wardgate.masking.entities import Entity
from wardgate.masking.fhir_ids import Pseudonyms
from wardgate.masking.jsonpath import Leaves
from wardgate.masking.text import TextMasker
from wardgate.masking.views import View

Json = dict[str, Any]

PERSONS = frozenset({"Patient", "Person", "RelatedPerson", "Practitioner"})
ID_TYPES = frozenset({"Patient", "Person", "RelatedPerson"})  # whose ids are pseudonymised
NAMED = PERSONS | {"PractitionerRole"}  # a reference's display to one of these is a name
PERSON_FIELDS = frozenset({
    "name", "telecom", "address", "birthDate", "_birthDate", "deceasedDateTime",
    "_deceasedDateTime", "identifier", "photo", "contact", "qualification",
})  # fmt: skip
SCANNED = frozenset({"description", "comment", "diagnostics"})  # free-text strings
# Resource types that hold no individual's dates: definitions, terminology, the server's own
# statements, and the organisations, places and products care is given by. Every other type
# (one nobody listed too) has its dates masked for a view that masks DATE.
UNDATED = frozenset({
    "CapabilityStatement", "TerminologyCapabilities", "OperationDefinition", "SearchParameter",
    "StructureDefinition", "StructureMap", "ImplementationGuide", "CompartmentDefinition",
    "GraphDefinition", "MessageDefinition", "NamingSystem", "CodeSystem", "ValueSet",
    "ConceptMap", "ActivityDefinition", "PlanDefinition", "Questionnaire", "Library", "Measure",
    "EventDefinition", "ObservationDefinition", "SpecimenDefinition", "ChargeItemDefinition",
    "Organization", "Location", "HealthcareService", "Endpoint", "Medication", "Substance",
    "InsurancePlan", "MedicinalProduct", "DeviceDefinition",
})  # fmt: skip
# Elements of type instant, which must keep a full time (the rest are date or dateTime, which
# may hold a year alone): by name anywhere, and a few by resource type at its top level.
INSTANTS = frozenset({
    "lastUpdated", "issued", "recorded", "when", "timestamp", "lastModified", "ifModifiedSince",
})  # fmt: skip
TOP_INSTANTS: dict[str, frozenset[str]] = {
    "Appointment": frozenset({"start", "end"}), "AppointmentResponse": frozenset({"start", "end"}),
    "Slot": frozenset({"start", "end"}), "DocumentReference": frozenset({"date"}),
}  # fmt: skip
NOT_DATES = frozenset({"id"})  # a resource id that looks like a date stays an id

TELECOM: dict[str, Entity] = {
    "phone": Entity.PHONE, "fax": Entity.FAX, "email": Entity.EMAIL, "url": Entity.URL,
    "pager": Entity.PHONE, "sms": Entity.PHONE,
}  # fmt: skip
# Identifier.type codes (HL7 v2 table 0203) and systems that say what an identifier is.
IDENTIFIER_TYPES: dict[str, Entity] = {
    "SS": Entity.SSN, "SB": Entity.SSN, "MR": Entity.MRN, "MRT": Entity.MRN, "PI": Entity.MRN,
    "PT": Entity.MRN, "DL": Entity.LICENSE, "MD": Entity.LICENSE, "DEA": Entity.LICENSE,
    "LN": Entity.LICENSE, "PPN": Entity.OTHER_ID, "NPI": Entity.OTHER_ID, "TAX": Entity.OTHER_ID,
    "BR": Entity.OTHER_ID, "MB": Entity.HEALTH_PLAN_ID, "SN": Entity.HEALTH_PLAN_ID,
    "MC": Entity.HEALTH_PLAN_ID, "MA": Entity.HEALTH_PLAN_ID, "MCN": Entity.HEALTH_PLAN_ID,
    "AN": Entity.ACCOUNT, "AM": Entity.ACCOUNT, "BA": Entity.ACCOUNT,
}  # fmt: skip
IDENTIFIER_SYSTEMS: dict[str, Entity] = {
    "http://hl7.org/fhir/sid/us-ssn": Entity.SSN,
    "urn:oid:2.16.840.1.113883.4.1": Entity.SSN,
    "http://hl7.org/fhir/sid/us-npi": Entity.OTHER_ID,
    "urn:oid:2.16.840.1.113883.4.6": Entity.OTHER_ID,
    "http://hl7.org/fhir/sid/us-medicare": Entity.HEALTH_PLAN_ID,
    "http://hl7.org/fhir/sid/us-mbi": Entity.HEALTH_PLAN_ID,
    "http://hl7.org/fhir/sid/passport-USA": Entity.OTHER_ID,
}
_DRIVERS_LICENCE_OIDS = "urn:oid:2.16.840.1.113883.4.3."  # + a state's FIPS code

_EXT = "http://hl7.org/fhir/StructureDefinition/"
GEOLOCATION = _EXT + "geolocation"
EXTENSION_ENTITIES: dict[str, Entity] = {  # extensions whose primitive value is one entity
    _EXT + "patient-mothersMaidenName": Entity.NAME,
    _EXT + "humanname-mothers-family": Entity.NAME,
    _EXT + "humanname-fathers-family": Entity.NAME,
    _EXT + "humanname-own-name": Entity.NAME,
    _EXT + "patient-birthTime": Entity.DATE,
}

_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2})?)?")
_YEAR = re.compile(r"\d{4}")
# A date, dateTime or instant with more than its year: what DATE masking reduces.
_PRECISE = re.compile(r"\d{4}-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?")
_DATETIME = re.compile(
    r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?)?)?"
)
# A reference or URL naming a resource: [base/]Type/id[/_history/vid], then the end, ? or #.
_TYPED = re.compile(
    r"(?:^|/)(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[A-Za-z0-9\-.]{1,64})?(?=$|[?#])"
)
_PERSON_IN_URL = re.compile(
    r"(?<![A-Za-z])(?P<type>Patient|Person|RelatedPerson)(?P<slash>/|%2F|%2f)"
    r"(?P<id>[A-Za-z0-9\-.]{1,64})"
)
_PARAM = re.compile(r"(?P<name>[^=&#]+)=(?P<value>[^&#]*)")
_PERSON_PARAMS = frozenset({"patient", "person", "beneficiary"})  # values are person ids
_TAG = re.compile(r"(<[^>]*>)")
_ATTRIBUTE = re.compile(r"(\s(?:href|src|title|alt)\s*=\s*)([\"'])(.*?)\2", re.DOTALL)

Check = Callable[[str], object] | None
_SHORT_TEXT = 256  # characters: free text this short repeats (a race's text, a link, a display)
_SPANS_KEPT = 16384


class FhirMasker:
    """Masks FHIR JSON for one view. `mask` changes the parsed document **in place** (and
    returns it): the caller parses each response, masks it and serialises it. Keep one masker
    per view and key: its caches of masked values last across documents.

    `counts` adds up masked values by entity across calls (content-scan findings included;
    pseudonymised resource ids count as MRN, the references to them do not); `take_counts`
    returns them and starts again. `pseudonyms` is what the gateway uses to decode ids that
    come back in requests; pass the gateway's own to share its caches."""

    def __init__(
        self, view: View, key: bytes, text: TextMasker, *, pseudonyms: Pseudonyms | None = None
    ) -> None:
        self.view = view
        self.text = text
        self.leaves = Leaves(view, key)
        self.counts = self.leaves.counts
        self._functions = self.leaves.functions
        self.masks_any = any(fn is not None for fn in self._functions.values())
        masks_ids = self.leaves.masks(Entity.MRN)
        self.masks_dates = self.leaves.masks(Entity.DATE)
        self._dating = False  # the resource being walked has its dates masked
        self.pseudonyms = pseudonyms or Pseudonyms(key)
        self._ids: Pseudonyms | None = self.pseudonyms if masks_ids else None
        self._kinds: dict[str, str] = {}  # fullUrl -> resourceType, in the current document
        self._person_ids: set[str] = set()
        # Free text found in the current document, scanned in one batch at its end.
        self._texts: list[str] = []
        # Where each text goes: (container, key, escape for markup or None).
        self._places: list[tuple[Any, Any, Callable[[str], str] | None]] = []
        # Narratives to put together after the batch: the div's parts, tags' split attributes.
        self._narratives: list[tuple[Json, list[str], list[tuple[int, list[str]]]]] = []
        # Short texts' spans, across documents: only when the scanner's answers cannot change
        # (no extra detectors, such as a target's known values that a reload replaces).
        self._keeps_spans = not text.scanner.config.extra
        self._spans: dict[str, list[Span]] = {}

    def take_counts(self) -> Counter[str]:
        out = Counter(self.counts)
        self.counts.clear()
        return out

    def mask(self, document: Json) -> Json:
        if not self.masks_any or not isinstance(document, dict):
            return document
        before = Counter(self.text.counts)
        self._kinds = {}
        self._person_ids = set()
        self._collect(document)
        try:
            self._resource(document, local=False)
            self._scan_texts()
        finally:
            self._texts, self._places, self._narratives = [], [], []
        for entity, n in (self.text.counts - before).items():
            self.counts[entity.value] += n
        return document

    def _scan(
        self, container: Any, key: Any, text: str, markup: Callable[[str], str] | None = None
    ) -> None:
        """Content-scan `text`, the value of ``container[key]`` (unescaped from `markup`), with
        the document's other free text; a changed text goes back escaped by `markup`."""
        self._texts.append(text)
        self._places.append((container, key, markup))

    def _scan_texts(self) -> None:
        """The document's free text scanned as one batch (``scan_many``: one pass of the
        detectors instead of one per string), each distinct text once (a link, a race's text
        repeat in every resource), each result put where its text came from and counted per
        occurrence. Short texts' spans are kept across documents when the scanner's answers
        cannot change (``_keeps_spans``)."""
        texts = self._texts
        if texts:
            kept = self._spans
            lookup: dict[str, list[Span]] = {}
            todo = []
            for text in dict.fromkeys(texts):
                hit = kept.get(text)
                if hit is None:
                    todo.append(text)
                else:
                    lookup[text] = hit
            for text, got in zip(todo, self.text.scanner.scan_many(todo), strict=True):
                lookup[text] = got
                if self._keeps_spans and len(text) <= _SHORT_TEXT:
                    if len(kept) >= _SPANS_KEPT:
                        kept.clear()
                    kept[text] = got
            apply = self.text.apply
            for (container, key, markup), old in zip(self._places, texts, strict=True):
                got = lookup[old]
                if got:
                    new = apply(old, got)
                    if new != old:
                        container[key] = new if markup is None else markup(new)
        for narrative, parts, pieces in self._narratives:
            for i, split in pieces:
                parts[i] = "".join(split)
            narrative["div"] = "".join(parts)

    # ---- documents

    def _collect(self, resource: Json) -> None:
        """The kinds of the bundle's entries by fullUrl, and the person ids in the document."""
        kind = resource.get("resourceType")
        if kind in ID_TYPES and isinstance(resource.get("id"), str):
            self._person_ids.add(resource["id"])
        if kind != "Bundle":
            return
        for entry in _items(resource.get("entry")):
            found = entry.get("resource")
            if not isinstance(found, dict):
                continue
            url = entry.get("fullUrl")
            if isinstance(url, str):
                self._kinds[url] = found.get("resourceType", "")
                if url.startswith("urn:uuid:") and found.get("resourceType") in ID_TYPES:
                    self._person_ids.add(url[9:])
            self._collect(found)

    def _resource(self, resource: Json, *, local: bool) -> None:
        kind = resource.get("resourceType")
        if kind == "Bundle":
            self._bundle(resource)
            if self.masks_dates:  # its own: a document's timestamp, entries' lastModified
                self._dates(resource, INSTANTS)
            return
        top: frozenset[str] = frozenset()
        if kind in PERSONS:
            self._person(resource)
            top = PERSON_FIELDS
        if kind in ID_TYPES and not local and self._ids is not None:
            id_ = resource.get("id")
            if isinstance(id_, str):
                resource["id"] = self._ids.encode(id_)
                self.counts[Entity.MRN.value] += 1
        outer = self._dating
        self._dating = self.masks_dates and kind not in UNDATED
        extra = TOP_INSTANTS.get(kind) if self._dating and isinstance(kind, str) else None
        try:
            self._walk(resource, top, INSTANTS | extra if extra else INSTANTS)
        finally:
            self._dating = outer

    def _bundle(self, bundle: Json) -> None:
        for link in _items(bundle.get("link")):
            self._rewrite_url(link, "url")
        for entry in _items(bundle.get("entry")):
            self._rewrite_url(entry, "fullUrl")
            for link in _items(entry.get("link")):
                self._rewrite_url(link, "url")
            resource = entry.get("resource")
            if isinstance(resource, dict):
                self._resource(resource, local=False)
            request = entry.get("request")
            if isinstance(request, dict):
                self._rewrite_url(request, "url")
            response = entry.get("response")
            if isinstance(response, dict):
                self._rewrite_url(response, "location")
                outcome = response.get("outcome")
                if isinstance(outcome, dict):
                    self._resource(outcome, local=False)

    def _walk(
        self, node: Json, top: frozenset[str] = frozenset(), instants: frozenset[str] = INSTANTS
    ) -> None:
        """Every element below `node`: references, free text, nested resources, extensions,
        typed identifiers and (``_dating``) dates. Replaces values in place; removes keys only
        after the loop. What it does not descend into has its dates masked by ``_dates``."""
        dead: list[str] = []
        dating = self._dating
        for key, value in node.items():
            kind = type(value)
            if key in top:
                if dating and (kind is dict or kind is list) and self._dates_in(node, key):
                    dead.append(key)
                continue
            if kind is dict:
                if key == "text" and "div" in value:
                    self._narrative(value)
                    if dating and self._dates_in(node, key):
                        dead.append(key)
                elif key == "identifier":
                    self._identifier(value, person=False)
                    if dating and self._dates_in(node, key):
                        dead.append(key)
                elif "resourceType" in value:
                    self._resource(value, local=False)
                else:
                    if "reference" in value or ("display" in value and _display_only(value)):
                        self._reference(value)
                    self._walk(value)
                    if dating and not value:  # a Period left with neither end
                        dead.append(key)
            elif kind is list:
                if key == "extension" or key == "modifierExtension":
                    kept = self._extensions(value)
                    if kept:
                        node[key] = kept
                    else:
                        dead.append(key)
                elif key == "identifier" or key == "note":
                    if key == "note":
                        self._notes(value)
                    else:
                        for item in value:
                            if type(item) is dict:
                                self._identifier(item, person=False)
                    if dating and self._dates_in(node, key):
                        dead.append(key)
                else:
                    local = key == "contained"
                    emptied = False
                    for i, item in enumerate(value):
                        if type(item) is dict:
                            if "resourceType" in item:
                                self._resource(item, local=local)
                            else:
                                if "reference" in item or (
                                    "display" in item and _display_only(item)
                                ):
                                    self._reference(item)
                                self._walk(item)
                                emptied = emptied or not item
                        elif dating and type(item) is str and _is_date(item):
                            value[i] = self._date(item, False)
                            emptied = emptied or value[i] is None
                    if emptied:
                        _drop_emptied(node, key, value, dead)
            elif kind is str:
                if key in SCANNED:
                    self._scan(node, key, value)
                elif key == "subscriberId" and self.leaves.masks(Entity.HEALTH_PLAN_ID):
                    masked = self._one(Entity.HEALTH_PLAN_ID, value, None)
                    if masked is None:
                        dead.append(key)
                    else:
                        node[key] = masked
                elif (  # _is_date, inline: every string of a document passes here
                    dating
                    and len(value) >= 7
                    and value[4] == "-"
                    and _PRECISE.fullmatch(value)
                    and key not in NOT_DATES
                ):
                    instant = key in instants or key.endswith("Instant")
                    masked = self._date(value, instant)
                    if masked is None:
                        dead.append(key)
                    else:
                        node[key] = masked
        for key in dead:
            del node[key]
            if dating:
                node.pop("_" + key, None)

    # ---- dates

    def _dates_in(self, node: Json, key: str) -> bool:
        """``_dates`` of the element ``node[key]`` (an object or an array), which the walk does
        not descend into; True if nothing is left of it (the caller removes it)."""
        holder = {key: node[key]}
        self._dates(holder, INSTANTS)
        if key not in holder:
            return True
        node[key] = holder[key]  # the same key: no change of size while the walk iterates
        return False

    def _dates(self, node: Json, instants: frozenset[str]) -> None:
        """Every date, dateTime and instant below ``node`` with more than its year, masked as
        DATE, found by its lexical form (FHIR's primitive types are told apart by it), so that
        no list of paths can miss one. Nested resources are left to their own pass. An instant
        must keep a full time: the year becomes 1 January at noon UTC, as SQL's ``date_to_year``
        writes a timestamptz; a value with no valid masked form is removed."""
        dead: list[str] = []
        for key, value in node.items():
            kind = type(value)
            if kind is str:
                if _is_date(value) and key not in NOT_DATES:
                    masked = self._date(value, key in instants or key.endswith("Instant"))
                    if masked is None:
                        dead.append(key)
                    else:
                        node[key] = masked
            elif kind is dict:
                if "resourceType" not in value:
                    self._dates(value, INSTANTS)
                    if not value:  # a Period left with neither end
                        dead.append(key)
            elif kind is list:
                emptied = False
                for i, item in enumerate(value):
                    if type(item) is str and _is_date(item):
                        value[i] = self._date(item, False)
                        emptied = emptied or value[i] is None
                    elif type(item) is dict and "resourceType" not in item:
                        self._dates(item, INSTANTS)
                        emptied = emptied or not item
                if emptied:
                    _drop_emptied(node, key, value, dead)
        for key in dead:
            del node[key]
            node.pop("_" + key, None)

    def _date(self, value: str, instant: bool) -> str | None:
        out = self.leaves.leaf(Entity.DATE, value)
        if not isinstance(out, str):
            return None
        if instant:
            return f"{out}-01-01T12:00:00Z" if _YEAR.fullmatch(out) else None
        return out if _DATETIME.fullmatch(out) else None

    # ---- persons

    def _person(self, resource: Json) -> None:
        for name in _items(resource.get("name")):
            self._human_name(name)
        self._telecoms(resource.get("telecom"))
        for address in _items(resource.get("address")):
            self._address(address)
        self._set(resource, "birthDate", Entity.DATE, _DATE.fullmatch)
        self._set(resource, "deceasedDateTime", Entity.DATE, _DATETIME.fullmatch)
        for identifier in _items(resource.get("identifier")):
            self._identifier(identifier, person=True)
        photos = resource.get("photo")
        if photos is not None and self.leaves.masks(Entity.PHOTO):
            self.counts[Entity.PHOTO.value] += len(photos) if isinstance(photos, list) else 1
            del resource["photo"]
        for contact in _items(resource.get("contact")):
            for name in _items(contact.get("name")):
                self._human_name(name)
            self._telecoms(contact.get("telecom"))
            for address in _items(contact.get("address")):
                self._address(address)
        for qualification in _items(resource.get("qualification")):
            for identifier in _items(qualification.get("identifier")):
                entity = _identifier_entity(identifier, person=True)
                self._set(identifier, "value", Entity.LICENSE if entity is None else entity)
        for contact in _items(resource.get("contact")):
            _prune(contact, ("name", "telecom", "address"))
        _prune(resource, ("name", "telecom", "address", "contact"))

    def _human_name(self, name: Json) -> None:
        for part in ("family", "given", "prefix", "suffix", "text"):
            self._set(name, part, Entity.NAME)

    def _telecoms(self, telecoms: Any) -> None:
        for point in _items(telecoms):
            self._set(point, "value", TELECOM.get(point.get("system", ""), Entity.OTHER_ID))

    def _address(self, address: Json) -> None:
        for part in ("line", "city", "district", "text"):
            self._set(address, part, Entity.GEO)
        self._set(address, "postalCode", Entity.ZIP)
        extensions = address.get("extension")
        if isinstance(extensions, list) and self.leaves.masks(Entity.GEO):
            kept = [e for e in extensions if not _is_geolocation(e)]
            self.counts[Entity.GEO.value] += len(extensions) - len(kept)
            if kept:
                address["extension"] = kept
            else:
                del address["extension"]

    def _identifier(self, identifier: Json, *, person: bool) -> None:
        entity = _identifier_entity(identifier, person=person)
        if entity is not None:
            self._set(identifier, "value", entity)

    def _extensions(self, extensions: list[Any]) -> list[Any]:
        """The extensions with their identifying values masked, and those left without a value
        (or carrying a masked geolocation) removed; nested ones are walked."""
        kept = []
        for ext in extensions:
            if type(ext) is not dict:
                continue
            url = ext.get("url")
            if url == GEOLOCATION and self.leaves.masks(Entity.GEO):  # a point: no partial form
                self.counts[Entity.GEO.value] += 1
                continue
            entity = EXTENSION_ENTITIES.get(url) if isinstance(url, str) else None
            for key in [k for k in ext if k.startswith("value")]:
                value = ext[key]
                if entity is not None and not isinstance(value, dict):
                    check = _DATETIME.fullmatch if entity is Entity.DATE else None
                    self._set(ext, key, entity, check)
                elif key == "valueHumanName" and isinstance(value, dict):
                    self._human_name(value)
                elif key == "valueAddress" and isinstance(value, dict):
                    self._address(value)
                elif key == "valueContactPoint" and isinstance(value, dict):
                    self._telecoms(value)
                elif key == "valueIdentifier" and isinstance(value, dict):
                    self._identifier(value, person=True)
                elif key == "valueString" and isinstance(value, str):
                    self._scan(ext, key, value)
                if value == {}:
                    del ext[key]
            self._walk(ext)  # nested extensions, references
            if any(k.startswith("value") or k == "extension" for k in ext):
                kept.append(ext)  # else nothing is left of it
        return kept

    # ---- references, URLs, text

    def _reference(self, ref: Json) -> None:
        target: str | None = None
        value = ref.get("reference")
        ids = self._ids
        if type(value) is str:
            if value.startswith("urn:uuid:"):
                target = self._kinds.get(value)
                if target in ID_TYPES and ids is not None:
                    ref["reference"] = "urn:uuid:" + ids.uuid(value[9:])
            elif not value.startswith("#"):
                m = _TYPED.search(value)
                if m is not None:
                    target = m["type"]
                    if target in ID_TYPES and ids is not None:
                        start, end = m.span("id")
                        ref["reference"] = value[:start] + ids.encode(m["id"]) + value[end:]
        declared = ref.get("type")
        if target is None and isinstance(declared, str):
            target = declared.rsplit("/", 1)[-1]
        display = ref.get("display")
        if type(display) is str:
            if target in NAMED:
                self._set(ref, "display", Entity.NAME)
            elif target is None:
                self._scan(ref, "display", display)

    def _rewrite_url(self, node: Json, key: str) -> None:
        url = node.get(key)
        if self._ids is not None and isinstance(url, str):
            node[key] = self._url(url, self._ids)

    def _url(self, url: str, ids: Pseudonyms) -> str:
        if url.startswith("urn:uuid:"):
            return "urn:uuid:" + ids.uuid(url[9:]) if url[9:] in self._person_ids else url
        path, mark, query = url.partition("?")

        def person(m: re.Match[str]) -> str:
            return f"{m['type']}{m['slash']}{ids.encode(m['id'])}"

        path = _PERSON_IN_URL.sub(person, path)
        if not mark:
            return path
        searches_persons = any(path.endswith("/" + t) or path == t for t in ID_TYPES)

        def param(m: re.Match[str]) -> str:
            name = unquote(m["name"]).split(":", 1)[0]
            values = []
            for item in m["value"].split(","):
                raw = unquote(item)
                if _PERSON_IN_URL.search(item):
                    values.append(_PERSON_IN_URL.sub(person, item))
                elif (
                    raw in self._person_ids
                    or name in _PERSON_PARAMS
                    or (name == "_id" and searches_persons)
                ) and raw:
                    values.append(ids.encode(raw))
                else:
                    values.append(item)
            return f"{m['name']}={','.join(values)}"

        return f"{path}?{_PARAM.sub(param, query)}"

    def _notes(self, notes: list[Any]) -> None:
        for note in notes:
            if type(note) is not dict:
                continue
            text = note.get("text")
            if isinstance(text, str):
                self._scan(note, "text", text)
            self._set(note, "authorString", Entity.NAME)
            author = note.get("authorReference")
            if isinstance(author, dict):
                self._reference(author)

    def _narrative(self, narrative: Json) -> None:
        """Scans the text nodes of the XHTML narrative (and link and image attributes); the
        markup stays as it was, and only changed text is re-escaped, so it stays well formed.
        The texts join the document's batch; the div is put together again after it."""
        div = narrative.get("div")
        if not isinstance(div, str):
            return
        parts = _TAG.split(div)
        pieces: list[tuple[int, list[str]]] = []  # tags with attributes, split around values
        for i in range(0, len(parts), 2):
            if parts[i].strip():
                self._scan(parts, i, html.unescape(parts[i]), _escape_text)
        for i in range(1, len(parts), 2):
            if "=" in parts[i]:
                split = _split_attributes(parts[i])
                for k in range(1, len(split), 2):
                    self._scan(split, k, html.unescape(split[k]), _escape_attribute)
                pieces.append((i, split))
        self._narratives.append((narrative, parts, pieces))

    # ---- values

    def _set(self, node: Json, key: str, entity: Entity, check: Check = None) -> None:
        """Masks ``node[key]`` (a value or an array of values) as `entity`; removes what has no
        valid masked form, and the primitive's ``_key`` extensions with it."""
        value = node.get(key)
        if value is None or self._functions[entity] is None:
            return
        if type(value) is list:
            masked = [m for v in value if (m := self._one(entity, v, check)) is not None]
            if masked:
                node[key] = masked
            else:
                del node[key]
        else:
            one = self._one(entity, value, check)
            if one is None:
                del node[key]
            else:
                node[key] = one
        node.pop("_" + key, None)

    def _one(self, entity: Entity, value: Any, check: Check) -> Any:
        if type(value) is not str and (
            isinstance(value, bool) or not isinstance(value, str | int | float)
        ):
            return None  # not a primitive: not what this element holds, so fail closed
        out = self.leaves.leaf(entity, value)
        if out is None or (check is not None and not (isinstance(out, str) and check(out))):
            return None
        return out


def _drop_emptied(node: Json, key: str, value: list[Any], dead: list[str]) -> None:
    """An array some of whose items were masked away (None, or an object left empty): what is
    left of it, or the element marked ``dead`` when nothing is (the same key: no change of
    size while the caller iterates)."""
    kept = [v for v in value if v is not None and v != {}]
    if kept:
        node[key] = kept
    else:
        dead.append(key)


def _is_date(value: str) -> bool:
    """A date, dateTime or instant with more than its year (the dash first: it is cheap)."""
    return len(value) >= 7 and value[4] == "-" and _PRECISE.fullmatch(value) is not None


def _split_attributes(tag: str) -> list[str]:
    """`tag` in pieces that join to it again, the values of its scanned attributes at the odd
    indexes."""
    out: list[str] = []
    position = 0
    for m in _ATTRIBUTE.finditer(tag):
        out.append(tag[position : m.start(3)])
        out.append(m[3])
        position = m.end(3)
    out.append(tag[position:])
    return out


def _escape_text(text: str) -> str:
    return escape(text)


def _escape_attribute(text: str) -> str:
    return escape(text, {'"': "&quot;", "'": "&apos;"})


def _display_only(node: Json) -> bool:
    """A reference by display alone (``{"display": "private"}``), not a Coding."""
    return "code" not in node and "system" not in node


def _is_geolocation(extension: Any) -> bool:
    return isinstance(extension, dict) and extension.get("url") == GEOLOCATION


def _prune(node: Json, keys: tuple[str, ...]) -> None:
    """Removes the objects masking left empty (a name of nulled parts), and then arrays and
    elements left empty: FHIR JSON allows neither."""
    for key in keys:
        value = node.get(key)
        if isinstance(value, list):
            value = [v for v in value if v != {}]
            node[key] = value
        if value == {} or value == []:
            del node[key]


def _items(value: Any) -> list[Json]:
    """The objects in an element that holds one or an array of them."""
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _identifier_entity(identifier: Json, *, person: bool) -> Entity | None:
    """What an identifier is, from its type code, then its system; any other identifier of a
    person is OTHER_ID, of anything else not PHI (a claim number, an order number)."""
    kind = identifier.get("type")
    if isinstance(kind, dict):
        for coding in _items(kind.get("coding")):
            found = IDENTIFIER_TYPES.get(coding.get("code", ""))
            if found is not None:
                return found
    system = identifier.get("system")
    if isinstance(system, str):
        found = IDENTIFIER_SYSTEMS.get(system)
        if found is not None:
            return found
        if system.startswith(_DRIVERS_LICENCE_OIDS):
            return Entity.LICENSE
    return Entity.OTHER_ID if person else None

"""DEVELOPMENT ONLY: a search request parsed into filters, and the filters run over the store.

Parameters given twice must both hold (AND); a comma inside one value is OR. An unknown
parameter is ignored (FHIR's lenient default, ``Prefer: handling=lenient``) and left out of the
paging links; a known parameter with a modifier the server lacks is an error, as FHIR asks.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from wardgate.demo.fhir.params import Param, Range, Token, date_range, params_of
from wardgate.demo.fhir.store import FhirStore, Resource

DEFAULT_COUNT = 20
MAX_COUNT = 200
_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_MODIFIERS = {"string": ("", "exact", "contains"), "token": ("",), "date": ("",)}


class SearchError(ValueError):
    """A request the server refuses (400), with the reason for the OperationOutcome."""


@dataclass(frozen=True)
class Filter:
    param: Param
    modifier: str
    values: tuple[str, ...]  # any of them (OR)

    def matches(self, resource: Resource) -> bool:
        found = self.param.values(resource)
        return any(_match(self.param, self.modifier, value, found) for value in self.values)


@dataclass
class Query:
    kind: str
    filters: list[Filter] = field(default_factory=list)
    includes: list[Param] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    summary_count: bool = False
    # What the paging links repeat: the parameters that were applied, in request order.
    applied: list[tuple[str, str]] = field(default_factory=list)


def parse(kind: str, items: list[tuple[str, str]]) -> Query:
    known = params_of(kind)
    query = Query(kind)
    for key, value in items:
        name, _, modifier = key.partition(":")
        if key == "_count":
            query.count = min(_number(key, value), MAX_COUNT)
        elif key == "_offset":
            query.offset = _number(key, value)
        elif key == "_summary":
            query.summary_count = value == "count"
            if query.summary_count:
                query.applied.append((key, value))
        elif key == "_include":
            include = _include(kind, value)
            if include is not None:
                query.includes.append(include)
                query.applied.append((key, value))
        elif name in known:
            param = known[name]
            allowed = _MODIFIERS.get(param.kind)
            if allowed is not None and modifier not in allowed:
                raise SearchError(f"the modifier :{modifier} of {name} is not supported")
            if param.kind == "reference" and modifier not in ("", param.target or modifier):
                raise SearchError(f"{name} refers to {param.target}, not {modifier}")
            values = tuple(v for v in value.split(",") if v)
            if param.kind == "date":
                for v in values:
                    if date_range(_split_prefix(v)[1]) is None:
                        raise SearchError(f"{name}: {v!r} is not a date")
            query.filters.append(Filter(param, modifier, values))
            query.applied.append((key, value))
    return query


def window(items: list[tuple[str, str]]) -> tuple[int, int]:
    """``_count`` (at most ``MAX_COUNT``) and ``_offset`` alone, for ``$everything``."""
    count, offset = DEFAULT_COUNT, 0
    for key, value in items:
        if key == "_count":
            count = min(_number(key, value), MAX_COUNT)
        elif key == "_offset":
            offset = _number(key, value)
    return count, offset


def run(store: FhirStore, query: Query) -> list[Resource]:
    return [r for r in store.all_of(query.kind) if all(f.matches(r) for f in query.filters)]


def included(store: FhirStore, query: Query, page: list[Resource]) -> list[Resource]:
    """The resources the page's ``_include`` references name, each once, none of the page's."""
    seen = {(r["resourceType"], r["id"]) for r in page}
    out = []
    for resource in page:
        for param in query.includes:
            for ref in param.values(resource):
                kind, _, rid = ref.partition("/")
                target = store.get(kind, rid)
                if target is not None and (kind, rid) not in seen:
                    seen.add((kind, rid))
                    out.append(target)
    return out


def _number(key: str, value: str) -> int:
    if not value.isdigit():
        raise SearchError(f"{key} must be a whole number, not {value!r}")
    return int(value)


def _include(kind: str, value: str) -> Param | None:
    """``Observation:patient`` or ``Observation:subject:Patient``; other forms are ignored."""
    source, _, rest = value.partition(":")
    name, _, target = rest.partition(":")
    param = params_of(kind).get(name)
    if source != kind or param is None or param.kind != "reference":
        return None
    if target and target != (param.target or target):
        return None
    return param


def _split_prefix(value: str) -> tuple[str, str]:
    if value[:2] in _PREFIXES and value[2:3].isdigit():
        return value[:2], value[2:]
    return "eq", value


def _fold(text: str) -> str:
    """Case and accents ignored, as FHIR's string search does by default."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _match(param: Param, modifier: str, wanted: str, found: list[object]) -> bool:
    if param.kind == "string":
        strings = [s for s in found if isinstance(s, str)]
        if modifier == "exact":
            return wanted in strings
        if modifier == "contains":
            return any(_fold(wanted) in _fold(s) for s in strings)
        return any(_fold(s).startswith(_fold(wanted)) for s in strings)
    if param.kind == "token":
        return any(_token_matches(wanted, token) for token in found if isinstance(token, tuple))
    if param.kind == "date":
        prefix, text = _split_prefix(wanted)
        span = date_range(text)
        assert span is not None  # checked by parse
        return any(_date_matches(prefix, span, r) for r in found if isinstance(r, tuple))
    target = modifier or param.target  # subject:Patient=ID
    return any(_ref_matches(wanted, ref, target) for ref in found if isinstance(ref, str))


def _token_matches(wanted: str, token: Token) -> bool:
    system, code = token
    if "|" not in wanted:
        return code == wanted
    want_system, _, want_code = wanted.partition("|")
    if not want_system:
        return system is None and code == want_code
    return system == want_system and (not want_code or code == want_code)


def _date_matches(prefix: str, search: Range, target: Range) -> bool:
    (s_start, s_end), (t_start, t_end) = search, target
    within = s_start <= t_start and t_end <= s_end
    checks: dict[str, bool] = {
        "eq": within,
        "ne": not within,
        "gt": t_end > s_end,
        "lt": t_start < s_start,
        "ge": t_end > s_end or within,
        "le": t_start < s_start or within,
        "sa": t_start >= s_end,
        "eb": t_end <= s_start,
        "ap": t_start < s_end and t_end > s_start,
    }
    return checks[prefix]


def _ref_matches(wanted: str, ref: str, target: str | None) -> bool:
    """``Type/id``, a bare id (of ``target`` when the parameter has one) or an absolute URL."""
    parts = wanted.rstrip("/").split("/")
    if len(parts) >= 2:
        return ref == f"{parts[-2]}/{parts[-1]}"
    if target is not None:
        return ref == f"{target}/{wanted}"
    return ref.rpartition("/")[2] == wanted

"""Masking JSON documents: one view's operators as functions of a JSON leaf (`Leaves`, shared
with the FHIR masker), and rules by JSON path for APIs that are not FHIR (`JsonMasker`).

A rule maps a path to a label: an entity (``SSN``...) or ``TEXT`` (content-scanned). Paths are
JSONPath as jsonpath-ng reads it: ``$`` the document, ``.name`` or ``['name']`` a member, ``[*]``
or ``.*`` every element or member, ``[2]`` one element, ``..name`` a member at any depth.
A rule on an object or array masks every string and number inside it. What no rule names is
left alone, unless ``scan_strings`` content-scans every other string too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.jsonpath import Fields, Index
from jsonpath_ng.parser import parse as jsonpath_parse

from wardgate.masking.entities import Entity
from wardgate.masking.operators import Keep
from wardgate.masking.text import TextMasker
from wardgate.masking.views import TEXT, View

Leaf = str | int | float
LeafFn = Callable[[Leaf], Any]

# What a leaf the operator cannot handle raises; the leaf then becomes null (fail closed).
_MALFORMED = (ValueError, TypeError, ArithmeticError, UnicodeError, IndexError)


class Leaves:
    """The view's operator of each entity, compiled once into a function of one JSON leaf
    (``json_leaf``), with a cache of results for strings (names, cities and dates repeat).
    `mask` counts every value it changes in `counts`, by entity name."""

    def __init__(self, view: View, key: bytes, *, cache_size: int = 65536) -> None:
        self.counts: Counter[str] = Counter()
        self._cache_size = cache_size
        self.functions: dict[Entity, LeafFn | None] = {}
        self._caches: dict[Entity, dict[Leaf, Any]] = {}
        self._names = {entity: entity.value for entity in Entity}  # Enum.value is slow per leaf
        for entity in Entity:
            operator = view.operator(entity.value)
            if operator is None or isinstance(operator, Keep):
                self.functions[entity] = None
            else:
                self.functions[entity] = _guarded(operator.json_leaf, key)
                self._caches[entity] = {}

    def masks(self, entity: Entity) -> bool:
        return self.functions[entity] is not None

    def leaf(self, entity: Entity, value: Leaf) -> Any:
        """The masked form of one string or number (None: JSON null), counted."""
        fn = self.functions[entity]
        if fn is None:
            return value
        self.counts[self._names[entity]] += 1
        cache = self._caches[entity]
        found = cache.get(value, cache)
        if found is cache:
            if len(cache) >= self._cache_size:
                cache.clear()
            found = cache[value] = fn(value)
        return found

    def mask(self, entity: Entity, value: Any) -> Any:
        """`leaf` of a string or number, of every one inside an object or array (the shape
        stays); null and booleans stay."""
        if self.functions[entity] is None or value is None or isinstance(value, bool):
            return value
        if isinstance(value, str | int | float):
            return self.leaf(entity, value)
        if isinstance(value, dict):
            return {k: self.mask(entity, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.mask(entity, v) for v in value]
        return None


def _guarded(json_leaf: Callable[[Leaf, bytes], Any], key: bytes) -> LeafFn:
    def leaf(value: Leaf) -> Any:
        try:
            return json_leaf(value, key)
        except _MALFORMED:
            return None

    return leaf


def scan_all(value: Any, text: TextMasker) -> Any:
    """Every string inside `value` content-scanned; the rest as it was."""
    if isinstance(value, str):
        return text.mask(value)
    if isinstance(value, dict):
        return {k: scan_all(v, text) for k, v in value.items()}
    if isinstance(value, list):
        return [scan_all(v, text) for v in value]
    return value


# ---- paths (JSONPath, read by jsonpath-ng)


class PathError(ValueError):
    pass


Slot = tuple[Any, Any]  # (container, key or index): where one matched value lives


def parse_path(path: str) -> JSONPath:
    text = path.strip()
    if not text.startswith("$"):
        raise PathError(f"a JSON path starts with $: {path!r}")
    try:
        return jsonpath_parse(text)
    except Exception as exc:  # the library's lexer and parser errors share no base class
        raise PathError(f"cannot read the JSON path {path!r}: {exc}") from exc


def _children(node: Any) -> Iterator[Slot]:
    if isinstance(node, dict):
        for k in node:
            yield node, k
    elif isinstance(node, list):
        for i in range(len(node)):
            yield node, i


def find(document: Any, path: JSONPath) -> list[Slot]:
    """Where the path's values are in `document` (the root itself is not a slot)."""
    slots: list[Slot] = []
    for match in path.find(document):
        parent = match.context
        if parent is None:
            continue  # the document itself
        container, step = parent.value, match.path
        if isinstance(step, Fields) and len(step.fields) == 1 and isinstance(container, dict):
            slots.append((container, step.fields[0]))
        elif isinstance(step, Index) and len(step.indices) == 1 and isinstance(container, list):
            slots.append((container, step.indices[0] % len(container)))
    return slots


@dataclass(frozen=True)
class PathRule:
    path: str
    label: str  # an entity's name, or TEXT
    steps: JSONPath

    @classmethod
    def of(cls, path: str, label: str) -> PathRule:
        if label != TEXT and label not in Entity.__members__:
            raise PathError(f"unknown label {label!r} for {path!r}: an entity or TEXT")
        if path.strip() == "$":
            raise PathError(f"a rule needs a path below the document: {path!r}")
        return cls(path, label, parse_path(path))


class JsonMasker:
    """Masks JSON documents of one API for one view by path rules. `mask` changes the document
    in place and returns it. ``scan_strings`` content-scans every string no rule matched (needs
    `text`); ``counts`` adds up masked values by label (content-scan findings by entity)."""

    def __init__(
        self,
        view: View,
        key: bytes,
        rules: Mapping[str, str],
        *,
        text: TextMasker | None = None,
        scan_strings: bool = False,
    ) -> None:
        if (scan_strings or TEXT in rules.values()) and text is None:
            raise ValueError("content scanning needs a TextMasker")
        self.rules = tuple(PathRule.of(path, label) for path, label in rules.items())
        self.leaves = Leaves(view, key)
        self.text = text
        self.scan_strings = scan_strings

    @property
    def counts(self) -> Counter[str]:
        return self.leaves.counts

    def mask(self, document: Any) -> Any:
        text = self.text
        before = Counter(text.counts) if text is not None else Counter()
        done: set[tuple[int, Any]] = set()
        alive: list[Any] = []  # the containers in `done`, kept so that no id is reused
        for rule in self.rules:
            for container, k in find(document, rule.steps):
                if (id(container), k) in done:
                    continue  # a value two rules match is masked once, by the first
                done.add((id(container), k))
                alive.append(container)
                if rule.label == TEXT:
                    assert text is not None
                    container[k] = scan_all(container[k], text)
                else:
                    container[k] = self.leaves.mask(Entity(rule.label), container[k])
        if self.scan_strings and text is not None:
            document = self._scan(document, done, text)
        if text is not None:
            for entity, n in (text.counts - before).items():
                self.leaves.counts[entity.value] += n
        return document

    def _scan(self, node: Any, done: set[tuple[int, Any]], text: TextMasker) -> Any:
        if isinstance(node, str):
            return text.mask(node)
        for container, k in list(_children(node)):
            if (id(container), k) not in done:
                container[k] = self._scan(container[k], done, text)
        return node

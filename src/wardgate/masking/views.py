"""Who sees what: the labels of a target's columns, and one identity's view of the entities.

A label is an entity (``SSN``, ``NAME``...) or ``TEXT``: free text whose identifiers are found
by the detectors. Labels in the configuration are authoritative; a column of a labelled table
that has no label is content-scanned. An identity's ``View`` says which entities it sees raw and
which operator masks each of the others. Default: every entity masked, with the catalog's
operator. Agents and service accounts (an identity acting for someone) see no raw PHI unless
``masking.agents_see_raw`` says they see what their owner sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from wardgate.core.model import Identity
from wardgate.masking.entities import CATALOG, Entity
from wardgate.masking.operators import (
    AgeOver89,
    DateToYear,
    Keep,
    Null,
    OperatorSpec,
    Partial,
    Pseudonym,
    Redact,
    Zip3,
    operator_from_config,
)
from wardgate.sql.model import SourceColumn

TEXT = "TEXT"  # the label of free text
DEFAULT_SCHEMA = "public"

# "The strictest operator among its inputs": what a column computed from several PHI columns
# gets. Ranked by how much of the value survives.
_STRICTNESS: dict[type, int] = {
    Null: 6, Redact: 5, Pseudonym: 4, Partial: 3, DateToYear: 2, Zip3: 2, AgeOver89: 2, Keep: 0,
}  # fmt: skip


def strictness(operator: OperatorSpec) -> int:
    return _STRICTNESS.get(type(operator), 5)


def strictest(operators: Iterable[OperatorSpec]) -> OperatorSpec:
    return max(operators, key=strictness)


@dataclass(frozen=True)
class Labels:
    """One target's labelled columns."""

    columns: Mapping[SourceColumn, str]
    tables: frozenset[tuple[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        tables = frozenset((c.schema, c.table) for c in self.columns)
        object.__setattr__(self, "tables", tables)

    @classmethod
    def from_config(cls, phi: Mapping[str, str]) -> Labels:
        columns: dict[SourceColumn, str] = {}
        for name, label in phi.items():
            parts = name.split(".")
            schema, table, column = parts if len(parts) == 3 else (DEFAULT_SCHEMA, *parts)
            columns[SourceColumn(schema, table, column)] = label
        return cls(columns)

    def label(self, source: SourceColumn) -> str | None:
        """The source's label; TEXT for an unlabelled column of a labelled table; else None."""
        found = self.columns.get(source)
        if found is not None:
            return found
        return TEXT if (source.schema, source.table) in self.tables else None

    def entities(self) -> frozenset[str]:
        return frozenset(self.columns.values())


@dataclass(frozen=True)
class View:
    """What one identity sees: ``raw`` labels pass unchanged; ``operators`` mask the others."""

    raw: frozenset[str]
    operators: Mapping[str, OperatorSpec]

    def operator(self, label: str) -> OperatorSpec | None:
        """None for a label seen raw (and for TEXT, which is content-scanned)."""
        if label in self.raw or label == TEXT:
            return None
        return self.operators[label]

    def sees_all(self, labels: Iterable[str]) -> bool:
        return all(label in self.raw for label in labels)

    def text_operators(self) -> dict[Entity, OperatorSpec]:
        """For content scans: what each detected entity becomes (Keep where seen raw)."""
        return {
            entity: Keep() if entity.value in self.raw else self.operators[entity.value]
            for entity in Entity
        }


def _operator(spec: str | Mapping[str, object]) -> OperatorSpec:
    if isinstance(spec, str):
        return operator_from_config(spec)
    params = dict(spec)
    name = params.pop("operator")
    assert isinstance(name, str)
    return operator_from_config(name, params)


@dataclass(frozen=True)
class RolePolicy:
    raw: frozenset[str]
    operators: Mapping[str, OperatorSpec]


class Policy:
    """Views per identity, from the ``masking`` section of the configuration."""

    def __init__(
        self,
        operators: Mapping[str, str | Mapping[str, object]],
        roles: Mapping[str, tuple[Iterable[str], Mapping[str, str | Mapping[str, object]]]],
        *,
        agents_see_raw: bool = False,
    ) -> None:
        base: dict[str, OperatorSpec] = {
            e.value: info.default_operator for e, info in CATALOG.items()
        }
        base.update({entity: _operator(spec) for entity, spec in operators.items()})
        self.base = base
        self.roles = {
            name: RolePolicy(frozenset(raw), {e: _operator(s) for e, s in ops.items()})
            for name, (raw, ops) in roles.items()
        }
        self.agents_see_raw = agents_see_raw
        self._views: dict[tuple[tuple[str, ...], bool], View] = {}

    def view(self, identity: Identity | None) -> View:
        roles = tuple(sorted(identity.roles)) if identity is not None else ()
        agent = identity is not None and bool(identity.on_behalf_of)
        key = (roles, agent)
        found = self._views.get(key)
        if found is None:
            found = self._views[key] = self._build(roles, agent)
        return found

    def _build(self, roles: tuple[str, ...], agent: bool) -> View:
        """Each role grants its raw entities and its operators; of several roles naming an
        operator for one entity, the identity gets the mildest (each role alone would see that
        much)."""
        raw: set[str] = set()
        named: dict[str, list[OperatorSpec]] = {}
        for role in roles:
            policy = self.roles.get(role)
            if policy is not None:
                raw |= policy.raw
                for entity, operator in policy.operators.items():
                    named.setdefault(entity, []).append(operator)
        operators = dict(self.base)
        for entity, candidates in named.items():
            operators[entity] = min(candidates, key=strictness)
        if agent and not self.agents_see_raw:
            raw.clear()
        return View(frozenset(raw), operators)

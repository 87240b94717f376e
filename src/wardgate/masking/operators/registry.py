"""Operators by name, for configuration: ``{"operator": "partial", "keep": 4}``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from wardgate.masking.operators.age import AgeOver89
from wardgate.masking.operators.base import Operator
from wardgate.masking.operators.date_year import DateToYear
from wardgate.masking.operators.keep import Keep
from wardgate.masking.operators.null import Null
from wardgate.masking.operators.partial import Partial
from wardgate.masking.operators.pseudonym import Pseudonym
from wardgate.masking.operators.redact import Redact
from wardgate.masking.operators.zip3 import Zip3

OperatorSpec = Redact | Partial | Pseudonym | DateToYear | Zip3 | AgeOver89 | Null | Keep
"""Every operator this package has; each is a frozen dataclass of its parameters."""

OPERATORS: dict[str, type[OperatorSpec]] = {
    cls.name: cls for cls in (Redact, Partial, Pseudonym, DateToYear, Zip3, AgeOver89, Null, Keep)
}


class OperatorConfigError(ValueError):
    pass


def operator_from_config(name: str, params: Mapping[str, object] | None = None) -> OperatorSpec:
    """The operator `name` with `params` checked against its dataclass fields and their types."""
    cls = OPERATORS.get(name)
    if cls is None:
        raise OperatorConfigError(f"unknown masking operator {name!r}; known: {sorted(OPERATORS)}")
    params = dict(params or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise OperatorConfigError(f"operator {name!r} has no parameter(s) {', '.join(unknown)}")
    for field_name, value in params.items():
        expected = {"str": str, "int": int, "bool": bool}.get(str(fields[field_name].type))
        if field_name == "restricted" and isinstance(value, list | tuple | set | frozenset):
            params[field_name] = frozenset(str(v) for v in value)
        elif expected is not None and (
            not isinstance(value, expected) or (expected is int and isinstance(value, bool))
        ):
            raise OperatorConfigError(f"{name}.{field_name} must be a {expected.__name__}")
    try:
        return cls(**params)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise OperatorConfigError(f"{name}: {exc}") from exc


def operator_config(operator: Operator) -> dict[str, object]:
    """The configuration form of an operator: its name and the parameters that differ from the
    defaults (what the audit log records as the masking plan)."""
    assert dataclasses.is_dataclass(operator) and not isinstance(operator, type)
    config: dict[str, object] = {"operator": operator.name}
    for f in dataclasses.fields(operator):
        value = getattr(operator, f.name)
        if value != f.default:
            config[f.name] = sorted(value) if isinstance(value, frozenset) else value
    return config

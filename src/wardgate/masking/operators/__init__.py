"""Operators transform one value; each lives in its own module.

operator     a frozen dataclass of typed parameters with ``compile(family, fmt, key)``, which
             returns the per-cell function for one result column (or None: fall back to NULL)
cell         one non-NULL value in wire bytes; the cell function returns bytes or None (NULL)
registry     operators by name, for configuration (`operator_from_config`)
"""

from wardgate.masking.operators.age import AgeOver89
from wardgate.masking.operators.base import CellFn, Operator
from wardgate.masking.operators.date_year import DateToYear
from wardgate.masking.operators.keep import Keep
from wardgate.masking.operators.null import Null
from wardgate.masking.operators.partial import Partial
from wardgate.masking.operators.pseudonym import Pseudonym
from wardgate.masking.operators.redact import Redact
from wardgate.masking.operators.registry import (
    OPERATORS,
    OperatorConfigError,
    OperatorSpec,
    operator_config,
    operator_from_config,
)
from wardgate.masking.operators.zip3 import RESTRICTED_ZIP3, Zip3

__all__ = [
    "OPERATORS",
    "RESTRICTED_ZIP3",
    "AgeOver89",
    "CellFn",
    "DateToYear",
    "Keep",
    "Null",
    "Operator",
    "OperatorConfigError",
    "OperatorSpec",
    "Partial",
    "Pseudonym",
    "Redact",
    "Zip3",
    "operator_config",
    "operator_from_config",
]

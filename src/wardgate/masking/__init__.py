"""Masking PHI: what counts as an identifier, how to find it, and how to transform it.

entity         one of the HIPAA Safe Harbor identifiers (entities.py), with a default operator
operator       a transformation with typed parameters (operators/): redact, partial, pseudonym,
               date_to_year, zip3, age_over_89, null, keep; each yields values valid for the
               column's PostgreSQL type in text and binary format, or falls back to NULL
family         how masking sees a PostgreSQL type (pgtypes.py)
column masker  an operator compiled for one result column (column.py); called once per cell
detector       finds spans of an entity in free text (detectors/)
text masker    replaces detected spans with their entity's operator (text.py)
token          the reversible pseudonym of a stored text value (tokens.py), which a role may
               send back to look the row up by (lookups.py decodes it into the statement)

Nothing here does I/O or imports a protocol: the relay calls it with wire bytes.
"""

from wardgate.masking.column import ColumnMasker, column_masker, mask_value
from wardgate.masking.detectors import MrnFormat, Scanner, ScannerConfig, Span, scan
from wardgate.masking.entities import CATALOG, Entity, EntityInfo, default_operator
from wardgate.masking.operators import (
    OPERATORS,
    AgeOver89,
    DateToYear,
    Keep,
    Null,
    Operator,
    OperatorSpec,
    Partial,
    Pseudonym,
    Redact,
    Zip3,
    operator_config,
    operator_from_config,
)
from wardgate.masking.pgtypes import BINARY_FORMAT, TEXT_FORMAT, Family, Format, family_of
from wardgate.masking.text import ContentScan, TextMasker

__all__ = [
    "BINARY_FORMAT",
    "CATALOG",
    "OPERATORS",
    "TEXT_FORMAT",
    "AgeOver89",
    "ColumnMasker",
    "ContentScan",
    "DateToYear",
    "Entity",
    "EntityInfo",
    "Family",
    "Format",
    "Keep",
    "MrnFormat",
    "Null",
    "Operator",
    "OperatorSpec",
    "Partial",
    "Pseudonym",
    "Redact",
    "Scanner",
    "ScannerConfig",
    "Span",
    "TextMasker",
    "Zip3",
    "column_masker",
    "default_operator",
    "family_of",
    "mask_value",
    "operator_config",
    "operator_from_config",
    "scan",
]

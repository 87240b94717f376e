"""Checks that turn a pattern match into a finding: issuing rules and check digits."""

from __future__ import annotations


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment cards, IMEIs and, with a prefix, NPIs."""
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """SSA never issues area 000, 666 or 900-999, group 00 or serial 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def npi_ok(npi: str) -> bool:
    """A National Provider Identifier: ten digits starting 1 or 2 whose check digit is the Luhn
    digit of the number prefixed with 80840 (the US health industry issuer number)."""
    return len(npi) == 10 and npi.isdigit() and npi[0] in "12" and luhn_ok("80840" + npi)


def nanp_ok(area: str, exchange: str) -> bool:
    """North American numbering: area codes and exchanges start 2-9; area N11 is a service code
    and 9X is reserved for expansion."""
    return area[0] >= "2" and exchange[0] >= "2" and area[1:] != "11" and area[1] != "9"


_DEA_REGISTRANTS = frozenset("ABCDEFGHJKLMPRSTUX")


def dea_ok(dea: str) -> bool:
    """A DEA registration number: a registrant-type letter, a letter (the registrant's initial,
    or 9 for some business activities) and seven digits; (d1+d3+d5) + 2*(d2+d4+d6) ends in
    d7."""
    if len(dea) != 9 or dea[0] not in _DEA_REGISTRANTS or not dea[2:].isdigit():
        return False
    if not (dea[1].isalpha() or dea[1] == "9"):
        return False
    d = [int(c) for c in dea[2:]]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


_MBI_ALPHA = "ACDEFGHJKMNPQRTUVWXY"  # A-Z without S, L, O, I, B, Z
_MBI_POSITIONS = (
    "123456789", _MBI_ALPHA, _MBI_ALPHA + "0123456789", "0123456789", _MBI_ALPHA,
    _MBI_ALPHA + "0123456789", "0123456789", _MBI_ALPHA, _MBI_ALPHA, "0123456789", "0123456789",
)  # fmt: skip


def mbi_ok(mbi: str) -> bool:
    """A Medicare Beneficiary Identifier: eleven characters, each position from its own set
    (CMS's format: no check digit, but letters that look like digits are never used). Dashes
    as written on the card (1EG4-TE5-MK73) are allowed."""
    if len(mbi) == 13 and mbi[4] == "-" and mbi[8] == "-":
        mbi = mbi[:4] + mbi[5:8] + mbi[9:]
    if len(mbi) != 11:
        return False
    return all(c in allowed for c, allowed in zip(mbi, _MBI_POSITIONS, strict=True))


_VIN_VALUES = dict(
    zip("ABCDEFGHJKLMNPRSTUVWXYZ", (1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6,
                                    7, 8, 9), strict=True),
    **{str(i): i for i in range(10)},
)  # fmt: skip
_VIN_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def vin_ok(vin: str) -> bool:
    """A 17-character vehicle identification number whose ninth character is its check digit
    (North American VINs; mod 11, X for 10)."""
    if len(vin) != 17 or any(c not in _VIN_VALUES for c in vin):
        return False
    total = sum(_VIN_VALUES[c] * w for c, w in zip(vin, _VIN_WEIGHTS, strict=True)) % 11
    return vin[8] == ("X" if total == 10 else str(total))

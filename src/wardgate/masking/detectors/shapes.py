"""Shapes of numbers: a candidate with every digit replaced by 9 is looked up in one table
instead of being tried against a dozen patterns ("(999) 999-9999" is a phone)."""

from __future__ import annotations

import itertools

DIGITS_TO_9 = str.maketrans("0123456789", "9999999999")

SSN = "ssn"
SSN_SPACED = "ssn_spaced"
SSN_BARE = "ssn_bare"
PHONE = "phone"
PHONE_BARE = "phone_bare"  # ten digits, no separator: also an NPI's shape
DATE_ISO = "date_iso"
DATE_US = "date_us"
MONTH_DAY = "month_day"
IPV4 = "ipv4"
CARD = "card"


def _table() -> dict[str, str]:
    table: dict[str, str] = {"999-99-9999": SSN, "999 99 9999": SSN_SPACED, "999999999": SSN_BARE}
    for prefix, area, sep1, sep2 in itertools.product(
        ("", "+9 ", "+9-", "+9.", "+9", "9-", "9 ", "9."),
        ("999", "(999)", "(999) "),
        ("", "-", ".", " "),
        ("", "-", ".", " "),
    ):
        if area.startswith("(") and sep1:
            continue
        shape = f"{prefix}{area}{sep1}999{sep2}9999"
        table.setdefault(shape, PHONE)
    table["9999999999"] = PHONE_BARE
    for year, month, day in itertools.product(("99", "9999"), ("9", "99"), ("9", "99")):
        for sep in "/.-":
            table[f"{month}{sep}{day}{sep}{year}"] = DATE_US
        if len(year) == 4:
            table[f"{year}-{month}-{day}"] = DATE_ISO
        table.setdefault(f"{month}/{day}", MONTH_DAY)
    for parts in itertools.product(("9", "99", "999"), repeat=4):
        table[".".join(parts)] = IPV4
    for length in range(13, 20):
        table.setdefault("9" * length, CARD)
    for groups in ((4, 4, 4, 4), (4, 6, 5), (4, 4, 4, 4, 3), (4, 4, 4, 1)):
        for sep in " -":
            table[sep.join("9" * g for g in groups)] = CARD
    return table


SHAPES = _table()

"""The identifiers HIPAA's Safe Harbor method (45 CFR 164.514(b)(2)(i)(A)-(R)) says to remove,
as entities with short stable names. Two identifiers are split because they are masked
differently: geographic units into GEO (street, city, county) and ZIP, and dates into DATE and
AGE_OVER_89. The names are part of the configuration and the audit log: never rename one."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from wardgate.masking.operators import (
    AgeOver89,
    DateToYear,
    Null,
    OperatorSpec,
    Partial,
    Pseudonym,
    Redact,
    Zip3,
)


class Entity(enum.StrEnum):
    NAME = "NAME"
    GEO = "GEO"
    ZIP = "ZIP"
    DATE = "DATE"
    AGE_OVER_89 = "AGE_OVER_89"
    PHONE = "PHONE"
    FAX = "FAX"
    EMAIL = "EMAIL"
    SSN = "SSN"
    MRN = "MRN"
    HEALTH_PLAN_ID = "HEALTH_PLAN_ID"
    ACCOUNT = "ACCOUNT"
    LICENSE = "LICENSE"
    VEHICLE_ID = "VEHICLE_ID"
    DEVICE_ID = "DEVICE_ID"
    URL = "URL"
    IP = "IP"
    BIOMETRIC = "BIOMETRIC"
    PHOTO = "PHOTO"
    OTHER_ID = "OTHER_ID"


@dataclass(frozen=True)
class EntityInfo:
    entity: Entity
    paragraph: str  # the letter of 45 CFR 164.514(b)(2)(i)
    description: str
    default_operator: OperatorSpec


def _tag(entity: str) -> Redact:
    return Redact(f"[{entity}]")


CATALOG: dict[Entity, EntityInfo] = {
    info.entity: info
    for info in (
        EntityInfo(Entity.NAME, "A", "names of the individual, relatives, employers or household "
                   "members", _tag("NAME")),
        EntityInfo(Entity.GEO, "B", "geographic subdivisions smaller than a state: street "
                   "address, city, county, precinct", _tag("GEO")),
        EntityInfo(Entity.ZIP, "B", "ZIP code; the first three digits may stay unless their "
                   "area holds 20,000 people or fewer", Zip3()),
        EntityInfo(Entity.DATE, "C", "every element of a date (except the year) directly related "
                   "to the individual: birth, admission, discharge, death", DateToYear()),
        EntityInfo(Entity.AGE_OVER_89, "C", "ages over 89 and dates that indicate them; "
                   "aggregated into 90 or older", AgeOver89()),
        EntityInfo(Entity.PHONE, "D", "telephone numbers", _tag("PHONE")),
        EntityInfo(Entity.FAX, "E", "fax numbers", _tag("FAX")),
        EntityInfo(Entity.EMAIL, "F", "electronic mail addresses", _tag("EMAIL")),
        EntityInfo(Entity.SSN, "G", "social security numbers", _tag("SSN")),
        EntityInfo(Entity.MRN, "H", "medical record numbers", Pseudonym(prefix="MRN-")),
        EntityInfo(Entity.HEALTH_PLAN_ID, "I", "health plan beneficiary numbers",
                   Pseudonym(prefix="HP-")),
        EntityInfo(Entity.ACCOUNT, "J", "account numbers, including payment card numbers",
                   Partial()),
        EntityInfo(Entity.LICENSE, "K", "certificate and license numbers (driver's licence, DEA, "
                   "professional licences)", _tag("LICENSE")),
        EntityInfo(Entity.VEHICLE_ID, "L", "vehicle identifiers and serial numbers, including "
                   "licence plates and VINs", _tag("VEHICLE_ID")),
        EntityInfo(Entity.DEVICE_ID, "M", "device identifiers and serial numbers (UDI, IMEI)",
                   _tag("DEVICE_ID")),
        EntityInfo(Entity.URL, "N", "web universal resource locators", _tag("URL")),
        EntityInfo(Entity.IP, "O", "internet protocol addresses", _tag("IP")),
        EntityInfo(Entity.BIOMETRIC, "P", "biometric identifiers, including finger and voice "
                   "prints", Null()),
        EntityInfo(Entity.PHOTO, "Q", "full-face photographs and comparable images", Null()),
        EntityInfo(Entity.OTHER_ID, "R", "any other unique identifying number, characteristic or "
                   "code (e.g. a provider NPI tied to the record)", Pseudonym(prefix="ID-")),
    )
}  # fmt: skip


def default_operator(entity: Entity) -> OperatorSpec:
    return CATALOG[entity].default_operator

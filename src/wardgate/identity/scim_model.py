"""The SCIM User resource (RFC 7643) as wardgate keeps and shows it.

The stored resource has attribute names in their canonical case, values type-checked, and
nothing but the core User attributes and the enterprise extension: ``password`` (Okta sends one)
and ``groups`` (read-only) are dropped, and so are attributes this server does not know, as RFC
7644 allows. Identity providers are lenient with types: Entra ID sends booleans as the strings
"True" and "False", which are taken.

A user stands for the human whose subject is its ``externalId`` (the provider's stable id, which
is also the OIDC subject when the provider is set up as docs/identity.md says), else its
``userName``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from wardgate.identity.state import ScimUser

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MAX_NAME = 256  # userName and externalId: they become the human's subject
MAX_TEXT = 2048

SINGLE = ("userName", "externalId", "displayName", "nickName", "profileUrl", "title", "userType",
          "preferredLanguage", "locale", "timezone")  # fmt: skip
MULTI = ("emails", "phoneNumbers", "ims", "photos", "addresses", "roles", "entitlements",
         "x509Certificates")  # fmt: skip
NAME_PARTS = ("formatted", "familyName", "givenName", "middleName", "honorificPrefix",
              "honorificSuffix")  # fmt: skip
VALUE_PARTS = ("value", "display", "type", "primary", "$ref", "formatted", "streetAddress",
               "locality", "region", "postalCode", "country")  # fmt: skip
ENTERPRISE_PARTS = ("employeeNumber", "costCenter", "organization", "division", "department",
                    "manager")  # fmt: skip
MANAGER_PARTS = ("value", "displayName", "$ref")
IGNORED = frozenset({"id", "meta", "schemas", "groups", "password"})
CANON = {n.lower(): n for n in (*SINGLE, *MULTI, "name", "active")}
CORE_PREFIX = USER.lower() + ":"
ENTERPRISE_PREFIX = ENTERPRISE.lower() + ":"
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ScimError(Exception):
    """A request refused with a SCIM error (RFC 7644 3.12)."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type


def invalid(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidValue")


def canon(name: str, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if n.lower() == name.lower()), None)


def boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid(f"{name} must be a boolean")


def string_value(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise invalid(f"{name} must be a string")
    limit = MAX_NAME if name in ("userName", "externalId") else MAX_TEXT
    if len(value) > limit:
        raise invalid(f"{name} exceeds {limit} characters")
    if name in ("userName", "externalId") and (not value.strip() or _CONTROL.search(value)):
        raise invalid(f"{name} must be printable and not empty")
    return value


def complex_value(name: str, value: Any, parts: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"{name} must be an object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        part = canon(key, parts)
        if part is None or item is None:
            continue
        if part == "primary":
            out[part] = boolean(f"{name}.{part}", item)
        else:
            out[part] = string_value(part, item)
    return out


def multi_value(name: str, value: Any) -> list[dict[str, Any]]:
    """A multi-valued attribute: a list (or one) of objects; a bare string is its ``value``."""
    items = value if isinstance(value, list) else [value]
    out = [complex_value(name, _wrap(i), VALUE_PARTS) for i in items]
    return [i for i in out if i]


def _wrap(value: Any) -> Any:
    return {"value": value} if isinstance(value, str) else value


def enterprise_part(name: str, value: Any) -> Any:
    if name == "manager":
        return complex_value(name, _wrap(value), MANAGER_PARTS)
    return string_value(name, value)


def subject_of(resource: Mapping[str, Any]) -> str:
    """The human this user stands for: ``externalId`` (the IdP's stable id, the OIDC subject),
    else ``userName``."""
    external = resource.get("externalId")
    return external if isinstance(external, str) and external else str(resource["userName"])


def email_of(resource: Mapping[str, Any]) -> str | None:
    emails = [e for e in resource.get("emails", []) if isinstance(e.get("value"), str)]
    primary = next((e for e in emails if e.get("primary") is True), emails[0] if emails else None)
    if primary is not None:
        return str(primary["value"])
    user_name = str(resource["userName"])
    return user_name if _ADDRESS.match(user_name) else None


def roles_of(
    resource: Mapping[str, Any], mapping: Mapping[str, tuple[str, ...]]
) -> tuple[str, ...] | None:
    """wardgate roles of the user's ``roles[].value``; None (leave the human's roles as they
    are) without a mapping or when the provider sends no ``roles``."""
    if not mapping or "roles" not in resource:
        return None
    found: list[str] = []
    for item in resource["roles"]:
        for role in mapping.get(str(item.get("value", "")), ()):
            if role not in found:
                found.append(role)
    return tuple(found)


def _time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def version(user: ScimUser) -> str:
    state = json.dumps([user.resource, user.human_active, user.modified], sort_keys=True)
    return f'W/"{hashlib.sha256(state.encode()).hexdigest()[:20]}"'


def render(user: ScimUser, base: str) -> dict[str, Any]:
    """The user as the provider sees it; ``active`` is false while its human is revoked."""
    extension = [ENTERPRISE] if ENTERPRISE in user.resource else []
    body: dict[str, Any] = {"schemas": [USER, *extension], "id": user.id}
    body.update(user.resource)
    body["active"] = user.resource.get("active") is not False and user.human_active is not False
    body["meta"] = {
        "resourceType": "User",
        "created": _time(user.created),
        "lastModified": _time(user.modified),
        "location": f"{base}/Users/{user.id}",
        "version": version(user),
    }
    return body

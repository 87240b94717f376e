"""The SCIM discovery documents (RFC 7644 section 4): what this server supports and the User
schema it keeps, built from the attribute tables of ``scim_model``."""

from __future__ import annotations

from typing import Any

from wardgate.identity.scim_model import (
    ENTERPRISE,
    ENTERPRISE_PARTS,
    MANAGER_PARTS,
    MULTI,
    NAME_PARTS,
    SINGLE,
    USER,
    VALUE_PARTS,
)

_LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
_RESOURCE_TYPE = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
_CONFIG = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"


def _attr(name: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "multiValued": False,
        "required": False,
        "caseExact": name in ("externalId", "id"),
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
        **extra,
    }


def _user_attributes() -> list[dict[str, Any]]:
    out = [_attr(n) for n in SINGLE]
    out[0].update(required=True, uniqueness="server")  # userName
    out.append(_attr("active", "boolean"))
    out.append(_attr("name", "complex", subAttributes=[_attr(n) for n in NAME_PARTS]))
    for name in MULTI:
        parts = [_attr(n, "boolean" if n == "primary" else "string") for n in VALUE_PARTS]
        out.append(_attr(name, "complex", multiValued=True, subAttributes=parts))
    return out


def _enterprise_attributes() -> list[dict[str, Any]]:
    out = [_attr(n) for n in ENTERPRISE_PARTS if n != "manager"]
    out.append(_attr("manager", "complex", subAttributes=[_attr(n) for n in MANAGER_PARTS]))
    return out


def _listing(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemas": [_LIST], "totalResults": len(resources), "startIndex": 1,
            "itemsPerPage": len(resources), "Resources": resources}  # fmt: skip


def service_provider_config(base: str) -> dict[str, Any]:
    return {
        "schemas": [_CONFIG],
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": 200},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": True},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "Authorization: Bearer with the token of identity.scim",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }


def resource_types(base: str) -> dict[str, Any]:
    user = {
        "schemas": [_RESOURCE_TYPE],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "schema": USER,
        "schemaExtensions": [{"schema": ENTERPRISE, "required": False}],
        "meta": {"resourceType": "ResourceType", "location": f"{base}/ResourceTypes/User"},
    }
    return _listing([user])


def schemas(base: str) -> dict[str, Any]:
    documents = [
        (USER, "User", _user_attributes()),
        (ENTERPRISE, "EnterpriseUser", _enterprise_attributes()),
    ]
    return _listing(
        [
            {
                "schemas": [_SCHEMA],
                "id": urn,
                "name": name,
                "attributes": attributes,
                "meta": {"resourceType": "Schema", "location": f"{base}/Schemas/{urn}"},
            }
            for urn, name, attributes in documents
        ]
    )

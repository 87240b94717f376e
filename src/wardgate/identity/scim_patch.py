"""Changing a SCIM user: PatchOp (RFC 7644 3.5.2), and a POST or PUT body, which is a replace
of every attribute it carries.

``patch`` applies the operations to a copy, all or nothing: ``op`` in any case, with or without
``path``, value paths such as ``emails[type eq "work"].value`` (creating the value when none
matches an ``eq`` filter, as Entra ID expects), removal of listed values (``{"op": "remove",
"path": "roles", "value": [{"value": "x"}]}``, as Entra ID sends them). Paths to attributes this
server does not keep are ignored.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from wardgate.identity.scim_filter import Compare, FilterError, Node, matches
from wardgate.identity.scim_filter import parse as parse_filter
from wardgate.identity.scim_model import (
    CANON,
    CORE_PREFIX,
    ENTERPRISE,
    ENTERPRISE_PARTS,
    ENTERPRISE_PREFIX,
    IGNORED,
    MULTI,
    NAME_PARTS,
    PATCH_OP,
    USER,
    VALUE_PARTS,
    ScimError,
    boolean,
    canon,
    complex_value,
    enterprise_part,
    invalid,
    multi_value,
    string_value,
)


@dataclass(frozen=True)
class Path:
    """Where an operation applies: ``attr`` (canonical; for the extension one of its parts, or
    "" for all of it), a sub-attribute, a value filter."""

    attr: str
    sub: str | None = None
    where: Node | None = None
    enterprise: bool = False


def parse_path(text: str) -> Path | None:
    """None for an attribute this server does not keep."""
    lowered = text.lower()
    if lowered == ENTERPRISE.lower():
        return Path("", enterprise=True)
    if lowered.startswith(ENTERPRISE_PREFIX):
        part = text[len(ENTERPRISE_PREFIX) :]
        name = canon(part.split(".")[0], ENTERPRISE_PARTS)
        return None if name is None else Path(name, enterprise=True)
    if lowered.startswith(CORE_PREFIX):
        text = text[len(CORE_PREFIX) :]
    where = None
    if "[" in text:
        head, _, rest = text.partition("[")
        inner, bracket, tail = rest.rpartition("]")
        if not bracket or (tail and not tail.startswith(".")):
            raise ScimError(400, f"bad path {text!r}", "invalidPath")
        try:
            where = parse_filter(inner)
        except FilterError as exc:
            raise ScimError(400, f"bad path {text!r}: {exc}", "invalidPath") from exc
        text = head + tail
    attr, _, sub = text.partition(".")
    name = CANON.get(attr.lower())
    if name is None or attr.lower() in IGNORED:
        return None
    if name == "name":
        sub_name = canon(sub, NAME_PARTS) if sub else None
    elif name in MULTI:
        sub_name = canon(sub, VALUE_PARTS) if sub else None
    else:
        sub_name = None
    if (sub and sub_name is None) or (where is not None and name not in MULTI):
        raise ScimError(400, f"bad path {text!r}", "invalidPath")
    return Path(name, sub_name, where)


def _assign(resource: dict[str, Any], op: str, path: Path, value: Any) -> None:
    if path.enterprise:
        ext: dict[str, Any] = resource.setdefault(ENTERPRISE, {})
        if not path.attr:
            if op == "remove":
                ext.clear()
            elif not isinstance(value, dict):
                raise invalid(f"{ENTERPRISE} must be an object")
            else:
                for key, item in value.items():
                    part = parse_path(f"{ENTERPRISE}:{key}")
                    if part is not None:
                        _assign(resource, op, part, item)
        elif op == "remove" or value is None:
            ext.pop(path.attr, None)
        else:
            ext[path.attr] = enterprise_part(path.attr, value)
        if not ext:
            resource.pop(ENTERPRISE, None)
        return
    name = path.attr
    if name in MULTI:
        _assign_values(resource, op, path, value)
    elif name == "name":
        parts: dict[str, Any] = resource.setdefault("name", {})
        if op == "remove" and path.sub is None:
            parts.clear()
        elif path.sub is not None:
            if op == "remove" or value is None:
                parts.pop(path.sub, None)
            else:
                parts[path.sub] = string_value(path.sub, value)
        elif value is not None:
            parts.update(complex_value("name", value, NAME_PARTS))
        if not parts:
            resource.pop("name")
    elif name == "active":
        if op == "remove" or value is None:
            raise invalid("active cannot be removed")
        resource["active"] = boolean("active", value)
    elif op == "remove" or value is None:
        resource.pop(name, None)
    else:
        resource[name] = string_value(name, value)


def _seed(where: Node) -> dict[str, Any] | None:
    """The new value an ``eq`` filter describes (``type eq "work"`` → ``{"type": "work"}``)."""
    if isinstance(where, Compare) and where.op == "eq" and isinstance(where.value, str | bool):
        part = canon(where.path, VALUE_PARTS)
        return None if part is None else {part: where.value}
    return None


def _assign_values(resource: dict[str, Any], op: str, path: Path, value: Any) -> None:
    name = path.attr
    items: list[dict[str, Any]] = resource.get(name, [])
    sub = path.sub

    def part(v: Any) -> Any:
        where = f"{name}.{sub}"
        return boolean(where, v) if sub == "primary" else string_value(where, v)

    if path.where is None and sub is None:
        if op == "remove" and value is not None:
            gone = {i.get("value") for i in multi_value(name, value)}
            items = [i for i in items if i.get("value") not in gone]
        elif op == "remove":
            items = []
        elif op == "add":
            items = items + [i for i in multi_value(name, value) if i not in items]
        else:
            items = multi_value(name, value)
    elif path.where is None:
        assert sub is not None
        if op == "remove":
            for item in items:
                item.pop(sub, None)
        elif not items:
            items = [{sub: part(value)}]
        else:
            for item in items:
                item[sub] = part(value)
    else:
        hits = [i for i in items if matches(path.where, i)]
        if op == "remove":
            for item in hits:
                if sub is not None:
                    item.pop(sub, None)
            if sub is None:
                items = [i for i in items if not any(i is h for h in hits)]
        else:
            if not hits:
                seed = _seed(path.where)
                if seed is None:
                    raise ScimError(400, f"no value of {name} matches the path", "noTarget")
                items.append(seed)
                hits = [seed]
            for item in hits:
                if sub is not None:
                    item[sub] = part(value)
                else:
                    new = multi_value(name, value)
                    item.update(new[0] if new else {})
    items = [i for i in items if i]
    primaries = [i for i in items if i.get("primary") is True]
    for extra in primaries[:-1]:  # at most one primary value (RFC 7643 2.4); the last one set
        extra["primary"] = False
    if items:
        resource[name] = items
    else:
        resource.pop(name, None)


def _require(resource: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(resource.get("userName"), str):
        raise invalid("userName is required")
    resource.setdefault("active", True)
    return resource


def _schemas(body: dict[str, Any], expected: str) -> None:
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or expected.lower() not in (
        s.lower() for s in schemas if isinstance(s, str)
    ):
        raise invalid(f"schemas must include {expected}")


def normalize(body: Any, keep_active: bool | None = None) -> dict[str, Any]:
    """The stored resource for a POST or PUT body; ``keep_active`` when the body has none."""
    if not isinstance(body, dict):
        raise ScimError(400, "the body must be a JSON object", "invalidSyntax")
    _schemas(body, USER)
    resource: dict[str, Any] = {}
    for key, value in body.items():
        if value is None or key.lower() in IGNORED:
            continue
        path = parse_path(key)
        if path is not None and path.sub is None and path.where is None:
            _assign(resource, "replace", path, value)
    if "active" not in resource and keep_active is not None:
        resource["active"] = keep_active
    return _require(resource)


def patch(resource: dict[str, Any], body: Any) -> dict[str, Any]:
    """``resource`` with a PatchOp body applied (a new object; all or nothing)."""
    if not isinstance(body, dict):
        raise ScimError(400, "the body must be a JSON object", "invalidSyntax")
    _schemas(body, PATCH_OP)
    operations = body.get("Operations", body.get("operations"))
    if not isinstance(operations, list) or not operations:
        raise invalid("Operations must be a list of operations")
    result = copy.deepcopy(resource)
    for operation in operations:
        if not isinstance(operation, dict):
            raise invalid("each operation must be an object")
        op = operation.get("op")
        if not isinstance(op, str) or op.lower() not in ("add", "replace", "remove"):
            raise invalid("op must be add, replace or remove")
        op = op.lower()
        path_text, value = operation.get("path"), operation.get("value")
        if path_text is None:
            if not isinstance(value, dict):
                raise ScimError(400, "an operation without a path needs an object", "noTarget")
            for key, item in value.items():
                path = parse_path(key)
                if path is not None:
                    _assign(result, op, path, item)
            continue
        if not isinstance(path_text, str):
            raise ScimError(400, "path must be a string", "invalidPath")
        if op != "remove" and value is None:
            raise invalid(f"{op} needs a value")
        path = parse_path(path_text)
        if path is not None:
            _assign(result, op, path, value)
    return _require(result)

"""SCIM filters (RFC 7644 section 3.4.2.2), parsed and evaluated against a user resource.

The grammar taken: ``attrPath op value``, ``attrPath pr``, ``and``, ``or``, ``not (...)``,
parentheses, and value paths such as ``emails[type eq "work"]``; operators ``eq ne co sw ew gt
ge lt le``. Attribute names are case-insensitive. String comparison ignores case except for the
case-exact attributes (``id``, ``externalId``). Anything else is ``FilterError`` (400
invalidFilter). Bounded: a filter is at most ``MAX_LENGTH`` characters and ``MAX_DEPTH`` deep.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 2000
MAX_DEPTH = 16
CORE = "urn:ietf:params:scim:schemas:core:2.0:user:"
CASE_EXACT = frozenset({"id", "externalid"})
OPERATORS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<punct>[()\[\]])
    | (?P<word>[A-Za-z0-9_:.$+\-]+)
    )""",
    re.VERBOSE,
)


class FilterError(ValueError):
    """Not a filter this server understands."""


@dataclass(frozen=True)
class Compare:
    path: str  # lower case, dotted: "emails.value"
    op: str
    value: str | bool | float | None


@dataclass(frozen=True)
class Present:
    path: str


@dataclass(frozen=True)
class Logical:
    op: str  # "and" or "or"
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    node: Node


@dataclass(frozen=True)
class ValuePath:
    path: str  # the multi-valued attribute: "emails"
    node: Node  # evaluated against each of its values


Node = Compare | Present | Logical | Not | ValuePath


def _tokens(text: str) -> Iterator[tuple[str, str]]:
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            return
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise FilterError(f"unexpected text at {pos}: {text[pos : pos + 20]!r}")
        pos = match.end()
        kind = match.lastgroup
        assert kind is not None
        yield kind, match.group(kind)


def attribute(path: str) -> str:
    """``path`` lower-cased, without the core schema's URN."""
    lowered = path.lower()
    return lowered[len(CORE) :] if lowered.startswith(CORE) else lowered


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = list(_tokens(text))
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterError("the filter ends too early")
        self.pos += 1
        return token

    def expect(self, punct: str) -> None:
        if self.take() != ("punct", punct):
            raise FilterError(f"expected {punct!r}")

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].lower() == word:
            self.pos += 1
            return True
        return False

    def expression(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise FilterError("the filter is nested too deeply")
        node = self.conjunction(depth)
        while self.keyword("or"):
            node = Logical("or", node, self.conjunction(depth))
        return node

    def conjunction(self, depth: int) -> Node:
        node = self.factor(depth)
        while self.keyword("and"):
            node = Logical("and", node, self.factor(depth))
        return node

    def factor(self, depth: int) -> Node:
        if self.keyword("not"):
            self.expect("(")
            inner = self.expression(depth + 1)
            self.expect(")")
            return Not(inner)
        kind, text = self.take()
        if (kind, text) == ("punct", "("):
            inner = self.expression(depth + 1)
            self.expect(")")
            return inner
        if kind != "word":
            raise FilterError(f"expected an attribute, not {text!r}")
        path = attribute(text)
        if self.peek() == ("punct", "["):
            self.take()
            inner = self.expression(depth + 1)
            self.expect("]")
            return ValuePath(path, inner)
        op = self.take()[1].lower()
        if op == "pr":
            return Present(path)
        if op not in OPERATORS:
            raise FilterError(f"unknown operator {op!r}")
        return Compare(path, op, self.value())

    def value(self) -> str | bool | float | None:
        kind, text = self.take()
        if kind == "string":
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise FilterError(f"bad string {text}") from exc
            assert isinstance(value, str)
            return value
        lowered = text.lower()
        if kind == "word" and lowered in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[lowered]
        try:
            return float(text)
        except ValueError:
            raise FilterError(f"expected a value, not {text!r}") from None


def parse(text: str) -> Node:
    if len(text) > MAX_LENGTH:
        raise FilterError(f"the filter exceeds {MAX_LENGTH} characters")
    parser = _Parser(text)
    node = parser.expression(0)
    rest = parser.peek()
    if rest is not None:
        raise FilterError(f"unexpected {rest[1]!r}")
    return node


def _lookup(resource: dict[str, Any], name: str) -> Any:
    for key, value in resource.items():
        if key.lower() == name:
            return value
    return None


def values(resource: dict[str, Any], path: str) -> list[Any]:
    """Every value at a dotted path; a multi-valued attribute contributes each of its values."""
    found: list[Any] = [resource]
    for name in path.split("."):
        step: list[Any] = []
        for item in found:
            value = _lookup(item, name) if isinstance(item, dict) else None
            if isinstance(value, list):
                step.extend(value)
            elif value is not None:
                step.append(value)
        found = step
    return found


def _compare(actual: Any, op: str, expected: Any, exact: bool) -> bool:
    if op in ("eq", "ne"):
        if isinstance(actual, str) and isinstance(expected, str) and not exact:
            same = actual.lower() == expected.lower()
        elif isinstance(actual, bool) or isinstance(expected, bool):
            same = actual is expected
        else:
            same = actual == expected
        return same if op == "eq" else not same
    if not isinstance(actual, str) or not isinstance(expected, str):
        number = isinstance(actual, int | float) and not isinstance(actual, bool)
        if number and isinstance(expected, float) and op[0] in "gl":
            return bool({"gt": actual > expected, "ge": actual >= expected,
                         "lt": actual < expected, "le": actual <= expected}[op])  # fmt: skip
        return False
    if not exact:
        actual, expected = actual.lower(), expected.lower()
    return bool(
        {
            "co": expected in actual,
            "sw": actual.startswith(expected),
            "ew": actual.endswith(expected),
            "gt": actual > expected,
            "ge": actual >= expected,
            "lt": actual < expected,
            "le": actual <= expected,
        }[op]
    )


def matches(node: Node, resource: dict[str, Any]) -> bool:
    if isinstance(node, Logical):
        if node.op == "and":
            return matches(node.left, resource) and matches(node.right, resource)
        return matches(node.left, resource) or matches(node.right, resource)
    if isinstance(node, Not):
        return not matches(node.node, resource)
    if isinstance(node, ValuePath):
        items = values(resource, node.path)
        return any(isinstance(i, dict) and matches(node.node, i) for i in items)
    found = [v for v in values(resource, node.path) if not isinstance(v, dict | list)]
    if isinstance(node, Present):
        return any(v != "" for v in found)
    exact = node.path in CASE_EXACT
    if node.op == "ne":
        return all(_compare(v, "ne", node.value, exact) for v in found)
    return any(_compare(v, node.op, node.value, exact) for v in found)

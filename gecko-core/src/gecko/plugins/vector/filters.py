"""The portable metadata filter language, parsed once into a small tree every backend translates.

A filter is a dict, in the style of MongoDB and Chroma::

    {"lang": "zh"}                                   # equality
    {"year": {"$gte": 2020, "$lt": 2025}}           # several operators on one field: all must hold
    {"tags": {"$contains": "rag"}}                   # a list-of-strings field holds the string
    {"lang": {"$in": ["zh", "en"]}}
    {"$or": [{"lang": "zh"}, {"year": {"$lt": 2000}}]}
    {"$not": {"lang": "en"}}
    {"lang": "zh", "year": 2024}                     # several keys: all must hold

Operators: `$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte`, `$in`, `$nin`, `$contains`,
`$not_contains`; combinators `$and`, `$or` (non-empty lists) and `$not`.

Semantics, the same on every backend:
- A record lacking the field never matches `$eq`, `$in`, `$contains` or a range, and always
  matches `$ne`, `$nin` and `$not_contains`.
- `$not` flips each operator beneath it (`$eq`↔`$ne`, `$in`↔`$nin`, `$contains`↔`$not_contains`,
  `$gt`↔`$lte`, `$gte`↔`$lt`) and swaps `$and`/`$or`; so `{"$not": {"year": {"$gt": 2020}}}`
  means `year <= 2020` and, like every range, does not match records without `year`.
- Types are strict: `True` never equals `1`, and a string never equals a number; int and float
  compare as numbers. Ranges take numbers only. `$in`/`$nin` take a non-empty list of one kind
  (strings, numbers or booleans).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Literal, TypeAlias

from gecko.errors import InvalidFilterError

__all__ = (
    "Scalar",
    "MetadataValue",
    "Operator",
    "Condition",
    "AllOf",
    "AnyOf",
    "Filter",
    "parse_filter",
    "matches",
)

Scalar: TypeAlias = str | int | float | bool
MetadataValue: TypeAlias = str | int | float | bool | list[str]
Operator = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "not_contains"]

_NEGATED: dict[Operator, Operator] = {
    "eq": "ne",
    "ne": "eq",
    "gt": "lte",
    "lte": "gt",
    "gte": "lt",
    "lt": "gte",
    "in": "nin",
    "nin": "in",
    "contains": "not_contains",
    "not_contains": "contains",
}
_RANGES = frozenset({"gt", "gte", "lt", "lte"})


@dataclass(frozen=True)
class Condition:
    """One test on one metadata field; `value` is a tuple for `in` and `nin`."""

    field: str
    op: Operator
    value: Scalar | tuple[Scalar, ...]
    members: frozenset[tuple[str, Scalar]] = dataclass_field(default=frozenset(), init=False, repr=False, compare=False)
    """`in`/`nin`: the values keyed by kind, so a record is tested in one set lookup, not one per value."""

    def __post_init__(self) -> None:
        if isinstance(self.value, tuple):
            object.__setattr__(self, "members", frozenset((_kind(item), item) for item in self.value))


@dataclass(frozen=True)
class AllOf:
    """Every child matches."""

    children: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    """At least one child matches."""

    children: tuple[Filter, ...]


Filter: TypeAlias = Condition | AllOf | AnyOf


def parse_filter(where: Mapping[str, object] | None) -> Filter | None:
    """Parse a filter dict into a tree with negation pushed down to the conditions.

    `None` and `{}` mean no filter.

    Raises:
        InvalidFilterError: `where` is not valid in the filter language; the message says why.
    """
    if where is None:
        return None
    if not isinstance(where, Mapping):
        raise InvalidFilterError(f"a filter is a dict like {{'year': {{'$gte': 2020}}}}, got {type(where).__name__}")
    if not where:
        return None
    return _parse_document(where, negate=False)


def _parse_document(document: Mapping[str, object], *, negate: bool) -> Filter:
    if not isinstance(document, Mapping) or not document:
        raise InvalidFilterError(f"expected a non-empty filter dict, got {document!r}")
    parts: list[Filter] = []
    for key, operand in document.items():
        if not isinstance(key, str) or not key:
            raise InvalidFilterError(f"filter keys are non-empty strings, got {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(operand, list) or not operand:
                raise InvalidFilterError(f"{key} takes a non-empty list of filters, got {operand!r}")
            children = tuple(_parse_document(_as_document(child, key), negate=negate) for child in operand)
            parts.append(AllOf(children) if (key == "$and") != negate else AnyOf(children))
        elif key == "$not":
            parts.append(_parse_document(_as_document(operand, key), negate=not negate))
        elif key.startswith("$"):
            raise InvalidFilterError(f"unknown filter combinator {key!r}; use $and, $or or $not")
        else:
            parts.extend(_parse_field(key, operand, negate=negate))
    if len(parts) == 1:
        return parts[0]
    return AnyOf(tuple(parts)) if negate else AllOf(tuple(parts))


def _as_document(operand: object, key: str) -> Mapping[str, object]:
    if not isinstance(operand, Mapping):
        raise InvalidFilterError(f"{key} takes filter dicts, got {operand!r}")
    return operand


def _parse_field(field: str, operand: object, *, negate: bool) -> list[Filter]:
    if not isinstance(operand, Mapping):
        operand = {"$eq": operand}
    if not operand:
        raise InvalidFilterError(f"field {field!r} has an empty operator dict")
    conditions: list[Filter] = []
    for name, value in operand.items():
        op = name[1:] if isinstance(name, str) and name.startswith("$") else None
        if op not in _NEGATED:
            raise InvalidFilterError(
                f"unknown operator {name!r} on field {field!r}; use one of "
                + ", ".join(f"${known}" for known in _NEGATED)
            )
        checked = _check_operand(field, op, value)
        conditions.append(Condition(field, _NEGATED[op] if negate else op, checked))
    return conditions


def _check_operand(field: str, op: Operator, value: object) -> Scalar | tuple[Scalar, ...]:
    if op in ("in", "nin"):
        if not isinstance(value, (list, tuple)) or not value:
            raise InvalidFilterError(f"${op} on {field!r} takes a non-empty list, got {value!r}")
        items = tuple(_scalar(field, op, item) for item in value)
        if len({_kind(item) for item in items}) > 1:
            raise InvalidFilterError(f"${op} on {field!r} mixes strings, numbers and booleans: {list(items)!r}")
        return items
    if op in ("contains", "not_contains"):
        if not isinstance(value, str):
            raise InvalidFilterError(f"${op} on {field!r} takes a string, got {value!r}")
        return value
    scalar = _scalar(field, op, value)
    if op in _RANGES and _kind(scalar) != "number":
        raise InvalidFilterError(f"${op} on {field!r} takes a number, got {value!r}")
    return scalar


def _scalar(field: str, op: str, value: object) -> Scalar:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidFilterError(f"${op} on {field!r} takes a finite number, got {value!r}")
    if isinstance(value, (str, int, float, bool)):
        return value
    raise InvalidFilterError(f"${op} on {field!r} takes a string, number or boolean, got {value!r}")


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "str"


def _equal(stored: object, wanted: Scalar) -> bool:
    return not isinstance(stored, list) and _kind(stored) == _kind(wanted) and stored == wanted


def _compare(op: Operator, stored: float, limit: float) -> bool:
    if op == "gt":
        return stored > limit
    if op == "gte":
        return stored >= limit
    if op == "lt":
        return stored < limit
    return stored <= limit


def matches(where: Filter | None, metadata: Mapping[str, MetadataValue]) -> bool:
    """Whether `metadata` satisfies `where`, by the language's rules; the reference for in-process backends."""
    if where is None:
        return True
    if isinstance(where, AllOf):
        return all(matches(child, metadata) for child in where.children)
    if isinstance(where, AnyOf):
        return any(matches(child, metadata) for child in where.children)
    stored = metadata.get(where.field)
    op, value = where.op, where.value
    if isinstance(value, tuple):  # in, nin
        found = stored is not None and not isinstance(stored, list) and (_kind(stored), stored) in where.members
        return found if op == "in" else not found
    if op in ("contains", "not_contains"):
        found = isinstance(stored, list) and value in stored
        return found if op == "contains" else not found
    if op in ("eq", "ne"):
        found = stored is not None and _equal(stored, value)
        return found if op == "eq" else not found
    # A range: numbers only, and a record without the field does not match.
    if isinstance(stored, (int, float)) and not isinstance(stored, bool) and isinstance(value, (int, float)):
        return _compare(op, stored, value)
    return False

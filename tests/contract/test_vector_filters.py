"""The portable filter language: parsing, negation push-down and the reference semantics."""

from __future__ import annotations

from typing import Any

import pytest

from gecko.errors import InvalidFilterError
from gecko.plugins.vector.filters import AllOf, AnyOf, Condition, matches, parse_filter

RECORD: dict[str, Any] = {"lang": "zh", "year": 2021, "weight": 0.5, "draft": False, "tags": ["rag", "faq"]}


def test_field_value_is_equality_and_several_keys_are_all_required() -> None:
    assert parse_filter({"lang": "zh"}) == Condition("lang", "eq", "zh")
    assert parse_filter({"lang": "zh", "year": {"$gte": 2020, "$lt": 2025}}) == AllOf(
        (Condition("lang", "eq", "zh"), Condition("year", "gte", 2020), Condition("year", "lt", 2025))
    )


def test_no_filter() -> None:
    assert parse_filter(None) is None
    assert parse_filter({}) is None


def test_not_flips_operators_and_swaps_combinators() -> None:
    tree = parse_filter({"$not": {"$or": [{"lang": {"$in": ["zh", "en"]}}, {"year": {"$gt": 2020}}]}})
    assert tree == AllOf((Condition("lang", "nin", ("zh", "en")), Condition("year", "lte", 2020)))
    tree = parse_filter({"$not": {"lang": "zh", "tags": {"$contains": "rag"}}})
    assert tree == AnyOf((Condition("lang", "ne", "zh"), Condition("tags", "not_contains", "rag")))
    assert parse_filter({"$not": {"$not": {"year": {"$gte": 1}}}}) == Condition("year", "gte", 1)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"lang": "zh"}, True),
        ({"lang": "en"}, False),
        ({"year": 2021.0}, True),
        ({"year": "2021"}, False),
        ({"draft": False}, True),
        ({"draft": 0}, False),
        ({"year": True}, False),
        ({"lang": {"$ne": "en"}}, True),
        ({"missing": {"$ne": "x"}}, True),
        ({"missing": {"$nin": ["x"]}}, True),
        ({"missing": {"$not_contains": "x"}}, True),
        ({"missing": "x"}, False),
        ({"missing": {"$gt": 0}}, False),
        ({"$not": {"missing": {"$gt": 0}}}, False),
        ({"$not": {"missing": "x"}}, True),
        ({"lang": {"$gt": 0}}, False),
        ({"year": {"$gt": 2020, "$lte": 2021}}, True),
        ({"weight": {"$lt": 0.5}}, False),
        ({"year": {"$in": [2020, 2021.0]}}, True),
        ({"year": {"$in": [2020, 2022]}}, False),
        ({"draft": {"$in": [0, 1]}}, False),
        ({"draft": {"$in": [False]}}, True),
        ({"year": {"$in": [True]}}, False),
        ({"year": {"$nin": ["2021"]}}, True),
        ({"tags": {"$in": ["faq"]}}, False),
        ({"tags": {"$nin": ["faq"]}}, True),
        ({"tags": {"$contains": "faq"}}, True),
        ({"tags": "faq"}, False),
        ({"lang": {"$contains": "z"}}, False),
        ({"$or": [{"lang": "en"}, {"tags": {"$contains": "rag"}}]}, True),
        ({"$and": [{"lang": "zh"}, {"draft": True}]}, False),
        ({"$not": {"$and": [{"lang": "zh"}, {"draft": True}]}}, True),
    ],
)
def test_reference_semantics(where: dict[str, Any], expected: bool) -> None:
    assert matches(parse_filter(where), RECORD) is expected


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"year": {"$gt": "2020"}}, r"\$gt on 'year' takes a number"),
        ({"lang": {"$like": "z%"}}, r"unknown operator '\$like' on field 'lang'"),
        ({"$nor": []}, "unknown filter combinator"),
        ({"$and": []}, "non-empty list"),
        ({"lang": {"$in": ["zh", 2]}}, "mixes strings, numbers and booleans"),
        ({"tags": ["a"]}, "takes a string, number or boolean"),
        ("lang = 'zh'", "a filter is a dict"),
    ],
)
def test_invalid_filters_say_what_is_wrong(where: Any, message: str) -> None:
    with pytest.raises(InvalidFilterError, match=message):
        parse_filter(where)

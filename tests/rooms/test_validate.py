"""rooms.validate: the checks a replica delta passes before anything of it applies."""

from __future__ import annotations

from typing import Any

import pytest

from cowrite.engine.errors import InvalidOperation
from cowrite.engine.ops import DELETED, MAX_JSON_DEPTH, NewNode, NodeKind, check_json, copy_json
from cowrite.rooms import validate


def _nested(levels: int, leaf: Any = None) -> Any:
    value: Any = [] if leaf is None else leaf
    for _ in range(levels - (1 if leaf is None else 0)):
        value = [value]
    return value


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1])
@pytest.mark.parametrize("leaf", [None, 1, {"k": 1}])
def test_the_validator_and_the_engine_agree_on_nesting(levels: int, leaf: Any) -> None:
    """What ``check_json`` passes, ``copy_json`` (what the engine stores) takes, and back."""
    value = _nested(levels, leaf)
    try:
        check_json(value)
        checked = True
    except InvalidOperation:
        checked = False
    try:
        copy_json(value)
        copied = True
    except InvalidOperation:
        copied = False
    assert checked == copied


@pytest.mark.parametrize(
    "value",
    ["a\ud800", ["ok", "\udfff"], {"\ud800": 1}, {"a": {"b": ["\ud83d"]}}],
)
def test_lone_surrogates_anywhere_in_a_value_are_refused(value: Any) -> None:
    with pytest.raises(InvalidOperation, match="lone surrogate"):
        validate.check_value(value)


@pytest.mark.parametrize(
    "value", ["😀", [1, None, {"a": "é"}], NewNode(NodeKind.MAP), DELETED, 1.5, True]
)
def test_the_engines_own_values_and_plain_json_pass(value: Any) -> None:
    validate.check_value(value)

"""Fuzzing runbook parameter schemas: the declarations a runbook author sends
(``ParameterSpec.from_dict``, ``parameters_schema``) and the values a job, a schedule or a webhook
body brings for them (``validate_parameters``). Each is JSON from a caller."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from credo.automation.parameters import ParameterError, validate_parameters
from credo.automation.runbooks import PARAMETER_TYPES, ParameterSpec, parameters_schema
from credo.errors import InputError
from tests.fuzz.helpers import FUZZ_DOCUMENTS, typed_only

# What json.loads gives: NaN and infinities included, and lone surrogates ("\\ud800" is JSON that
# Python's json decodes to a str no UTF-8 encoder takes).
texts = st.one_of(st.text(max_size=10), st.sampled_from(["\ud800", "a\udfff"]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=5,
)
# Names a runbook may declare ([A-Za-z_][A-Za-z0-9_]*), drawn without a slow regex strategy.
declarable = st.tuples(st.sampled_from("abcxyzABZ_"), st.text("abcxyzABZ_019", max_size=6)).map("".join)
names = st.one_of(declarable, texts)
declarations = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "name": st.one_of(names, json_values),
            "type": st.one_of(st.sampled_from([*PARAMETER_TYPES, "float", ""]), json_values),
            "required": json_values,
            "default": json_values,
            "allowed": st.one_of(st.lists(json_values, max_size=3), json_values),
            "description": json_values,
        },
    ),
    st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    json_values,  # not even an object
)


def _declare(declared: list[Any]) -> dict[str, Any]:
    return parameters_schema([ParameterSpec.from_dict(d) for d in declared])


@FUZZ_DOCUMENTS
@given(st.lists(declarations, max_size=4))
@example([{"name": "a", "allowed": 5}])  # tuple(5): TypeError
@example([["name", "a"]])  # a declaration that is not an object: AttributeError
@example([{"name": "a", "\n": 1}])  # an unknown field with a line break in the message
def test_declarations(declared: list[Any]) -> None:
    result = typed_only(_declare, declared)
    if isinstance(result, dict):
        json.dumps(result)  # stored as JSON with the runbook


valid_specs = st.lists(
    st.builds(
        ParameterSpec,
        name=declarable,
        type=st.sampled_from(list(PARAMETER_TYPES)),
        required=st.booleans(),
        default=json_values,
        allowed=st.none() | st.lists(json_values, max_size=3).map(tuple),
    ),
    max_size=3,
    unique_by=lambda spec: spec.name,
)


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@FUZZ_DOCUMENTS
@given(valid_specs, st.dictionaries(names, json_values, max_size=5))
@example([ParameterSpec("a", "string")], {"\n": 1})  # an undeclared name with a line break in the message
@example([ParameterSpec("a", "string")], {"a": "\ud800"})  # json.dumps(...).encode(): UnicodeEncodeError
def test_values_against_a_schema(specs: list[ParameterSpec], values: dict[str, Any]) -> None:
    schema = parameters_schema(specs)
    result = typed_only(validate_parameters, schema, values)
    if isinstance(result, Exception):
        assert isinstance(result, ParameterError) and isinstance(result, InputError)
    else:
        assert set(values) <= set(result)


def test_values_nested_too_deeply() -> None:
    # Not an @example: Hypothesis would pretty-print the value, recursing as deep as json.dumps did.
    result = typed_only(
        validate_parameters, parameters_schema([ParameterSpec("a", "array")]), {"a": _deep(5000)}
    )
    assert isinstance(result, ParameterError)

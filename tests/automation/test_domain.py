"""The automation domain without I/O: parameter schemas, validation, job state transitions."""

from __future__ import annotations

import pytest

from credo.automation.jobs import TERMINAL, JobState, can_transition
from credo.automation.parameters import MAX_PARAMETERS_BYTES, ParameterError, validate_parameters
from credo.automation.runbooks import (
    ParameterSpec,
    RunbookType,
    content_hash,
    parameters_schema,
    validate_runbook_name,
)
from credo.errors import InputError

SPECS = [
    ParameterSpec("name", "string", required=True),
    ParameterSpec("count", "int", default=2),
    ParameterSpec("ratio", "number"),
    ParameterSpec("force", "bool"),
    ParameterSpec("tags", "array"),
    ParameterSpec("extra", "object"),
    ParameterSpec("color", "string", allowed=("red", "green")),
]
SCHEMA = parameters_schema(SPECS)


def test_schema_maps_azure_types_to_json_schema() -> None:
    types = {name: prop["type"] for name, prop in SCHEMA["properties"].items()}
    assert types == {"name": "string", "count": "integer", "ratio": "number", "force": "boolean", "tags": "array",
                     "extra": "object", "color": "string"}  # fmt: skip
    assert SCHEMA["required"] == ["name"]
    assert SCHEMA["additionalProperties"] is False
    assert SCHEMA["properties"]["color"]["enum"] == ["red", "green"]


def test_valid_values_get_defaults() -> None:
    assert validate_parameters(SCHEMA, {"name": "x"}) == {"name": "x", "count": 2}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({}, "name"),
        ({"name": 1}, "name"),
        ({"name": "x", "count": "2"}, "count"),
        ({"name": "x", "count": 2.5}, "count"),
        ({"name": "x", "force": "yes"}, "force"),
        ({"name": "x", "color": "blue"}, "color"),
        ({"name": "x", "nope": 1}, "nope"),
    ],
)
def test_invalid_values_name_the_field(values: dict[str, object], field: str) -> None:
    with pytest.raises(ParameterError) as caught:
        validate_parameters(SCHEMA, values)
    assert caught.value.field == field
    assert field in caught.value.message


def test_size_cap() -> None:
    with pytest.raises(ParameterError, match="512 KB"):
        validate_parameters(SCHEMA, {"name": "x" * (MAX_PARAMETERS_BYTES + 1)})


@pytest.mark.parametrize("bad", [{"name": "1x"}, {"name": "a-b"}, {"name": "ok", "type": "date"}])
def test_bad_declarations(bad: dict[str, str]) -> None:
    with pytest.raises(InputError):
        ParameterSpec.from_dict(bad)


def test_duplicate_declarations() -> None:
    with pytest.raises(InputError, match="declared twice"):
        parameters_schema([ParameterSpec("a"), ParameterSpec("a")])


def test_runbook_names_types_and_hashes() -> None:
    assert validate_runbook_name("disable-user") == "disable-user"
    for bad in ["", "-x", "a/b", "x" * 65, "a b"]:
        with pytest.raises(InputError):
            validate_runbook_name(bad)
    assert RunbookType("bash").interpreter[0] == "bash"
    assert content_hash(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_state_machine() -> None:
    assert can_transition(JobState.QUEUED, JobState.RUNNING)
    assert can_transition(JobState.RUNNING, JobState.QUEUED)  # a lost worker's job restarts
    assert can_transition(JobState.RUNNING, JobState.STOPPING)
    assert not can_transition(JobState.COMPLETED, JobState.RUNNING)
    # Ended states stay ended, except that `credo job resume` queues a Suspended job again.
    assert can_transition(JobState.SUSPENDED, JobState.QUEUED)
    for state in TERMINAL:
        targets = {target for target in JobState if can_transition(state, target)}
        assert targets == ({JobState.QUEUED} if state == JobState.SUSPENDED else set())
    assert can_transition(JobState.QUEUED, JobState.FAILED)  # no worker took it within its timeout

"""The one table of errors: each class's exit code and HTTP status, and the way back from a status."""

from __future__ import annotations

import re

import pytest

import credo.errors as errors
from credo.automation.parameters import ParameterError
from credo.errors import (
    ConfidentialityRequired,
    Conflict,
    CredoError,
    EnvironmentProblem,
    InputError,
    NotFoundError,
    NotPermittedError,
    UnreachableError,
    error_for_status,
)
from credo.server import service

TABLE = {
    CredoError: (1, 500),
    InputError: (2, 422),
    EnvironmentProblem: (3, 503),
    UnreachableError: (4, 504),
    NotPermittedError: (5, 403),
    ConfidentialityRequired: (5, 403),
    NotFoundError: (6, 404),
    Conflict: (1, 409),
    ParameterError: (2, 422),
}


def test_every_class_has_its_exit_code_and_status() -> None:
    classes = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, CredoError) and obj.__module__ == "credo.errors"
    }
    assert classes | {ParameterError} == set(TABLE)
    for cls, (exit_code, status) in TABLE.items():
        assert (cls.exit_code, cls.http_status) == (exit_code, status), cls.__name__


def test_the_module_docstring_draws_the_same_table() -> None:
    doc = errors.__doc__ or ""
    for cls, (exit_code, status) in TABLE.items():
        if cls is ParameterError:
            continue
        rows = re.findall(rf"[ ─]{cls.__name__} +(\d+) +(\d+) ", doc)
        assert rows == [(str(exit_code), str(status))], cls.__name__


def test_conflict_stays_importable_from_the_service() -> None:
    assert service.Conflict is Conflict


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InputError),
        (413, InputError),
        (422, InputError),
        (401, NotPermittedError),
        (403, NotPermittedError),
        (404, NotFoundError),
        (409, Conflict),
        (500, CredoError),
        (502, UnreachableError),
        (503, EnvironmentProblem),
        (504, UnreachableError),
        (418, CredoError),
    ],
)
def test_an_answer_becomes_the_error_of_its_status(status: int, cls: type[CredoError]) -> None:
    error = error_for_status(status, "runbook 'x' does not exist", hint="list them")
    assert type(error) is cls
    assert (error.message, error.hint) == ("runbook 'x' does not exist", "list them")


def test_every_class_survives_the_round_trip_through_its_status() -> None:
    for cls in TABLE:
        rebuilt = error_for_status(cls.http_status, "m")
        # A subclass that shares its parent's status comes back as the parent, with the same exit code.
        assert isinstance(rebuilt, CredoError) and rebuilt.exit_code == cls.exit_code, cls.__name__


def test_public_names() -> None:
    assert errors.__all__ == [
        "EXIT_INTERNAL",
        "EXIT_INTERRUPTED",
        "ConfidentialityRequired",
        "Conflict",
        "CredoError",
        "EnvironmentProblem",
        "InputError",
        "NotFoundError",
        "NotPermittedError",
        "UnreachableError",
        "error_for_status",
    ]

"""Runbooks: a script of a known type, declared parameters, and immutable published versions."""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from credo.errors import InputError

__all__ = [
    "MAX_RUNBOOK_BYTES",
    "ParameterSpec",
    "RunbookType",
    "content_hash",
    "parameters_schema",
    "validate_runbook_name",
]

MAX_RUNBOOK_BYTES = 1024 * 1024
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PARAM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class RunbookType(enum.StrEnum):
    """How a runbook is run: the interpreter gets the script file as its first argument.

    python3 runs with -s (no user site-packages); its environment is built by the worker, and
    PYTHONPATH holds only the directory with the ``credo.runbook`` helper.
    """

    PYTHON3 = "python3"
    BASH = "bash"

    @property
    def interpreter(self) -> list[str]:
        return {RunbookType.PYTHON3: ["python3", "-s"], RunbookType.BASH: ["bash", "--noprofile", "--norc"]}[
            self
        ]

    @property
    def suffix(self) -> str:
        return {RunbookType.PYTHON3: ".py", RunbookType.BASH: ".sh"}[self]


# Azure Automation's parameter types, as JSON Schema types.
PARAMETER_TYPES = {
    "string": "string",
    "int": "integer",
    "number": "number",
    "bool": "boolean",
    "array": "array",
    "object": "object",
}


@dataclass(frozen=True)
class ParameterSpec:
    """A declared runbook parameter."""

    name: str
    type: str = "string"
    required: bool = False
    default: Any = None
    allowed: tuple[Any, ...] | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if not _PARAM_RE.match(self.name):
            raise InputError(
                f"invalid parameter name {self.name!r}", hint="letters, digits and _, not first a digit"
            )
        if self.type not in PARAMETER_TYPES:
            raise InputError(
                f"parameter {self.name}: unknown type {self.type!r}",
                hint=f"use one of {', '.join(PARAMETER_TYPES)}",
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParameterSpec:
        if not isinstance(data, dict):  # read from a JSON file or body: any JSON value may come
            raise InputError("a parameter declaration must be an object (name, type, ...)")
        known = {"name", "type", "required", "default", "allowed", "description"}
        unknown = set(data) - known
        if unknown:
            # The caller's names: quoted when empty or unprintable, so that the message is one line.
            shown = ", ".join(name if name and name.isprintable() else repr(name) for name in sorted(unknown))
            raise InputError(f"parameter {data.get('name')!r}: unknown field(s) {shown}")
        if "name" not in data:
            raise InputError("a parameter needs a name")
        allowed = data.get("allowed")
        if allowed is not None and not isinstance(allowed, list | tuple):
            raise InputError(f"parameter {data.get('name')!r}: allowed must be a list of values")
        return cls(
            name=str(data["name"]),
            type=str(data.get("type", "string")),
            required=bool(data.get("required", False)),
            default=data.get("default"),
            allowed=tuple(allowed) if allowed is not None else None,
            description=data.get("description"),
        )


def parameters_schema(parameters: list[ParameterSpec]) -> dict[str, Any]:
    """A JSON Schema (2020-12) object schema for the declared parameters; no others allowed."""
    names = [p.name for p in parameters]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise InputError(f"parameter(s) declared twice: {', '.join(sorted(duplicates))}")
    properties: dict[str, Any] = {}
    for spec in parameters:
        prop: dict[str, Any] = {"type": PARAMETER_TYPES[spec.type]}
        if spec.description:
            prop["description"] = spec.description
        if spec.allowed is not None:
            prop["enum"] = list(spec.allowed)
        if spec.default is not None:
            prop["default"] = spec.default
        properties[spec.name] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": [p.name for p in parameters if p.required],
        "additionalProperties": False,
    }


def content_hash(content: bytes) -> str:
    """``sha256:<hex>`` of a runbook's bytes: what a worker checks before running it."""
    return "sha256:" + hashlib.sha256(content).hexdigest()


def validate_runbook_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InputError(
            f"invalid runbook name {name!r}",
            hint="1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name

"""Job parameters: JSON values validated against the runbook's schema at submission."""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft202012Validator

from credo.errors import InputError

__all__ = ["MAX_PARAMETERS_BYTES", "ParameterError", "apply_defaults", "validate_parameters"]

# Azure Automation's limit for a job's parameters.
MAX_PARAMETERS_BYTES = 512 * 1024


class ParameterError(InputError):
    """Parameters do not match the runbook's schema; ``field`` names the offending one."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def validate_parameters(schema: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Check size and schema; return the values with defaults filled in."""
    try:
        size = len(json.dumps(values, ensure_ascii=False).encode())
    except RecursionError:  # json.dumps recurses once per nesting level
        raise ParameterError("parameters are nested too deeply") from None
    except UnicodeEncodeError:  # "\ud800" is JSON, and decodes to a lone surrogate: not text
        raise ParameterError("parameters hold a lone UTF-16 surrogate, which is not text") from None
    if size > MAX_PARAMETERS_BYTES:
        raise ParameterError(f"parameters are {size} bytes; the limit is {MAX_PARAMETERS_BYTES} (512 KB)")
    validator = _validator(json.dumps(schema, sort_keys=True))
    errors = sorted(validator.iter_errors(values), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        path = ".".join(str(p) for p in first.absolute_path)
        if first.validator == "required":
            missing = first.message.split("'")[1] if "'" in first.message else None
            raise ParameterError(f"parameter {missing}: required", field=missing)
        if first.validator == "additionalProperties":
            extra = sorted(set(values) - set(schema.get("properties", {})))
            # The caller's names: quoted when empty or unprintable, so that the message is one line.
            shown = ", ".join(name if name and name.isprintable() else repr(name) for name in extra)
            raise ParameterError(
                f"parameter {shown}: not declared by the runbook",
                field=extra[0] if extra else None,
            )
        field = path or None
        raise ParameterError(f"parameter {field}: {first.message}", field=field)
    return apply_defaults(schema, values)


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Draft202012Validator:
    """Validators are costly to build and a runbook's schema rarely changes: keep recent ones."""
    return Draft202012Validator(json.loads(schema_json))


def apply_defaults(schema: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    result = dict(values)
    for name, prop in schema.get("properties", {}).items():
        if name not in result and "default" in prop:
            result[name] = prop["default"]
    return result

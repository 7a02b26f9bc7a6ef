"""The start form of a runbook, generated from its published version's JSON Schema, and back.

One field per property of the schema (``credo.automation.runbooks.parameters_schema``): a choice
for an ``enum``, a checkbox for a boolean, a number box for an integer or a number, a text area
of JSON for an array or an object, a text box otherwise; required ones marked, defaults filled
in, descriptions shown. ``parse_form`` turns what the browser sends back into the parameters
object, typed as the schema says; the server then validates it against the schema exactly as for
``credo job start`` (credo.automation.parameters), so the form cannot start a job the API would
refuse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from credo.errors import InputError

__all__ = ["FormField", "form_fields", "parse_form"]

# Form field names are the parameter names behind this prefix, so that no parameter can collide
# with the form's own fields (the worker group, the test flag).
PREFIX = "p."


@dataclass(frozen=True)
class FormField:
    name: str  # the parameter's
    input: str  # select, checkbox, number, json, text
    json_type: str
    required: bool
    value: str  # what the field shows at first
    choices: tuple[str, ...] = ()
    description: str | None = None
    step: str | None = None  # "1" for integers, "any" for numbers

    @property
    def field(self) -> str:
        return PREFIX + self.name


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def form_fields(schema: Mapping[str, Any]) -> list[FormField]:
    required = set(schema.get("required", ()))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        json_type = str(prop.get("type", "string"))
        default = prop.get("default")
        common = {"name": name, "json_type": json_type, "required": name in required,
                  "description": prop.get("description")}  # fmt: skip
        if "enum" in prop:
            choices = tuple(_shown(v) for v in prop["enum"])
            fields.append(FormField(input="select", value=_shown(default), choices=choices, **common))
        elif json_type == "boolean":
            fields.append(FormField(input="checkbox", value="true" if default else "", **common))
        elif json_type in ("integer", "number"):
            step = "1" if json_type == "integer" else "any"
            fields.append(FormField(input="number", value=_shown(default), step=step, **common))
        elif json_type in ("array", "object"):
            fields.append(FormField(input="json", value=_shown(default), **common))
        else:
            fields.append(FormField(input="text", value=_shown(default), **common))
    return fields


def parse_form(schema: Mapping[str, Any], form: Mapping[str, str]) -> dict[str, Any]:
    """The parameters the form's values stand for. An empty box leaves its parameter out (then
    the schema's default applies, or a required one is reported missing by the validation)."""
    values: dict[str, Any] = {}
    for field in form_fields(schema):
        raw = form.get(field.field)
        if field.input == "checkbox":
            values[field.name] = raw is not None
            continue
        if raw is None or raw.strip() == "":
            continue
        values[field.name] = _typed(field, raw.strip())
    return values


def _typed(field: FormField, raw: str) -> Any:
    kind = field.json_type
    try:
        if field.input == "select":
            # The choice as the schema lists it (a number stays a number).
            return json.loads(raw) if kind != "string" else raw
        if kind == "integer":
            return int(raw)
        if kind == "number":
            number = float(raw)
            return (
                int(number) if number.is_integer() and "." not in raw and "e" not in raw.lower() else number
            )
        if kind in ("array", "object"):
            value = json.loads(raw)
            expected = list if kind == "array" else dict
            if not isinstance(value, expected):
                raise ValueError(f"not a JSON {kind}")
            return value
    except ValueError as exc:
        raise InputError(
            f"parameter {field.name}: {raw[:40]!r} is not {_article(kind)} {kind}",
            hint="correct the field and start again",
        ) from exc
    return raw


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"

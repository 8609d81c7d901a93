"""Cross-field rules written once: a CEL expression for the API server and its Python twin.

The CRD generator copies ``cel``/``message`` into ``x-kubernetes-validations``; the pydantic
models run ``holds`` so that ``kubevino render`` refuses exactly what admission would refuse. A
unit test evaluates every CEL expression with a CEL interpreter against the Python twin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema


@dataclass(frozen=True)
class Rule:
    cel: str
    message: str
    holds: Callable[[Any], bool]


class ApiModel(BaseModel):
    """Base of every API object: camelCase on the wire, unknown fields refused, CEL rules."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_attribute_docstrings=False,
    )

    cel_rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _cel_rules_hold(self) -> ApiModel:
        for rule in type(self).cel_rules:
            if not rule.holds(self):
                raise ValueError(rule.message)
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if cls.cel_rules:
            target = handler.resolve_ref_schema(schema)
            target["x-kubernetes-validations"] = [
                {"rule": rule.cel, "message": rule.message} for rule in cls.cel_rules
            ]
        return schema

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def has_key(mapping: dict[str, Any] | None, key: str) -> bool:
    return mapping is not None and key in mapping

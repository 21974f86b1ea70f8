"""Serializer fields that take, in a JSON body, only values of the type the schema gives
them: DRF's own turn ``1`` into ``"1"`` for a string, ``"1"`` into ``1`` for a number and
``0`` into ``false`` for a boolean. Form and multipart bodies carry only strings, and
are read as DRF reads them."""

from __future__ import annotations

from typing import Any

from rest_framework import relations, serializers
from rest_framework.utils import html

#: Text without null characters: Django refuses them (PostgreSQL cannot store them).
NO_NULL_CHARACTERS = r"^[^\u0000]*$"
#: The same, not empty. drf-spectacular offers the blank value of a field that takes one
#: as a branch of its own (oneOf), which the pattern must then not match too.
NOT_EMPTY = r"^[^\u0000]+$"
# What str.strip() removes: DRF trims text before it checks that it is not blank.
_SPACE = r"\t-\r\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
#: Text that holds more than white space, and no null character.
NOT_BLANK = rf"^[{_SPACE}]*[^\u0000{_SPACE}][^\u0000]*$"


def _sent_as_json(field: serializers.Field[Any, Any, Any, Any]) -> bool:
    return not html.is_html_input(getattr(field.root, "initial_data", None))


def _is_a(data: Any, types: tuple[type, ...]) -> bool:
    # bool is an int to Python, not to JSON.
    return isinstance(data, types) and (bool in types or not isinstance(data, bool))


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if _sent_as_json(self) and not isinstance(data, str):
            self.fail("invalid")
        # The schema's maxLength counts what was sent, before white space is trimmed.
        if self.max_length is not None and len(str(data)) > self.max_length:
            self.fail("max_length", max_length=self.max_length, length=len(str(data)))
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if _sent_as_json(self) and not _is_a(data, (int,)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if _sent_as_json(self) and not _is_a(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if _sent_as_json(self) and not isinstance(data, bool):
            self.fail("invalid", input=data)
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    def to_internal_value(self, data: Any) -> Any:
        if _sent_as_json(self) and not _is_a(data, tuple({type(key) for key in self.choices})):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class StrictPrimaryKeyRelatedField(relations.PrimaryKeyRelatedField[Any]):
    def to_internal_value(self, data: Any) -> Any:
        if _sent_as_json(self) and not _is_a(data, (int,)):
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)

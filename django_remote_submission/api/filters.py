"""The lists' filters: exact ones, by whole numbers for numbers and references, and a
search whose refusals name it."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.db import models
from django_filters import CharFilter, NumberFilter
from django_filters.rest_framework import DjangoFilterBackend, FilterSet
from drf_spectacular.utils import extend_schema_field
from rest_framework import filters
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from django_remote_submission.api.fields import NO_NULL_CHARACTERS

_INT64 = {"minimum": -(2**63), "maximum": 2**63 - 1}


class _Int64Field(forms.IntegerField):
    # Django's own takes "1.0" for 1; the schema says a whole number.
    re_decimal = re.compile(r"(?!)")

    # A database compares no column with a number beyond 64 bits: SQLite raises.
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=_INT64["minimum"], max_value=_INT64["maximum"], **kwargs)


@extend_schema_field({"type": "integer", "format": "int64", **_INT64})
class IntegerFilter(NumberFilter):  # type: ignore[misc]
    """A whole number: ``0.5`` is refused rather than matching nothing."""

    field_class = _Int64Field


@extend_schema_field({"type": "string", "pattern": NO_NULL_CHARACTERS})
class TextFilter(CharFilter):  # type: ignore[misc]
    """Text, which Django's form field refuses with a null character in it."""


class ExactFilterSet(FilterSet):  # type: ignore[misc]
    # django-filter's references take only the primary keys of existing rows: ?job= of a
    # job the user may not see would answer 200 and a job that does not exist 400, which
    # tells them apart. A number matches nothing in both cases.
    FILTER_DEFAULTS: dict[type[models.Field[Any, Any]], dict[str, Any]] = {
        **FilterSet.FILTER_DEFAULTS,
        models.CharField: {"filter_class": TextFilter},
        models.TextField: {"filter_class": TextFilter},
        models.ForeignKey: {"filter_class": IntegerFilter},
        models.IntegerField: {"filter_class": IntegerFilter},
    }


class ExactFilterBackend(DjangoFilterBackend):  # type: ignore[misc]
    filterset_base = ExactFilterSet


class SearchFilter(filters.SearchFilter):
    """DRF's search; a term it refuses answers ``{"search": [...]}`` like the filters,
    not a bare list."""

    def get_search_terms(self, request: Request) -> list[str]:
        try:
            terms: list[str] = super().get_search_terms(request)
        except ValidationError as exc:
            raise ValidationError({self.search_param: exc.detail}) from exc
        return terms

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["pattern"] = NO_NULL_CHARACTERS
        return parameters

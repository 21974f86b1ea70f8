"""The API's OpenAPI schema: drf-spectacular's, with every error each operation answers."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import Direction, OpenApiParameter, OpenApiResponse

from django_remote_submission.api.fields import NOT_BLANK, NOT_EMPTY, StrictCharField
from django_remote_submission.api.serializers import DetailSerializer

_MESSAGES = {"type": "array", "items": {"type": "string"}}

#: The body of a 400 answer: DRF's validation errors.
VALIDATION_ERROR = {
    "type": "object",
    "description": "What is wrong with the request. A body's errors come by field name "
    "(non_field_errors: the fields together), a list field's by item index, and a query "
    "parameter's by its name; a body that cannot be parsed, and the parameters of "
    "jobs/{id}/logs/, come as detail.",
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {
        "oneOf": [_MESSAGES, {"type": "object", "additionalProperties": _MESSAGES}],
    },
}


class APIAutoSchema(AutoSchema):
    """Adds to each operation the errors it may answer, from how its view is set up: who
    may call it, whether it reads a body or query parameters, whether it names a row.
    A view's ``conflicts`` maps its actions that answer 409 to why."""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        if operation is not None and self._is_list_view():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == OpenApiParameter.QUERY and not _admits_empty(
                    parameter["schema"]
                ):
                    # django-filter, search, ordering and page all read "?status=" as
                    # "no status given", as the browsable API's filter form sends it.
                    parameter["allowEmptyValue"] = True
        return operation

    def map_parsers(self) -> list[Any]:
        # The API reads forms too (the browsable API sends them), but a form cannot say
        # what the schema says: null, true, a number, an empty list. Clients send JSON.
        media_types: list[Any] = super().map_parsers()
        json_types = [media_type for media_type in media_types if "json" in media_type]
        return json_types or media_types

    def _get_response_bodies(self, direction: Direction = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for status, response in self._error_responses(self._is_list_view()).items():
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(  # type: ignore[no-untyped-call]
                    response, str(status), direction=direction
                )
        return responses

    def _error_responses(self, is_list: bool) -> dict[int, OpenApiResponse]:
        view = self.view
        action = getattr(view, "action", None)
        reads_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer()
        reads_query = is_list or any(
            isinstance(parameter, OpenApiParameter) and parameter.location == "query"
            for parameter in self.get_override_parameters()
        )
        names_row = "{" in self.path
        authenticators = view.get_authenticators()
        challenges = bool(authenticators and authenticators[0].authenticate_header(view.request))
        errors: dict[int, OpenApiResponse] = {}
        if reads_body or reads_query:
            errors[400] = OpenApiResponse(self._validation_error(), "The request is invalid.")
        if challenges:
            errors[401] = _detail("Credentials are missing or wrong.")
        if not challenges or self.method not in ("GET", "HEAD", "OPTIONS"):
            errors[403] = _detail(
                "Not logged in, or not allowed: a permission is missing, or the login "
                "policy refuses the SSH login."
            )
        if names_row:
            errors[404] = _detail("No such row, or one the user may not see.")
        elif is_list and getattr(view, "pagination_class", None):
            errors[404] = _detail("A page past the last.")
        if action not in getattr(view, "any_accept_actions", ()):
            errors[406] = _detail("The Accept header asks for no type the API sends.")
        conflict = getattr(view, "conflicts", {}).get(action)
        if conflict:
            errors[409] = _detail(conflict)
        if reads_body:
            errors[415] = _detail("The Content-Type of the body is not one the API reads.")
        if view.get_throttles():
            errors[429] = _detail("Too many requests: the project's throttling refused it.")
        return errors

    def _validation_error(self) -> dict[str, Any]:
        component = ResolvedComponent(  # type: ignore[no-untyped-call]
            name="ValidationError",
            type=ResolvedComponent.SCHEMA,
            object="ValidationError",
            schema=VALIDATION_ERROR,
        )
        self.registry.register_on_missing(component)
        return component.ref


def _admits_empty(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "string" and "enum" not in schema and not schema.get("minLength")


def _detail(description: str) -> OpenApiResponse:
    return OpenApiResponse(DetailSerializer, description)


class StrictCharFieldExtension(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    """Text sent to the API: the schema says that it holds no null character, and, unless
    the field takes a blank value, more than white space."""

    target_class = StrictCharField

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> Any:
        schema = auto_schema._map_serializer_field(  # type: ignore[no-untyped-call]
            self.target, direction, bypass_extensions=True
        )
        if direction == "request" and schema.get("type") == "string":
            schema["pattern"] = NOT_EMPTY if self.target.allow_blank else NOT_BLANK
        return schema

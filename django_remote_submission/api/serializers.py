"""How the models look in the API; secrets are write-only and never stored."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from django_remote_submission import scheduling
from django_remote_submission.api.fields import (
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictFloatField,
    StrictIntegerField,
    StrictPrimaryKeyRelatedField,
)
from django_remote_submission.logstream import LogPolicy
from django_remote_submission.models import Interpreter, Job, Log, Result, Server

RUNTIME_FIELDS = [
    "uuid",
    "status",
    "state",
    "owner",
    "exit_code",
    "error",
    "started_at",
    "finished_at",
    "cancel_requested_at",
    "task_id",
    "scheduler_job_id",
    "scheduler_reason",
    "pending_since",
    "created",
    "modified",
]

_COUNT = {"type": "integer", "minimum": 1, "nullable": True}

#: What a job may ask its server's batch scheduler for (``Job.resources``); the server's
#: limits (``GET /servers/{id}/``) say how much.
RESOURCES_SCHEMA = {
    "type": "object",
    "description": "What the job asks its server's batch scheduler for; left out or {}: "
    "the server's defaults. A server that runs jobs directly takes none. Memory and GPUs "
    "are per node; directives need an option the server allows.",
    "properties": {
        "cpus": _COUNT,
        "memory_mb": _COUNT,
        "time_limit_s": _COUNT,
        "gpus": _COUNT,
        "nodes": _COUNT,
        "directives": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": False,
}


_M = TypeVar("_M", bound=models.Model)


class _ModelSerializer(serializers.ModelSerializer[_M]):
    # Its fields take, in JSON, the types of the schema only (api/fields.py). Not said in
    # a docstring: the schema would show it on every component.
    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
        models.IntegerField: StrictIntegerField,
    }
    serializer_related_field = StrictPrimaryKeyRelatedField
    serializer_choice_field = StrictChoiceField


class InterpreterSerializer(_ModelSerializer[Interpreter]):
    arguments = serializers.ListField(child=StrictCharField(), required=False)

    class Meta:
        model = Interpreter
        fields = ["id", "name", "path", "arguments", "created", "modified"]
        read_only_fields = ["created", "modified"]


#: How a server launches its jobs and the most a job may ask of it: set in the admin.
SCHEDULER_FIELDS = [
    "scheduler",
    "scheduler_time_limit",
    "max_cpus",
    "max_memory_mb",
    "max_time_limit",
    "max_gpus",
    "max_nodes",
]


class ServerSerializer(_ModelSerializer[Server]):
    scheduler_allowed_options = serializers.SerializerMethodField(
        help_text="The directive options a job may set in resources.directives."
    )

    class Meta:
        model = Server
        fields = [
            "id",
            "title",
            "hostname",
            "port",
            "username",
            "host_key",
            "interpreters",
            *SCHEDULER_FIELDS,
            "scheduler_allowed_options",
            "created",
            "modified",
        ]
        read_only_fields = ["created", "modified", *SCHEDULER_FIELDS]
        # The column takes any integer; a TCP port does not.
        extra_kwargs = {"port": {"min_value": 1, "max_value": 65535}}

    def get_scheduler_allowed_options(self, server: Server) -> list[str]:
        return sorted(scheduling.defaults_of(server).allowed_options)


@extend_schema_field(RESOURCES_SCHEMA)
class ResourcesField(serializers.JSONField):
    """``Job.resources``: checked against the job's server in ``JobSerializer.validate``."""


class JobSerializer(_ModelSerializer[Job]):
    resources = ResourcesField(required=False)

    class Meta:
        model = Job
        fields = [
            "id",
            "title",
            "program",
            "remote_directory",
            "remote_filename",
            "server",
            "interpreter",
            "resources",
            *RUNTIME_FIELDS,
        ]
        read_only_fields = RUNTIME_FIELDS

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        server = attrs.get("server", getattr(self.instance, "server", None))
        interpreter = attrs.get("interpreter", getattr(self.instance, "interpreter", None))
        if server and interpreter and not server.interpreters.filter(pk=interpreter.pk).exists():
            raise serializers.ValidationError(
                {"interpreter": "The Interpreter picked is not valid for this server."}
            )
        if server and ("resources" in attrs or "server" in attrs):
            resources = attrs.get("resources", getattr(self.instance, "resources", {}))
            problems = scheduling.resource_problems(server, resources)
            if problems:
                raise serializers.ValidationError({"resources": problems})
        return attrs


class LogSerializer(_ModelSerializer[Log]):
    class Meta:
        model = Log
        fields = ["id", "time", "content", "stream", "job"]


class ResultSerializer(_ModelSerializer[Result]):
    local_file = serializers.SerializerMethodField(
        help_text="Where the owner downloads the file (the 2.x name of the field)."
    )

    class Meta:
        model = Result
        fields = ["id", "remote_filename", "local_file", "size", "checksum", "job", "created"]

    def get_local_file(self, result: Result) -> str | None:
        if not result.local_file:
            return None
        request = self.context.get("request")
        namespace = getattr(getattr(request, "resolver_match", None), "namespace", "")
        name = f"{namespace}:result-download" if namespace else "result-download"
        url = reverse(name, args=[result.pk])
        return request.build_absolute_uri(url) if request is not None else url


class SubmitSerializer(serializers.Serializer[Any]):
    """How to run a job. The password is used for this run only: never stored or shown."""

    password = StrictCharField(
        required=False,
        allow_null=True,
        write_only=True,
        trim_whitespace=False,
        style={"input_type": "password"},
        help_text="The SSH password. Left out, the worker logs in with its own keys or agent, "
        "for the users the site grants them to.",
    )
    username = StrictCharField(
        required=False,
        allow_blank=True,
        help_text="The SSH login; by default the server's, else the job owner's username.",
    )
    timeout = StrictFloatField(
        required=False, allow_null=True, min_value=0.001, help_text="Seconds before it stops."
    )
    log_policy = StrictChoiceField(
        choices=[(policy.value, policy.name) for policy in LogPolicy],
        default=LogPolicy.LOG_LIVE.value,
    )
    store_results = serializers.ListField(
        child=StrictCharField(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Ordered globs; '!' negates; the last match wins; null keeps every file.",
    )
    remote = StrictBooleanField(
        default=True,
        help_text="False runs the job on the worker host itself "
        "(with the permission django_remote_submission.run_on_worker_host).",
    )


class LogPageSerializer(serializers.Serializer[Any]):
    results = LogSerializer(many=True)
    last_log_id = serializers.IntegerField()
    more = serializers.BooleanField()
    finished = serializers.BooleanField()


class DetailSerializer(serializers.Serializer[Any]):
    """Why a request was refused."""

    detail = serializers.CharField()


class SubmittedSerializer(serializers.Serializer[Any]):
    job = JobSerializer()
    task_id = serializers.CharField()

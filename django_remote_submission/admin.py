"""Admin pages for the five models (actions that run jobs come with the API issue)."""

from __future__ import annotations

import shlex
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from django_remote_submission.models import Interpreter, Job, Log, Result, Server


class ArgumentsField(forms.CharField):
    """Edits a list of arguments as one line of shell words: ``-u -X dev``."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return shlex.join(str(v) for v in value)
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]
        text = super().to_python(value)
        try:
            return shlex.split(text)
        except ValueError as exc:
            raise forms.ValidationError(
                _("Could not split the arguments: %(reason)s."), params={"reason": exc}
            ) from exc


class InterpreterForm(forms.ModelForm):  # type: ignore[type-arg]
    arguments = ArgumentsField(
        required=False,
        label=_("Command Arguments"),
        help_text=_("Written as on a shell command line, e.g. -u -X dev"),
    )

    class Meta:
        model = Interpreter
        fields = ["name", "path", "arguments"]


@admin.register(Interpreter)
class InterpreterAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = InterpreterForm
    list_display = ["name", "path", "arguments", "modified"]
    search_fields = ["name", "path"]


@admin.register(Server)
class ServerAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["title", "hostname", "port", "username", "has_pinned_key", "modified"]
    search_fields = ["title", "hostname"]
    filter_horizontal = ["interpreters"]

    @admin.display(boolean=True, description=_("host key pinned"))
    def has_pinned_key(self, obj: Server) -> bool:
        return bool(obj.host_key)


class ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ResultInline(ReadOnlyInline):
    model = Result
    fields = ("remote_filename", "local_file", "size", "checksum")
    readonly_fields = ("remote_filename", "local_file", "size", "checksum")


RUNTIME_FIELDS = (
    "uuid",
    "status",
    "exit_code",
    "error",
    "started_at",
    "finished_at",
    "remote_pid",
    "remote_pgid",
    "stdout_offset",
    "stderr_offset",
    "heartbeat",
    "cancel_requested_at",
    "task_id",
    "created",
    "modified",
)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "id",
        "title",
        "status",
        "owner",
        "server",
        "interpreter",
        "exit_code",
        "started_at",
        "finished_at",
        "modified",
    ]
    list_display_links = ["id", "title"]
    list_filter = ["status", "server", "interpreter", "created"]
    search_fields = ["title", "uuid", "owner__username", "remote_directory", "remote_filename"]
    list_select_related = ["owner", "server", "interpreter"]
    raw_id_fields = ["owner"]
    readonly_fields = RUNTIME_FIELDS
    date_hierarchy = "created"
    inlines = [ResultInline]
    fieldsets = (
        (None, {"fields": ("title", "owner", "server", "interpreter", "program")}),
        (_("Remote location"), {"fields": ("remote_directory", "remote_filename")}),
        (_("Outcome"), {"fields": RUNTIME_FIELDS}),
    )


@admin.register(Log)
class LogAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "job", "stream", "time", "short_content"]
    list_filter = ["stream"]
    search_fields = ["content", "job__title"]
    list_select_related = ["job"]
    raw_id_fields = ["job"]
    readonly_fields = ["time"]
    # Counting millions of log rows on every page view is what makes admins slow.
    show_full_result_count = False

    @admin.display(description=_("content"))
    def short_content(self, obj: Log) -> str:
        return obj.content if len(obj.content) <= 80 else obj.content[:79] + "…"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Log]:
        return super().get_queryset(request).order_by("-id")


@admin.register(Result)
class ResultAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["remote_filename", "job", "size", "created"]
    search_fields = ["remote_filename", "job__title"]
    list_select_related = ["job"]
    raw_id_fields = ["job"]
    readonly_fields = ["size", "checksum", "created", "modified"]

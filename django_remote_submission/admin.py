"""Admin pages for the models and the operators' overview; actions run, cancel, check (no logic)."""

from __future__ import annotations

import shlex
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from django_remote_submission import scheduling
from django_remote_submission.diagnostics import check_and_record_server
from django_remote_submission.exceptions import LoginRefused, RemoteSubmissionError
from django_remote_submission.logins import check_login, check_server_login
from django_remote_submission.logstream import LogPolicy
from django_remote_submission.models import Interpreter, Job, Log, Overview, Result, Server
from django_remote_submission.overview import overview
from django_remote_submission.tasks import cancel_job, enqueue_submission
from django_remote_submission.transport.hostkeys import HostKey
from django_remote_submission.transport.ssh import fetch_host_key
from django_remote_submission.views import log_context
from django_remote_submission.where import duration_text

ACTION_TEMPLATE = "admin/django_remote_submission/action_form.html"


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


class CredentialsForm(forms.Form):
    username = forms.CharField(
        required=False,
        help_text=_("The SSH login. Blank: the server's default login, else the job owner's."),
    )
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_(
            "Used for this run only, never stored. Blank: the worker's own SSH keys, if the "
            "site grants them to you on the server."
        ),
    )


class ServerCredentialsForm(forms.Form):
    username = forms.CharField(
        required=False,
        help_text=_(
            "The SSH login. Blank: the server's default login, else this web server's user."
        ),
    )
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=_(
            "Used for this test only, never stored. Blank: this web server's SSH keys, if "
            "the site grants them to you on the server."
        ),
    )


class SubmitForm(CredentialsForm):
    timeout = forms.FloatField(
        required=False, min_value=0.001, help_text=_("Seconds before the job is stopped.")
    )
    log_policy = forms.TypedChoiceField(
        label=_("Output"),
        choices=[
            (LogPolicy.LOG_LIVE.value, _("Store each line as it comes (live)")),
            (LogPolicy.LOG_TOTAL.value, _("Store all of it when the program ends")),
            (LogPolicy.LOG_NONE.value, _("Store none of it")),
        ],
        coerce=int,
        initial=LogPolicy.LOG_LIVE.value,
    )
    store_results = forms.CharField(
        required=False,
        help_text=_("Result patterns separated by spaces, e.g. *.txt !tmp*. Blank: every file."),
    )
    remote = forms.BooleanField(
        required=False, initial=True, help_text=_("Untick to run on the worker host itself.")
    )

    def options(self) -> dict[str, Any]:
        data = self.cleaned_data
        patterns = data["store_results"].split()
        return {
            "username": data["username"] or None,
            "password": data["password"] or None,
            "timeout": data["timeout"],
            "log_policy": data["log_policy"],
            "store_results": patterns or None,
            "remote": data["remote"],
        }


def _action_page(
    modeladmin: admin.ModelAdmin,  # type: ignore[type-arg]
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    action: str,
    title: str,
    explanation: str,
    submit_label: str,
    form: forms.Form | None = None,
    items: list[str] | None = None,
) -> TemplateResponse:
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.model._meta,
        "title": title,
        "explanation": explanation,
        "submit_label": submit_label,
        "queryset": queryset,
        "items": items if items is not None else [str(obj) for obj in queryset],
        "action": action,
        "form": form,
    }
    return TemplateResponse(request, ACTION_TEMPLATE, context)


@admin.register(Interpreter)
class InterpreterAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = InterpreterForm
    list_display = ["name", "path", "arguments", "modified"]
    search_fields = ["name", "path"]


@admin.register(Server)
class ServerAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "title",
        "hostname",
        "port",
        "username",
        "scheduler",
        "has_pinned_key",
        "modified",
    ]
    list_filter = ["scheduler"]
    search_fields = ["title", "hostname"]
    filter_horizontal = ["interpreters", "allowed_users", "allowed_groups"]
    fieldsets = (
        (None, {"fields": ("title", "hostname", "port", "username", "host_key", "interpreters")}),
        (
            _("Batch scheduler"),
            {
                "classes": ("collapse",),
                "description": _(
                    "By default jobs start directly on the machine the app logs in to. "
                    "Pick Slurm or PBS to submit them through its batch scheduler instead, "
                    "with these defaults and limits; a job asking for more is refused "
                    "before it is submitted."
                ),
                "fields": (
                    "scheduler",
                    ("scheduler_partition", "scheduler_account", "scheduler_qos"),
                    "scheduler_time_limit",
                    "scheduler_directives",
                    "scheduler_allowed_options",
                    ("max_cpus", "max_memory_mb", "max_gpus", "max_nodes"),
                    "max_time_limit",
                    "scheduler_poll_interval",
                ),
            },
        ),
        (
            _("Who may use the worker's credentials"),
            {"fields": ("allowed_users", "allowed_groups")},
        ),
    )

    actions = ["test_connection", "pin_host_key"]

    @admin.display(boolean=True, description=_("host key pinned"))
    def has_pinned_key(self, obj: Server) -> bool:
        return bool(obj.host_key)

    @admin.action(description=_("Test connection"), permissions=["change"])
    def test_connection(
        self, request: HttpRequest, queryset: QuerySet[Server]
    ) -> TemplateResponse | None:
        form = ServerCredentialsForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return _action_page(
                self,
                request,
                queryset,
                action="test_connection",
                title=str(_("Test connection")),
                explanation=str(
                    _(
                        "Connect, show the host key, log in, run `true` and look for each "
                        "interpreter, on:"
                    )
                ),
                submit_label=str(_("Test")),
                form=form,
            )
        username = form.cleaned_data["username"] or None
        password = form.cleaned_data["password"] or None
        for server in queryset:
            # The test logs in and runs commands: the same login policy as a job's.
            try:
                check_server_login(request.user, server, username=username, password=password)
            except LoginRefused as exc:
                self.message_user(request, f"{server}: {exc}", messages.ERROR)
                continue
            report = check_and_record_server(server, username=username, password=password)
            self.message_user(
                request, str(report), messages.SUCCESS if report.ok else messages.ERROR
            )
        return None

    @admin.action(description=_("Pin host key"), permissions=["change"])
    def pin_host_key(
        self, request: HttpRequest, queryset: QuerySet[Server]
    ) -> TemplateResponse | None:
        if "apply" in request.POST:
            for server in queryset:
                line = request.POST.get(f"key-{server.pk}", "")
                try:
                    key = HostKey.parse(line)
                except ValueError:
                    self.message_user(request, f"{server}: no key to pin.", messages.ERROR)
                    continue
                server.host_key = key.line
                server.save(update_fields=["host_key", "modified"])
                self.message_user(request, f"{server}: pinned {key}.", messages.SUCCESS)
            return None
        items, keys = [], {}
        for server in queryset:
            try:
                key = fetch_host_key(server.hostname, server.port)
            except RemoteSubmissionError as exc:
                items.append(f"{server}: {exc}")
                continue
            keys[server.pk] = key.line
            pinned = HostKey.parse(server.host_key) if server.host_key else None
            change = (
                ""
                if pinned is None
                else (" (already pinned)" if pinned == key else f" (replaces {pinned})")
            )
            items.append(f"{server}: {key}{change}")
        form = forms.Form()
        for pk, line in keys.items():
            form.fields[f"key-{pk}"] = forms.CharField(
                widget=forms.HiddenInput, initial=line, required=False
            )
        return _action_page(
            self,
            request,
            queryset.filter(pk__in=keys),
            action="pin_host_key",
            title=str(_("Pin host key")),
            explanation=str(
                _(
                    "Compare these fingerprints with what the servers' administrators gave you "
                    "before pinning them:"
                )
            ),
            submit_label=str(_("Pin these keys")),
            form=form,
            items=items,
        )


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


#: What a person looks at first: where the job is, how long it took, how it ended.
STATUS_FIELDS = (
    "state",
    "status",
    "queued_at",
    "started_at",
    "finished_at",
    "duration",
    "exit_code",
    "error",
    "scheduler_job_id",
    "scheduler_reason",
    "pending_since",
)
#: What the worker keeps to follow the job: for someone debugging the app, folded away.
#: run_options is left out: it holds the run's secrets, sealed.
INTERNAL_FIELDS = (
    "uuid",
    "remote_pid",
    "remote_pgid",
    "stdout_offset",
    "stderr_offset",
    "heartbeat",
    "cancel_requested_at",
    "task_id",
    "lease_owner",
    "lease_expires",
    "created",
    "modified",
)
RUNTIME_FIELDS = STATUS_FIELDS + INTERNAL_FIELDS


class ResourcesField(forms.JSONField):
    """``Job.resources`` as JSON; left blank, the server's defaults (``{}``)."""

    def to_python(self, value: Any) -> Any:
        found = super().to_python(value)
        return {} if found is None else found


class JobForm(forms.ModelForm):  # type: ignore[type-arg]
    resources = ResourcesField(
        required=False,
        label=_("Resources"),
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=Job._meta.get_field("resources").help_text,
    )

    class Meta:
        model = Job
        fields = [
            "title",
            "owner",
            "server",
            "interpreter",
            "resources",
            "program",
            "remote_directory",
            "remote_filename",
        ]

    def add_error(self, field: str | None, error: Any) -> None:
        # Job.clean checks the job's resources against its server's limits as they are
        # now. Where the form does not edit them (the job was sent, or ended, with them),
        # a limit lowered since must not keep its other fields from being saved.
        if (
            field is None
            and "resources" not in self.fields
            and isinstance(error, ValidationError)
            and hasattr(error, "error_dict")
        ):
            rest = {
                name: errors for name, errors in error.error_dict.items() if name != "resources"
            }
            if not rest:
                return
            error = ValidationError(rest)
        super().add_error(field, error)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = JobForm
    # What fits a 1280 px wide page: the rest is on the job's page.
    list_display = ["id", "title", "state", "owner", "server", "started_at", "duration"]
    list_display_links = ["id", "title"]
    list_filter = ["state", "server", "created"]
    search_fields = ["title", "uuid", "owner__username", "remote_directory", "remote_filename"]
    list_select_related = ["owner", "server"]
    raw_id_fields = ["owner"]
    readonly_fields = RUNTIME_FIELDS
    date_hierarchy = "created"
    inlines = [ResultInline]
    actions = ["submit_to_server", "resubmit", "cancel"]
    fieldsets = (
        (_("Status"), {"fields": STATUS_FIELDS}),
        (None, {"fields": ("title", "owner", "server", "interpreter", "resources", "program")}),
        (_("Remote location"), {"fields": ("remote_directory", "remote_filename")}),
        (_("Internals"), {"fields": INTERNAL_FIELDS, "classes": ("collapse",)}),
    )

    #: Lines of the log shown on the job's page before the live ones.
    log_tail = 200

    @admin.display(description=_("duration"))
    def duration(self, obj: Job) -> str:
        if obj.started_at is None:
            return "-"
        end = obj.finished_at or timezone.now()
        return duration_text((end - obj.started_at).total_seconds())

    def get_fieldsets(self, request: HttpRequest, obj: Job | None = None) -> Any:
        if obj is None:  # a new job has no status yet
            return self.fieldsets[1:3]
        return self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> Any:
        if obj is not None and obj.is_finished:
            # An ended job is a record of what ran: only its name may change.
            editable = [field.name for field in Job._meta.fields if field.name != "title"]
            return (*RUNTIME_FIELDS, *(name for name in editable if name not in RUNTIME_FIELDS))
        if obj is not None and obj.state != Job.State.QUEUED:
            # What it asked its scheduler for was sent with it.
            return (*RUNTIME_FIELDS, "resources")
        return RUNTIME_FIELDS

    def save_model(self, request: HttpRequest, obj: Job, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Only what the form changed: the worker writes the other fields meanwhile
        # (offsets, lease, state), and a full save would put back the values the form read.
        changed = [name for name in form.changed_data if name in form.fields]
        if changed:
            obj.save(update_fields=changed)

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "<path:object_id>/cancel/",
                self.admin_site.admin_view(require_POST(self.cancel_view)),
                name=f"{name}_cancel",
            ),
            *super().get_urls(),
        ]

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        job = self.get_object(request, object_id)
        if job is None:
            raise Http404
        if not self.has_change_permission(request, job):
            raise PermissionDenied
        if cancel_job(job.pk):
            self.message_user(request, _("Asked the job to stop."), messages.SUCCESS)
        else:
            self.message_user(request, _("The job had already ended."), messages.WARNING)
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:{self.opts.app_label}_job_change", args=[job.pk])
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        if not str(object_id).isdigit():
            return super().change_view(request, object_id, form_url, extra_context)
        context = {**log_context(int(object_id), tail=self.log_tail), **(extra_context or {})}
        job = self.get_object(request, object_id)
        if job is not None and not job.is_finished and self.has_change_permission(request, job):
            context["cancel_url"] = reverse(
                f"{self.admin_site.name}:{self.opts.app_label}_job_cancel", args=[job.pk]
            )
        return super().change_view(request, object_id, form_url, context)

    def _submit(
        self, request: HttpRequest, queryset: QuerySet[Job], *, copy: bool
    ) -> TemplateResponse | None:
        action = "resubmit" if copy else "submit_to_server"
        form = SubmitForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return _action_page(
                self,
                request,
                queryset,
                action=action,
                title=str(_("Submit to server") if not copy else _("Run a copy")),
                explanation=str(
                    _("Run these jobs:") if not copy else _("Run a new copy of these jobs:")
                ),
                submit_label=str(_("Run these jobs") if not copy else _("Run the copies")),
                form=form,
            )
        options = form.options()
        sent = 0
        for job in queryset:
            if not copy and job.status == Job.STATUS.submitted:
                self.message_user(request, f"{job} is running: skipped.", messages.WARNING)
                continue
            # What its server's scheduler would refuse is refused here, before it is sent.
            problems = scheduling.resource_problems(job.server, job.resources, options["timeout"])
            if problems:
                self.message_user(request, f"{job}: {' '.join(problems)}", messages.ERROR)
                continue
            try:
                check_login(
                    request.user,
                    job,
                    username=options["username"],
                    password=options["password"],
                    remote=options["remote"],
                )
            except LoginRefused as exc:
                self.message_user(request, f"{job}: {exc}", messages.ERROR)
                continue
            target = job.duplicate() if copy else job
            enqueue_submission(target.pk, **options)
            sent += 1
        if sent:
            self.message_user(
                request,
                ngettext("Successfully submitted %d job.", "Successfully submitted %d jobs.", sent)
                % sent,
            )
        else:
            self.message_user(request, _("No job was submitted."), messages.WARNING)
        return None

    @admin.action(description=_("Submit to server"), permissions=["change"])
    def submit_to_server(
        self, request: HttpRequest, queryset: QuerySet[Job]
    ) -> TemplateResponse | None:
        return self._submit(request, queryset, copy=False)

    @admin.action(description=_("Run a copy (resubmit)"), permissions=["add"])
    def resubmit(self, request: HttpRequest, queryset: QuerySet[Job]) -> TemplateResponse | None:
        return self._submit(request, queryset, copy=True)

    @admin.action(description=_("Cancel"), permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        asked = sum(1 for job in queryset if cancel_job(job.pk))
        self.message_user(
            request, ngettext("Asked %d job to stop.", "Asked %d jobs to stop.", asked) % asked
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


@admin.register(Overview)
class OverviewAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The operators' page: is anything stuck? Staff who may view jobs see it; those who
    may change servers also test them from it."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and user.has_perm(_perm("view_job")))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("", view(self.overview_view), name=f"{name}_changelist"),
            path("data/", view(self.data_view), name=f"{name}_data"),
            path(
                "servers/<int:server_id>/test/",
                view(require_POST(self.test_now_view)),
                name=f"{name}_test",
            ),
        ]

    def _url(self, name: str, *args: Any) -> str:
        return reverse(
            f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_{name}",
            args=args,
        )

    def _data(self) -> dict[str, Any]:
        site = self.admin_site.name
        return overview(
            lambda pk: reverse(f"{site}:django_remote_submission_job_change", args=[pk])
        )

    def _check_view(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    def overview_view(self, request: HttpRequest) -> TemplateResponse:
        self._check_view(request)
        data = self._data()
        can_test = request.user.has_perm(_perm("change_server"))
        for server in data["servers"]:
            server["test_url"] = self._url("test", server["id"]) if can_test else ""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Operators' overview"),
            "data": data,
            "data_url": self._url("data"),
            "changelist_url": reverse(
                f"{self.admin_site.name}:django_remote_submission_job_changelist"
            ),
        }
        return TemplateResponse(request, "admin/django_remote_submission/overview.html", context)

    def data_view(self, request: HttpRequest) -> JsonResponse:
        self._check_view(request)
        return JsonResponse(self._data())  # admin_view makes it never cached

    def test_now_view(self, request: HttpRequest, server_id: int) -> HttpResponseRedirect:
        self._check_view(request)
        if not request.user.has_perm(_perm("change_server")):
            raise PermissionDenied
        server = get_object_or_404(Server, pk=server_id)
        # The same test, and the same login policy, as the Test connection action's,
        # with the worker's own credentials: the page asks for no password.
        try:
            check_server_login(request.user, server)
        except LoginRefused as exc:
            self.message_user(request, f"{server}: {exc}", messages.ERROR)
        else:
            report = check_and_record_server(server)
            self.message_user(
                request, str(report), messages.SUCCESS if report.ok else messages.ERROR
            )
        return HttpResponseRedirect(self._url("changelist"))


def _perm(codename: str) -> str:
    return f"django_remote_submission.{codename}"

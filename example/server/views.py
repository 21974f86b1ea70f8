"""The example's pages: the live job list (/example/), a new-job form, the job page
(/logs/<pk>/) with its live log, results and a cancel button."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import FormView

from django_remote_submission.conf import conf
from django_remote_submission.exceptions import LoginRefused
from django_remote_submission.logins import check_login
from django_remote_submission.models import Interpreter, Job, Server
from django_remote_submission.results import natural_key
from django_remote_submission.tasks import cancel_job, enqueue_submission
from django_remote_submission.views import log_context
from django_remote_submission.where import with_last_output
from server.forms import NewJobForm
from server.sample import SAMPLE_PROGRAM


def visible_jobs(request: HttpRequest) -> QuerySet[Job]:
    """The jobs a user may see: their own, or everyone's with the view_job permission, as
    in the app's API and admin."""
    return Job.objects.visible_to(request.user).select_related("server", "interpreter", "owner")


def may_cancel(request: HttpRequest, job: Job) -> bool:
    """Owners cancel their jobs; anyone else needs change_job, as in the API and admin."""
    return job.owner_id == request.user.pk or request.user.has_perm(
        "django_remote_submission.change_job"
    )


def run_options(*, password: str = "", username: str = "") -> dict[str, Any]:
    """How the worker logs in. Without a password, with EXAMPLE_REMOTE_KEY_FILENAME when
    one is set, else with its own keys or ssh-agent."""
    options: dict[str, Any] = {"username": username or settings.EXAMPLE_REMOTE_USER or None}
    if password:
        options["password"] = password
    elif settings.EXAMPLE_REMOTE_KEY_FILENAME:
        options["public_key_filename"] = settings.EXAMPLE_REMOTE_KEY_FILENAME
    return options


def example_server() -> tuple[Server, Interpreter]:
    """The server and interpreter of the 2.x "Create a Test Job" button, from the settings."""
    interpreter, _ = Interpreter.objects.get_or_create(
        name="python3",
        defaults={
            "path": settings.EXAMPLE_PYTHON_PATH,
            "arguments": settings.EXAMPLE_PYTHON_ARGUMENTS,
        },
    )
    server = Server.objects.filter(
        hostname=settings.EXAMPLE_SERVER_HOSTNAME, port=settings.EXAMPLE_SERVER_PORT
    ).first()
    if server is None:
        server = Server.objects.create(
            title="Example Server",
            hostname=settings.EXAMPLE_SERVER_HOSTNAME,
            port=settings.EXAMPLE_SERVER_PORT,
            host_key=settings.EXAMPLE_SERVER_HOST_KEY,
        )
    server.interpreters.add(interpreter)
    return server, interpreter


class ExampleJobStatusView(LoginRequiredMixin, View):
    """/example/: your jobs with their status kept live, and a "Create a test job" button."""

    def get(self, request: HttpRequest) -> HttpResponse:
        context = {
            "jobs": with_last_output(list(visible_jobs(request).order_by("-modified", "-id")[:50])),
            "socket": f"{conf.WEBSOCKET_PREFIX}job-user/",
            "link": reverse("logs", args=[0]).replace("/0/", "/{id}/"),
        }
        return render(request, "example_job_status.html", context)

    def post(self, request: HttpRequest) -> HttpResponse:
        server, interpreter = example_server()
        count = Job.objects.filter(owner_id=request.user.pk).count()
        job = Job(
            title=f"Example Job #{count + 1}",
            program=SAMPLE_PROGRAM,
            remote_directory=settings.EXAMPLE_REMOTE_DIRECTORY,
            remote_filename=settings.EXAMPLE_REMOTE_FILENAME,
            owner=request.user,
            server=server,
            interpreter=interpreter,
        )
        options = run_options(password=settings.EXAMPLE_REMOTE_PASSWORD)
        try:
            # EXAMPLE_REMOTE_PASSWORD is the site's secret, not one the user gave: to the
            # policy it is the worker's own credentials, like the key file.
            check_login(request.user, job, username=options["username"])
        except LoginRefused as exc:
            messages.error(request, str(exc))
            return redirect("example")
        job.save()
        enqueue_submission(job.pk, **options)
        # Info, worded to stay true whatever the job does next; the job page hides it
        # once the job fails, so that it never sits above a failure.
        messages.info(
            request,
            f"{job.title} was submitted: it runs for about 10 seconds, and this page follows it.",
            extra_tags="submitted",
        )
        return redirect("logs", job_pk=job.pk)  # its live page


class NewJobView(LoginRequiredMixin, FormView):  # type: ignore[type-arg]
    """/jobs/new/: any program, on any server and interpreter."""

    template_name = "job_form.html"
    form_class = NewJobForm

    def form_valid(self, form: NewJobForm) -> HttpResponse:
        job = form.save(commit=False)
        job.owner = self.request.user
        options = run_options(
            password=form.cleaned_data["password"], username=form.cleaned_data["username"]
        )
        try:
            check_login(
                self.request.user,
                job,
                username=options["username"],
                password=options.get("password"),
                key_filename=options.get("public_key_filename"),
            )
        except LoginRefused as exc:
            form.add_error(None, str(exc))
            return self.form_invalid(form)
        job.save()
        enqueue_submission(job.pk, **options)
        messages.info(
            self.request,
            f"{job.title} was submitted: this page follows it.",
            extra_tags="submitted",
        )
        return redirect("logs", job_pk=job.pk)


class ExampleJobLogView(LoginRequiredMixin, View):
    """/logs/<pk>/: the job, its log live, its results, and a cancel button."""

    def get(self, request: HttpRequest, job_pk: int) -> HttpResponse:
        job = get_object_or_404(visible_jobs(request), pk=job_pk)
        context = {
            "job": job,
            "results": sorted(job.results.all(), key=lambda r: natural_key(r.remote_filename)),
            "results_api": reverse("result-list") + f"?job={job.pk}",
            "may_cancel": may_cancel(request, job),
            **log_context(job.pk),
        }
        return render(request, "example_job_log.html", context)


class CancelJobView(LoginRequiredMixin, View):
    """POST /logs/<pk>/cancel/: stop the job's program on its server."""

    def post(self, request: HttpRequest, job_pk: int) -> HttpResponse:
        job = get_object_or_404(visible_jobs(request), pk=job_pk)
        if not may_cancel(request, job):
            raise PermissionDenied("You may read this job, not cancel it.")
        if cancel_job(job.pk):
            messages.info(request, "Cancel requested: the program gets TERM, then KILL.")
        else:
            messages.warning(request, "The job had already ended.")
        return redirect("logs", job_pk=job.pk)

"""The example's pages: the live job list (/example/), a new-job form, the job page
(/logs/<pk>/) with its live log, results and a cancel button."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import FormView

from django_remote_submission.conf import conf
from django_remote_submission.models import Interpreter, Job, Server
from django_remote_submission.tasks import cancel_job, submit_job_to_server
from django_remote_submission.views import log_context
from server.forms import NewJobForm
from server.sample import SAMPLE_PROGRAM


def visible_jobs(request: HttpRequest) -> QuerySet[Job]:
    """The jobs a user may see: their own; staff see everyone's, as in the app's API."""
    jobs = Job.objects.select_related("server", "interpreter", "owner")
    if request.user.is_staff:
        return jobs
    return jobs.filter(owner_id=request.user.pk)


def submit(job: Job, *, password: str = "", username: str = "") -> None:
    """Queue the job. Without a password, the worker logs in with EXAMPLE_REMOTE_KEY_FILENAME
    when one is set, else with its own keys or ssh-agent."""
    options: dict[str, Any] = {"username": username or settings.EXAMPLE_REMOTE_USER or None}
    if password:
        options["password"] = password
    elif settings.EXAMPLE_REMOTE_KEY_FILENAME:
        options["public_key_filename"] = settings.EXAMPLE_REMOTE_KEY_FILENAME
    submit_job_to_server.delay(job_pk=job.pk, **options)


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
            "jobs": visible_jobs(request).order_by("-modified", "-id")[:50],
            "socket": f"{conf.WEBSOCKET_PREFIX}job-user/",
            "link": reverse("logs", args=[0]).replace("/0/", "/{id}/"),
        }
        return render(request, "example_job_status.html", context)

    def post(self, request: HttpRequest) -> HttpResponse:
        server, interpreter = example_server()
        count = Job.objects.filter(owner_id=request.user.pk).count()
        job = Job.objects.create(
            title=f"Example Job #{count + 1}",
            program=SAMPLE_PROGRAM,
            remote_directory=settings.EXAMPLE_REMOTE_DIRECTORY,
            remote_filename=settings.EXAMPLE_REMOTE_FILENAME,
            owner=request.user,
            server=server,
            interpreter=interpreter,
        )
        submit(job, password=settings.EXAMPLE_REMOTE_PASSWORD)
        messages.success(request, f"{job.title} is submitted: it runs for about 10 seconds.")
        return redirect("example")


class NewJobView(LoginRequiredMixin, FormView):  # type: ignore[type-arg]
    """/jobs/new/: any program, on any server and interpreter."""

    template_name = "job_form.html"
    form_class = NewJobForm

    def form_valid(self, form: NewJobForm) -> HttpResponse:
        job = form.save(commit=False)
        job.owner = self.request.user
        job.save()
        submit(job, password=form.cleaned_data["password"], username=form.cleaned_data["username"])
        messages.success(self.request, f"{job.title} is submitted.")
        return redirect("logs", job_pk=job.pk)


class ExampleJobLogView(LoginRequiredMixin, View):
    """/logs/<pk>/: the job, its log live, its results, and a cancel button."""

    def get(self, request: HttpRequest, job_pk: int) -> HttpResponse:
        job = get_object_or_404(visible_jobs(request), pk=job_pk)
        context = {
            "job": job,
            "results": job.results.order_by("remote_filename"),
            "results_api": reverse("result-list") + f"?job={job.pk}",
            **log_context(job.pk),
        }
        return render(request, "example_job_log.html", context)


class CancelJobView(LoginRequiredMixin, View):
    """POST /logs/<pk>/cancel/: stop the job's program on its server."""

    def post(self, request: HttpRequest, job_pk: int) -> HttpResponse:
        job = get_object_or_404(visible_jobs(request), pk=job_pk)
        if cancel_job(job.pk):
            messages.info(request, "Cancel requested: the program gets TERM, then KILL.")
        else:
            messages.warning(request, "The job had already ended.")
        return redirect("logs", job_pk=job.pk)

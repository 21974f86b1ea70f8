"""Pages of the app: the 2.x job-user-status page, the whole log as a file, and the context
of the live-log template."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, reverse
from django.views import View
from django.views.generic import TemplateView

from django_remote_submission.conf import conf
from django_remote_submission.models import Job, Log
from django_remote_submission.where import with_last_output


def log_context(job_pk: int, *, tail: int = 200) -> dict[str, Any]:
    """What ``django_remote_submission/log.html`` needs to show a job's log live.

    ``logs`` are the last ``tail`` rows, oldest first; ``since`` is the id of the last of
    them, where the websocket resumes; ``omitted`` counts the earlier rows left out;
    ``last_output`` is the time of the last row, for the line that says where the job is;
    ``download`` and ``earlier`` are the addresses of the whole log and of the API's
    ``logs`` action (None when the project did not include the app's URLs).
    """
    logs = Log.objects.filter(job_id=job_pk).order_by("-id")
    rows = list(logs[:tail])[::-1]
    return {
        "logs": rows,
        "since": rows[-1].pk if rows else 0,
        "omitted": max(0, logs.count() - len(rows)) if len(rows) == tail else 0,
        "last_output": rows[-1].time if rows else None,
        "socket": f"{conf.WEBSOCKET_PREFIX}job-log/{job_pk}/",
        "download": app_url("job-log-download", job_pk),
        "earlier": app_url("job-logs", job_pk),
    }


def app_url(name: str, *args: Any) -> str | None:
    """The address of one of the app's routes, included with their global names or under
    the ``remote_submission`` namespace (``urls.namespaced``); None if neither."""
    for candidate in (name, f"remote_submission:{name}"):
        try:
            return reverse(candidate, args=args)
        except NoReverseMatch:
            continue
    return None


#: Rows read per query when a whole log is streamed.
DOWNLOAD_CHUNK = 2000


def log_lines(job_pk: int, chunk: int = DOWNLOAD_CHUNK) -> Iterator[str]:
    """A job's log rows in order, read ``chunk`` rows at a time by id: however long the
    log, no more than one chunk is in memory."""
    last = 0
    while True:
        rows = list(
            Log.objects.filter(job_id=job_pk, id__gt=last)
            .order_by("id")
            .values_list("id", "content")[:chunk]
        )
        if not rows:
            return
        yield "".join(content for _, content in rows)
        last = rows[-1][0]


class JobLogDownloadView(LoginRequiredMixin, View):
    """The whole log of a job as a text file, streamed from the database. Its owner's,
    or a user's with ``view_job``; anyone else gets 404, as in the REST API."""

    def get(self, request: HttpRequest, job_pk: int) -> StreamingHttpResponse:
        job = get_object_or_404(Job.objects.visible_to(request.user), pk=job_pk)
        response = StreamingHttpResponse(
            log_lines(job.pk), content_type="text/plain; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="job-{job.pk}-log.txt"'
        return response


class JobUserStatusView(LoginRequiredMixin, TemplateView):
    """The user's latest jobs, their status kept live over the job-user websocket."""

    template_name = "django_remote_submission/job-user-status.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        jobs = Job.objects.filter(owner_id=self.request.user.pk).order_by("-modified", "-id")
        jobs = jobs.select_related("server")  # the where line names a job's batch scheduler
        context["jobs"] = with_last_output(list(jobs[:10]))
        context["socket"] = f"{conf.WEBSOCKET_PREFIX}job-user/"
        return context

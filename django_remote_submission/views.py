"""Pages of the app: the 2.x job-user-status page, and the context of the live-log template."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.views.generic import TemplateView

from django_remote_submission.conf import conf
from django_remote_submission.models import Job, Log


def log_context(job_pk: int, *, tail: int = 200) -> dict[str, Any]:
    """What ``django_remote_submission/log.html`` needs to show a job's log live.

    ``logs`` are the last ``tail`` rows, oldest first; ``since`` is the id of the last of
    them, where the websocket resumes; ``omitted`` counts the earlier rows left out.
    """
    logs = Log.objects.filter(job_id=job_pk).order_by("-id")
    rows = list(logs[:tail])[::-1]
    return {
        "logs": rows,
        "since": rows[-1].pk if rows else 0,
        "omitted": max(0, logs.count() - len(rows)) if len(rows) == tail else 0,
        "socket": f"{conf.WEBSOCKET_PREFIX}job-log/{job_pk}/",
    }


class JobUserStatusView(LoginRequiredMixin, TemplateView):
    """The user's latest jobs, their status kept live over the job-user websocket."""

    template_name = "django_remote_submission/job-user-status.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        jobs = Job.objects.filter(owner_id=self.request.user.pk).order_by("-modified", "-id")
        context["jobs"] = jobs[:10]
        context["socket"] = f"{conf.WEBSOCKET_PREFIX}job-user/"
        return context

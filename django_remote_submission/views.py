"""Pages of the app: the 2.x job-user-status page."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin
from django.views.generic import TemplateView

from django_remote_submission.conf import conf
from django_remote_submission.models import Job


class JobUserStatusView(LoginRequiredMixin, TemplateView):
    """The user's latest jobs, their status kept live over the job-user websocket."""

    template_name = "django_remote_submission/job-user-status.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        jobs = Job.objects.filter(owner_id=self.request.user.pk).order_by("-modified", "-id")
        context["jobs"] = jobs[:10]
        context["socket"] = f"{conf.WEBSOCKET_PREFIX}job-user/"
        return context

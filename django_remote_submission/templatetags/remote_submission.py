"""Template tags of the app: ``{% load remote_submission %}``."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils.safestring import SafeString

from django_remote_submission.models import Job
from django_remote_submission.where import where_html

register = template.Library()


@register.simple_tag
def job_where(job: Job, last_output: dt.datetime | None = None) -> SafeString:
    """Where the job is, as one live line: ``{% job_where job %}``, or with the time of
    its last output, ``{% job_where job last_output %}`` (else ``job.last_output``, which
    ``where.with_last_output`` sets)."""
    if not isinstance(last_output, dt.datetime):  # a missing variable renders as ""
        last_output = getattr(job, "last_output", None)
    return where_html(job, last_output=last_output, waiting=getattr(job, "waiting", None))


@register.filter
def shown_status(job: Job) -> str:
    """The status a page shows: 2.x's, except that a canceled job (status ``failure``)
    says ``canceled``, and one waiting at its batch scheduler (status ``submitted``)
    ``pending``: ``{{ job|shown_status }}``."""
    if job.state in (Job.State.CANCELED, Job.State.PENDING):
        return str(job.state)
    return job.status

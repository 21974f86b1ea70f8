"""Tasks that exist only to prove the worker fixture runs real tasks."""

from celery import shared_task

from django_remote_submission.models import Job


@shared_task(name="tests.count_jobs_of")
def count_jobs_of(username: str, offset: int) -> int:
    return Job.objects.filter(owner__username=username).count() + offset

"""The life of a job: each change of its status is a conditional update that one actor
wins (a worker ending it, a cancel, a new run), and the rules of canceling."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from django.db import router
from django.db.models import Q
from django.db.models.signals import post_save
from django.utils import timezone

from django_remote_submission.logstream import HEARTBEAT_SECONDS
from django_remote_submission.models import Job

logger = logging.getLogger(__name__)

#: Statuses of a job that has not ended: queued (or never sent), and running.
ACTIVE = (Job.STATUS.initial, Job.STATUS.submitted)
#: A running job whose worker has not reported for this long is followed by nobody.
STALE_AFTER = dt.timedelta(seconds=3 * HEARTBEAT_SECONDS)


def transition(job: Job, *, allowed: Iterable[str], where: Q | None = None, **changes: Any) -> bool:
    """Apply ``changes`` to the job's row if its status is one of ``allowed`` (and it
    matches ``where``), in one ``UPDATE``, then send ``post_save`` as a save would; False
    (changing nothing) if another actor moved the job on first. ``job`` gets the changes."""
    changes["modified"] = timezone.now()
    rows = Job.objects.filter(pk=job.pk, status__in=list(allowed))
    updated = (rows.filter(where) if where is not None else rows).update(**changes)
    if not updated:
        return False
    for name, value in changes.items():
        setattr(job, name, value)
    # As Model.save() would: receivers of 2.x projects listen to Job's post_save, and so
    # does the app's own status publisher (events.job_saved).
    post_save.send(
        sender=Job,
        instance=job,
        created=False,
        update_fields=frozenset(changes),
        raw=False,
        using=router.db_for_write(Job, instance=job),
    )
    job.tracker.set_saved_fields()  # a later save() of other fields is no status change
    return True


def begin_run(job_pk: int, task_id: str | None = None) -> None:
    """A new run of the job was sent (or called): it takes the task id, forgets a cancel
    request left from an earlier run, and a job that had ended is queued again, so that
    this run's outcome is its own (``initial`` until a worker launches it)."""
    changes: dict[str, Any] = {"cancel_requested_at": None}
    if task_id is not None:
        changes["task_id"] = task_id
    Job.objects.filter(pk=job_pk).update(**changes)
    job = Job.objects.filter(pk=job_pk, status__in=Job.FINAL_STATUSES).first()
    if job is not None:
        transition(
            job,
            allowed=Job.FINAL_STATUSES,
            status=Job.STATUS.initial,
            exit_code=None,
            error="",
            finished_at=None,
        )


def finish(job: Job, exit_code: int, error: str) -> bool:
    """The run ended with the program's exit code: ``success``, or ``failure`` with the
    reason. False if the job had been ended meanwhile (a cancel found nobody following)."""
    ended = transition(
        job,
        allowed=[Job.STATUS.submitted],
        exit_code=exit_code,
        error=error,
        status=Job.STATUS.success if not error else Job.STATUS.failure,
        finished_at=timezone.now(),
    )
    if not ended:
        job.refresh_from_db()
        logger.warning(
            "Job %s ended with exit code %s, but was %s already: kept that",
            job.pk,
            exit_code,
            job.status,
        )
    return ended


def fail(job: Job, reason: str) -> bool:
    """End a job that has not ended in ``failure`` with a reason a person can read; False
    if it had ended already (that outcome stands)."""
    return transition(
        job,
        allowed=ACTIVE,
        status=Job.STATUS.failure,
        error=reason,
        finished_at=timezone.now(),
    )


def request_cancel(job: Job) -> bool:
    """Ask for the job to stop; False if it had ended already.

    A queued job ends at once, and never runs (the worker that gets its task sees the
    request). A running job is stopped by the worker following it, which looks for the
    request twice a second. A running job that no worker follows any more (its worker
    died) is ended here, with a reason that says its program may still run.
    """
    now = timezone.now()
    Job.objects.filter(pk=job.pk, status__in=ACTIVE, cancel_requested_at__isnull=True).update(
        cancel_requested_at=now
    )
    if transition(
        job,
        allowed=[Job.STATUS.initial],
        status=Job.STATUS.failure,
        error="Canceled before it started.",
        finished_at=now,
    ):
        return True
    job.refresh_from_db()
    if transition(
        job,
        allowed=[Job.STATUS.submitted],
        # Its worker has not reported for a while: nobody will act on the request.
        where=Q(heartbeat__isnull=True) | Q(heartbeat__lt=now - STALE_AFTER),
        status=Job.STATUS.failure,
        error=(
            "Canceled, but no worker was following the job: its program may still "
            f"run on the server as process group {job.remote_pgid}."
        ),
        finished_at=now,
    ):
        return True
    return job.status == Job.STATUS.submitted

"""Signals a project receives to act on a job's output and status.

2.x projects listened to ``post_save`` of ``Log`` to hear of each chunk of output. 3.0
stores a job's lines in batches, with one ``INSERT`` for many rows, and ``post_save`` is
not sent for them. These two signals take its place:

``logs_stored``
    Sent once for each batch of log rows the app stored, after the transaction that
    stored them committed. ``sender`` is :class:`~django_remote_submission.models.Log`;
    the arguments are ``job_id`` (the job's primary key) and ``logs``, the rows as
    ``Log`` instances in the order of their ids (not read again from the database:
    ``log.job`` costs a query, ``log.job_id`` does not). A row saved one at a time with
    ``Log.save()`` (your code, the admin) sends ``post_save`` instead, as before.

``job_status_changed``
    Sent when a job is created and each time its ``status`` or ``state`` changes, after
    the change committed, whoever made it (a worker, the admin, the REST API).
    ``sender`` is :class:`~django_remote_submission.models.Job`; the arguments are
    ``job`` (the instance), ``status`` and ``previous_status`` (2.x's values:
    ``initial``, ``submitted``, ``success``, ``failure``; ``previous_status`` is ``None``
    when the job was just created), and ``state`` and ``previous_state`` (3.0's finer
    states, see :ref:`job-lifecycle`).

A receiver that raises is logged and does not stop the job, nor other receivers. The
signals are sent in the process that made the change, usually a Celery worker: keep
receivers quick, or hand their work to a task.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import router
from django.dispatch import Signal

if TYPE_CHECKING:
    from django_remote_submission.logstream import LogRow
    from django_remote_submission.models import Job

logger = logging.getLogger(__name__)

logs_stored = Signal()
job_status_changed = Signal()


def send_logs_stored(job_pk: int, rows: Sequence[LogRow]) -> None:
    """Send ``logs_stored`` for one job's batch of committed rows (nothing to build when
    no receiver listens)."""
    from django_remote_submission.models import Log

    if not rows or not logs_stored.has_listeners(Log):
        return
    alias = router.db_for_write(Log)
    logs = []
    for row in rows:
        log = Log(id=row.id, job_id=job_pk, time=row.time, content=row.content, stream=row.stream)
        log._state.adding = False
        log._state.db = alias
        logs.append(log)
    _report(logs_stored.send_robust(sender=Log, job_id=job_pk, logs=logs), "logs_stored")


def send_job_status_changed(
    job: Job, status: str, previous_status: str | None, state: str, previous_state: str | None
) -> None:
    from django_remote_submission.models import Job

    if not job_status_changed.has_listeners(Job):
        return
    responses = job_status_changed.send_robust(
        sender=Job,
        job=job,
        status=status,
        previous_status=previous_status,
        state=state,
        previous_state=previous_state,
    )
    _report(responses, "job_status_changed")


def _report(responses: list[tuple[Any, Any]], name: str) -> None:
    for receiver, response in responses:
        if isinstance(response, Exception):
            logger.error(
                "A receiver of %s failed: %r",
                name,
                receiver,
                exc_info=(type(response), response, response.__traceback__),
            )

"""Where a job is, in one line derived from its row, for the pages (see job-where.js)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from django_remote_submission import scheduling
from django_remote_submission.conf import conf
from django_remote_submission.events import iso_time
from django_remote_submission.models import Job, Log, Server, WorkerBeat

State = Job.State

#: A worker is alive while its sweep beat within this many sweep periods: one late pass
#: (a slow database, a server that takes its time to answer) does not make it dead.
ALIVE_PERIODS = 3


def alive_within() -> dt.timedelta:
    """How recent a worker's last sweep must be for it to count as alive (a sweep beats
    once a period, a quarter of the lease)."""
    return dt.timedelta(seconds=ALIVE_PERIODS * conf.LEASE_SECONDS / 4)


def waiting_reason(now: dt.datetime | None = None) -> str:
    """Why a job sent to the broker is still queued, as far as the site can tell: no
    worker has swept lately, or all of them are busy."""
    now = now or timezone.now()
    if WorkerBeat.objects.filter(last_sweep_at__gte=now - alive_within()).exists():
        return _("waiting for a free worker")
    return _("no worker is running: start one (celery worker)")


@dataclass(frozen=True)
class Clock:
    """A span of time in the line, shown as a ``<time>``."""

    seconds: float

    @property
    def text(self) -> str:
        return duration_text(self.seconds)

    @property
    def iso(self) -> str:
        return f"PT{max(0, int(self.seconds))}S"


def duration_text(seconds: float) -> str:
    """``45 s``, ``2 min 3 s``, ``1 h 5 min``, ``2 d 3 h``: to the second while it is
    short, coarser as it grows. job-where.js writes the same."""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _between(start: dt.datetime, end: dt.datetime) -> float:
    return (end - start).total_seconds()


def scheduler_name(job: Job) -> str:
    """The batch scheduler a job not ended yet goes through ("Slurm", "PBS"); "" for a
    direct server, an ended job, or a row without its server (which is not read then)."""
    if job.is_finished:
        return ""
    try:
        server = job.server
    except Server.DoesNotExist:  # a row that has no server yet
        return ""
    kind = scheduling.kind_of(server)
    return kind.name if kind is not None else ""


def _pending_parts(job: Job, now: dt.datetime) -> list[str | Clock]:
    where = {"scheduler": scheduler_name(job) or _("the batch scheduler")}
    parts: list[str | Clock] = [_("Waiting at %(scheduler)s") % where]
    if job.pending_since is not None:
        parts = [
            _("Waiting at %(scheduler)s for ") % where,
            Clock(_between(job.pending_since, now)),
        ]
    if job.scheduler_reason:
        parts.append(": " + job.scheduler_reason)
    return parts


def where_parts(
    job: Job,
    *,
    last_output: dt.datetime | None = None,
    now: dt.datetime | None = None,
    waiting: str | None = None,
) -> list[str | Clock]:
    """The line as text and spans of time, from the job's row alone (plus the time of its
    last log row, for a running job, and why a queued one waits: ``waiting_reason()``
    unless given)."""
    now = now or timezone.now()
    state = job.state
    if state == State.QUEUED:
        if job.queued_at is None:
            return [_("Queued: not sent to a worker yet")]
        return [
            _("Queued for "),
            Clock(_between(job.queued_at, now)),
            ": " + (waiting if waiting is not None else waiting_reason(now)),
        ]
    if state == State.STARTING:
        return [_("Starting: connecting to the server and uploading the program")]
    if state == State.PENDING:
        return _pending_parts(job, now)
    if state == State.RUNNING:
        if job.started_at is None:  # a status set by hand, as 2.x code may
            return [_("Running")]
        parts: list[str | Clock] = [_("Running for "), Clock(_between(job.started_at, now))]
        if last_output is None:
            return [*parts, _("; no output yet")]
        return [*parts, _("; last output "), Clock(_between(last_output, now)), _(" ago")]
    if state == State.FINISHING:
        return [_("Finishing: storing the last output and collecting result files")]
    ended: dict[str, tuple[str, str]] = {
        State.SUCCESS: (_("Succeeded"), _("Succeeded after ")),
        State.FAILURE: (_("Failed before it started"), _("Failed after ")),
        State.CANCELED: (_("Canceled before it started"), _("Canceled after ")),
    }
    without, after = ended.get(state, (str(state), str(state)))
    if job.started_at is None or job.finished_at is None:
        return [without]
    return [after, Clock(_between(job.started_at, job.finished_at))]


def where_text(
    job: Job,
    *,
    last_output: dt.datetime | None = None,
    now: dt.datetime | None = None,
    waiting: str | None = None,
) -> str:
    """The line as plain text: ``Running for 2 min 3 s; last output 4 s ago``."""
    parts = where_parts(job, last_output=last_output, now=now, waiting=waiting)
    return "".join(part.text if isinstance(part, Clock) else part for part in parts)


def where_html(
    job: Job,
    *,
    last_output: dt.datetime | None = None,
    now: dt.datetime | None = None,
    waiting: str | None = None,
) -> SafeString:
    """The line as HTML, each span of time a ``<time>``, in a ``<span data-drs-where>``
    that carries what ``job-where.js`` needs to keep it live: the job's times, its batch
    scheduler and why that holds it, and the server's clock (``data-now``), so that a
    browser whose clock is off still counts right."""
    now = now or timezone.now()
    if waiting is None and job.state == State.QUEUED and job.queued_at is not None:
        waiting = waiting_reason(now)
    parts = where_parts(job, last_output=last_output, now=now, waiting=waiting)
    inner = format_html_join(
        "",
        "{}",
        (
            (
                format_html('<time datetime="{}">{}</time>', part.iso, part.text)
                if isinstance(part, Clock)
                else part,
            )
            for part in parts
        ),
    )
    return format_html(
        '<span class="drs-where drs-where-{}" data-drs-where data-job="{}" data-state="{}" '
        'data-queued-at="{}" data-started-at="{}" data-finished-at="{}" '
        'data-last-output="{}" data-waiting="{}" data-scheduler="{}" data-pending-since="{}" '
        'data-reason="{}" data-now="{}">{}</span>',
        job.state,
        job.pk,
        job.state,
        iso_time(job.queued_at) or "",
        iso_time(job.started_at) or "",
        iso_time(job.finished_at) or "",
        iso_time(last_output) or "",
        waiting or "",
        scheduler_name(job),
        iso_time(job.pending_since) or "",
        job.scheduler_reason,
        iso_time(now) or "",
        inner,
    )


def last_output_time() -> Subquery:
    """An annotation: the time of the job's last log row. It reads one row of the
    (job, id) index backwards, however long the log; the heartbeat would not do, as it
    moves at every store, output or not."""
    return Subquery(Log.objects.filter(job_id=OuterRef("pk")).order_by("-id").values("time")[:1])


def last_outputs(job_pks: Iterable[int]) -> dict[int, dt.datetime]:
    """The time of each job's last log row, in one query: a subquery per job that reads
    one row of the (job, id) index backwards, however long the log."""
    pks = list(job_pks)
    if not pks:
        return {}
    rows = Job.objects.filter(pk__in=pks).annotate(last_output=last_output_time())
    return {pk: when for pk, when in rows.values_list("pk", "last_output") if when is not None}


def with_last_output(jobs: Sequence[Job]) -> Sequence[Job]:
    """Set ``last_output`` on each running job of ``jobs`` (None on the others), and
    ``waiting`` on the queued ones, which the ``job_where`` template tag reads. Only
    running jobs are asked about, and the workers once for all queued ones."""
    found = last_outputs(job.pk for job in jobs if job.state == State.RUNNING)
    if any(job.state == State.QUEUED for job in jobs):
        reason = waiting_reason()
        for job in jobs:
            job.waiting = reason  # type: ignore[attr-defined]
    for job in jobs:
        job.last_output = found.get(job.pk)  # type: ignore[attr-defined]
    return jobs

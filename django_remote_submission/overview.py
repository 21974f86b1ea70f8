"""What the operators' page shows: jobs by state per server, running, pending and stuck
jobs, each server's last connection test, and which workers are alive."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from django_remote_submission.conf import conf
from django_remote_submission.events import iso_time
from django_remote_submission.models import Job, Server, WorkerBeat
from django_remote_submission.where import alive_within, duration_text, last_output_time

#: Rows shown at most in the lists of running, pending and stuck jobs, oldest first.
ROWS_SHOWN = 200

STATES = [state.value for state in Job.State]

JobUrl = Callable[[int], str]


def _ago(now: dt.datetime, value: dt.datetime | None, never: str | None = None) -> str:
    if value is None:
        return never or gettext("never")
    return gettext("%(duration)s ago") % {"duration": duration_text((now - value).total_seconds())}


def state_counts() -> dict[int, dict[str, int]]:
    """``{server pk: {state: number of jobs}}``, in one ``GROUP BY`` query."""
    counts: dict[int, dict[str, int]] = {}
    rows = Job.objects.order_by().values_list("server_id", "state").annotate(n=Count("id"))
    for server_id, state, n in rows:
        counts.setdefault(server_id, {})[state] = n
    return counts


def _job_row(job: Job, job_url: JobUrl, now: dt.datetime, since: str) -> dict[str, Any]:
    """What every list of the page shows of a job, and since when (the time in the
    job's field ``since``, ISO, and how long ago, in words, as ``<since>`` and
    ``waiting``)."""
    at = getattr(job, since)
    return {
        "id": job.pk,
        "title": job.title,
        "url": job_url(job.pk),
        "server": str(job.server.title),
        "owner": job.owner.get_username(),
        since: iso_time(at),
        "waiting": duration_text((now - at).total_seconds()) if at else "",
    }


def running_jobs(now: dt.datetime, job_url: JobUrl) -> list[dict[str, Any]]:
    rows = (
        Job.objects.filter(state=Job.State.RUNNING)
        .annotate(last_output_at=last_output_time())
        .select_related("server", "owner")
        .order_by("started_at", "id")[:ROWS_SHOWN]
    )
    jobs = []
    for job in rows:
        started = job.started_at
        last = job.last_output_at  # type: ignore[attr-defined]
        jobs.append(
            {
                "id": job.pk,
                "title": job.title,
                "url": job_url(job.pk),
                "server": str(job.server.title),
                "owner": job.owner.get_username(),
                "started_at": iso_time(started),
                "duration": duration_text((now - started).total_seconds()) if started else "",
                "last_output_at": iso_time(last),
                "since_output": _ago(now, last, never=gettext("no output yet")),
            }
        )
    return jobs


def pending_jobs(now: dt.datetime, job_url: JobUrl) -> list[dict[str, Any]]:
    """Jobs a batch scheduler holds, and why, longest waiting first."""
    rows = (
        Job.objects.filter(state=Job.State.PENDING)
        .select_related("server", "owner")
        .order_by("pending_since", "id")[:ROWS_SHOWN]
    )
    return [
        {
            **_job_row(job, job_url, now, "pending_since"),
            "scheduler_job_id": job.scheduler_job_id,
            "reason": job.scheduler_reason,
        }
        for job in rows
    ]


def stuck_jobs(now: dt.datetime, job_url: JobUrl) -> list[dict[str, Any]]:
    """Queued jobs whose task was sent longer than STUCK_AFTER ago; a job never sent
    (no ``queued_at``) waits for nobody, so it is not stuck."""
    limit = now - dt.timedelta(seconds=conf.STUCK_AFTER)
    rows = (
        Job.objects.filter(state=Job.State.QUEUED, queued_at__lt=limit)
        .select_related("server", "owner")
        .order_by("queued_at", "id")[:ROWS_SHOWN]
    )
    return [_job_row(job, job_url, now, "queued_at") for job in rows]


def servers(now: dt.datetime) -> list[dict[str, Any]]:
    counts = state_counts()
    rows = []
    for server in Server.objects.order_by("title", "id"):
        by_state = counts.get(server.pk, {})
        rows.append(
            {
                "id": server.pk,
                "title": server.title,
                "address": f"{server.hostname}:{server.port}",
                "counts": {state: by_state.get(state, 0) for state in STATES},
                "last_checked_at": iso_time(server.last_checked_at),
                "last_checked": _ago(now, server.last_checked_at),
                "last_check_ok": server.last_check_ok,
                "last_check_report": server.last_check_report,
            }
        )
    return rows


def workers(now: dt.datetime) -> list[dict[str, Any]]:
    since = now - alive_within()
    return [
        {
            "owner": beat.owner,
            "host": beat.host,
            "pid": beat.pid,
            "started_at": iso_time(beat.started_at),
            "started": _ago(now, beat.started_at),
            "last_sweep_at": iso_time(beat.last_sweep_at),
            "last_sweep": _ago(now, beat.last_sweep_at),
            "jobs_followed": beat.jobs_followed,
            "alive": beat.last_sweep_at >= since,
        }
        for beat in WorkerBeat.objects.order_by("-last_sweep_at", "id")
    ]


def overview(job_url: JobUrl, now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything on the page, as JSON-ready values, the times already in words."""
    now = now or timezone.now()
    beats = workers(now)
    alive = sum(1 for beat in beats if beat["alive"])
    last_sweep = max((beat["last_sweep_at"] for beat in beats), default=None)
    if alive:
        summary = ngettext("%(n)d worker is alive", "%(n)d workers are alive", alive) % {"n": alive}
    else:
        summary = gettext("No worker is alive")
    return {
        "now": iso_time(now),
        "states": STATES,
        "stuck_after": conf.STUCK_AFTER,
        "stuck_after_text": duration_text(conf.STUCK_AFTER),
        "alive": alive,
        "summary": summary,
        "last_sweep_at": last_sweep,
        "last_sweep": _ago(now, dt.datetime.fromisoformat(last_sweep) if last_sweep else None),
        "workers": beats,
        "servers": servers(now),
        "running": running_jobs(now, job_url),
        "pending": pending_jobs(now, job_url),
        "stuck": stuck_jobs(now, job_url),
    }

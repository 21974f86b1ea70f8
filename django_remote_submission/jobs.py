"""The life of a job: every change of its state is a conditional update that one actor wins
(a worker, the sweep, a cancel, a new run), and the leases that say who follows a job."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from django.db import connections, router
from django.db.models import Q, QuerySet
from django.db.models.signals import post_save
from django.utils import timezone

from django_remote_submission.conf import conf
from django_remote_submission.models import Job

logger = logging.getLogger(__name__)

State = Job.State
#: States of a job that has not ended.
ACTIVE = (State.QUEUED, State.STARTING, State.PENDING, State.RUNNING, State.FINISHING)
#: States in which a worker holds the job, under a lease.
OWNED = (State.STARTING, State.PENDING, State.RUNNING, State.FINISHING)
#: Final states, and the 2.x status each keeps.
FINAL: dict[str, str] = {
    State.SUCCESS: Job.STATUS.success,
    State.FAILURE: Job.STATUS.failure,
    State.CANCELED: Job.STATUS.failure,
}
#: Keys of ``Job.run_options`` that hold a sealed secret, erased when the job ends.
SECRET_OPTIONS = ("password", "passphrase")


def new_owner() -> str:
    """A name for one holder of leases: ``host:pid:random``, unique across restarts."""
    return f"{socket.gethostname()[:150]}:{os.getpid()}:{secrets.token_hex(4)}"


def lease_end(now: dt.datetime | None = None) -> dt.datetime:
    return (now or timezone.now()) + dt.timedelta(seconds=conf.LEASE_SECONDS)


def transition(job: Job, *, allowed: Iterable[str], where: Q | None = None, **changes: Any) -> bool:
    """Apply ``changes`` to the job's row if its state is one of ``allowed`` (and it
    matches ``where``), in one ``UPDATE``, then send ``post_save`` as a save would; False
    (changing nothing) if another actor moved the job on first. ``job`` gets the changes."""
    changes["modified"] = timezone.now()
    rows = Job.objects.filter(pk=job.pk, state__in=list(allowed))
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


def _owned_by(owner: str) -> Q:
    return Q(lease_owner=owner)


def _ended(job: Job, state: str, **changes: Any) -> dict[str, Any]:
    """The changes that end a job: its outcome, no lease, and its secrets erased."""
    return {
        "state": state,
        "status": FINAL[state],
        "finished_at": timezone.now(),
        "lease_owner": "",
        "lease_expires": None,
        "run_options": public_options(job.run_options),
        **changes,
    }


def public_options(options: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (options or {}).items() if k not in SECRET_OPTIONS}


# A new run ----------------------------------------------------------------------------


def begin_run(
    job_pk: int, task_id: str | None = None, options: dict[str, Any] | None = None
) -> None:
    """A new run of the job was sent (or called): it takes the task id and the run's
    options (secrets sealed), forgets a cancel request left from an earlier run, and a
    job that had ended is queued again, so that this run's outcome is its own. A job
    that a worker holds now is left alone: its run goes on."""
    changes: dict[str, Any] = {"cancel_requested_at": None, "queued_at": timezone.now()}
    if task_id is not None:
        changes["task_id"] = task_id
    if options is not None:
        changes["run_options"] = options
    Job.objects.filter(pk=job_pk, state__in=[State.QUEUED, *FINAL]).update(**changes)
    job = Job.objects.filter(pk=job_pk, state__in=list(FINAL)).first()
    if job is not None:
        transition(
            job,
            allowed=list(FINAL),
            state=State.QUEUED,
            status=Job.STATUS.initial,
            exit_code=None,
            error="",
            finished_at=None,
        )


def claim(job: Job, owner: str, options: dict[str, Any]) -> bool:
    """A worker takes a queued job to run it: False if another took it first, it was
    canceled, or it is not queued."""
    now = timezone.now()
    return transition(
        job,
        allowed=[State.QUEUED],
        where=Q(cancel_requested_at__isnull=True),
        state=State.STARTING,
        status=Job.STATUS.submitted,
        lease_owner=owner,
        lease_expires=lease_end(now),
        run_options=options,
    )


def launched(job: Job, owner: str, *, pid: int, pgid: int, started_at: dt.datetime) -> bool:
    """The program runs on the server: its process ids, and output from byte 0."""
    return transition(
        job,
        allowed=[State.STARTING],
        where=_owned_by(owner),
        state=State.RUNNING,
        status=Job.STATUS.submitted,
        started_at=started_at,
        finished_at=None,
        exit_code=None,
        error="",
        remote_pid=pid,
        remote_pgid=pgid,
        stdout_offset=0,
        stderr_offset=0,
        heartbeat=started_at,
        lease_expires=lease_end(started_at),
    )


def submitted(job: Job, owner: str, *, scheduler_job_id: str) -> bool:
    """The job waits at its server's batch scheduler, under this id: ``pending`` until
    the scheduler starts its batch script."""
    now = timezone.now()
    return transition(
        job,
        allowed=[State.STARTING],
        where=_owned_by(owner),
        state=State.PENDING,
        status=Job.STATUS.submitted,
        scheduler_job_id=scheduler_job_id,
        scheduler_reason="",
        pending_since=now,
        started_at=None,
        finished_at=None,
        exit_code=None,
        error="",
        remote_pid=None,
        remote_pgid=None,
        stdout_offset=0,
        stderr_offset=0,
        heartbeat=now,
        lease_expires=lease_end(now),
    )


def waiting_because(job: Job, owner: str, reason: str) -> bool:
    """Why the scheduler holds the job, in words, when it changed."""
    if job.scheduler_reason == reason:
        return True
    return transition(
        job,
        allowed=[State.PENDING],
        where=_owned_by(owner),
        scheduler_reason=reason[:300],
    )


def scheduler_started(job: Job, owner: str, started_at: dt.datetime | None = None) -> bool:
    """The scheduler started the job's batch script: its program runs."""
    started_at = started_at or timezone.now()
    return transition(
        job,
        allowed=[State.PENDING],
        where=_owned_by(owner),
        state=State.RUNNING,
        scheduler_reason="",
        started_at=started_at,
        heartbeat=started_at,
        lease_expires=lease_end(started_at),
    )


def finishing(job: Job, owner: str) -> bool:
    """The program has ended; its worker reads what is left and collects results."""
    return transition(
        job, allowed=[State.RUNNING, State.PENDING], where=_owned_by(owner), state=State.FINISHING
    )


# Endings ------------------------------------------------------------------------------


def finish(
    job: Job, exit_code: int | None, error: str, *, owner: str = "", canceled: bool = False
) -> bool:
    """The run ended with the program's exit code: ``success``, or ``failure`` with the
    reason (``canceled`` when a cancel stopped it). False if the job had been ended, or
    taken over, meanwhile: that outcome stands."""
    state = State.CANCELED if canceled else State.SUCCESS if not error else State.FAILURE
    ended = transition(
        job,
        allowed=ACTIVE,
        where=_owned_by(owner) if owner else None,
        **_ended(job, state, exit_code=exit_code, error=error),
    )
    if not ended:
        job.refresh_from_db()
        logger.warning(
            "Job %s ended with exit code %s, but was %s (leased to %r) already: kept that",
            job.pk,
            exit_code,
            job.state,
            job.lease_owner,
        )
    return ended


def fail(
    job: Job, reason: str, *, owner: str = "", canceled: bool = False, reattach: bool = False
) -> bool:
    """End a job that has not ended in ``failure`` (or ``canceled``) with a reason a
    person can read; False if it had ended already, or another worker holds it now.

    ``reattach``: its server stayed away while its program may still run; the sweep
    looks again later, and takes the job up again if the program's control directory
    is still there (see ``reattachable``)."""
    changes = _ended(job, State.CANCELED if canceled else State.FAILURE, error=reason)
    if reattach and not any(job.run_options.get(name) for name in SECRET_OPTIONS):
        # Only a login that needs no secret: the job's secrets are erased as it ends.
        changes["run_options"] = {**changes["run_options"], REATTACH: True}
    return transition(job, allowed=ACTIVE, where=_owned_by(owner) if owner else None, **changes)


#: The mark, in ``run_options``, of a job that failed because its server stayed away.
REATTACH = "reattach"


def reattachable() -> QuerySet[Job]:
    """Jobs that failed because their server stayed away, within REATTACH_WINDOW."""
    since = timezone.now() - dt.timedelta(seconds=conf.REATTACH_WINDOW)
    return Job.objects.filter(
        state=State.FAILURE, finished_at__gte=since, **{f"run_options__{REATTACH}": True}
    )


def reattach(job: Job, owner: str) -> bool:
    """The server of a job that failed while it was away answers again and its program's
    control directory is there: the job runs again, held by ``owner``."""
    return transition(
        job,
        allowed=[State.FAILURE],
        where=Q(**{f"run_options__{REATTACH}": True}),
        state=State.RUNNING,
        status=Job.STATUS.submitted,
        error="",
        finished_at=None,
        lease_owner=owner,
        lease_expires=lease_end(),
        run_options=public_options(job.run_options) | {REATTACH: False},
    )


def forget_reattach(job: Job) -> None:
    """Its control directory is gone: nothing to take up again."""
    Job.objects.filter(pk=job.pk, state=State.FAILURE).update(
        run_options=public_options(job.run_options) | {REATTACH: False}
    )


# Leases -------------------------------------------------------------------------------


def take_over(job: Job, owner: str) -> bool:
    """Hold a job whose worker stopped renewing its lease (it died, or lost its
    database): False if its lease is still live or another actor took it first."""
    now = timezone.now()
    updated = (
        Job.objects.filter(pk=job.pk, state__in=list(OWNED))
        .filter(Q(lease_expires__isnull=True) | Q(lease_expires__lt=now))
        .update(lease_owner=owner, lease_expires=lease_end(now), modified=now)
    )
    if updated:
        job.refresh_from_db()
    return bool(updated)


def renew(owner: str, job_pks: Iterable[int]) -> int:
    """Renew ``owner``'s leases on these jobs (those it still holds): for jobs it holds
    without writing their logs, such as those waiting for a finisher."""
    return Job.objects.filter(
        pk__in=list(job_pks), lease_owner=owner, state__in=list(OWNED)
    ).update(lease_expires=lease_end())


#: Jobs this process holds while nothing writes for them (being staged and launched,
#: waiting for a finisher): pk -> owner. This process's sweep renews their leases
#: (``renew_kept``); a process without a sweep (a prefork pool's child) renews them
#: from a thread of ``keep``'s.
_kept: dict[int, str] = {}
_kept_lock = threading.Lock()
#: The process whose sweep calls ``renew_kept`` (0: none). A pid, not a flag: a pool
#: process forked from the sweeping one inherits the value but not the sweep's thread.
sweep_pid = 0


@contextlib.contextmanager
def keep(job_pk: int, owner: str) -> Iterator[None]:
    """Keep ``owner``'s lease on a job alive for as long as the block runs: staging and
    launching write nothing for the job, and on a slow server take longer than a lease.
    Without it, the sweep took such a job for an orphan and launched it a second time."""
    hold(job_pk, owner)
    stop = threading.Event()
    thread = None
    if sweep_pid != os.getpid():
        thread = threading.Thread(
            target=_renew_until, args=(stop, job_pk, owner), name=f"drs-lease-{job_pk}"
        )
        thread.start()
    try:
        yield
    finally:
        let_go(job_pk)
        stop.set()
        if thread is not None:
            thread.join()


def hold(job_pk: int, owner: str) -> None:
    """Count a job among those ``renew_kept`` renews, until ``let_go``."""
    with _kept_lock:
        _kept[job_pk] = owner


def let_go(job_pk: int) -> None:
    with _kept_lock:
        _kept.pop(job_pk, None)


def kept(owner: str) -> list[int]:
    """The jobs ``owner`` holds in this process without writing for them."""
    with _kept_lock:
        return [pk for pk, held_by in _kept.items() if held_by == owner]


def _renew_until(stop: threading.Event, job_pk: int, owner: str) -> None:
    try:
        while not stop.wait(conf.LEASE_SECONDS / 4):
            renew(owner, [job_pk])
    except Exception:
        logger.warning("Could not renew the lease of job %s", job_pk, exc_info=True)
    finally:
        connections.close_all()


def renew_kept() -> int:
    """The sweep's part of ``keep``: renew the leases of the jobs kept in this process."""
    with _kept_lock:
        kept = dict(_kept)
    renewed = 0
    for owner in set(kept.values()):
        renewed += renew(owner, [pk for pk, held_by in kept.items() if held_by == owner])
    return renewed


def release(owner: str, job_pks: Iterable[int]) -> int:
    """Let go of jobs at once (a worker shutting down): the sweep of any live worker
    takes them over at its next pass instead of waiting for the leases to expire."""
    held = Job.objects.filter(pk__in=list(job_pks), lease_owner=owner, state__in=list(OWNED))
    # No owner any more: a follower of this process that writes once more finds the job
    # gone from it (LeaseLost) and stops.
    return held.update(
        lease_owner=released_by(owner), lease_expires=timezone.now() - dt.timedelta(seconds=1)
    )


def hand_over(job: Job, owner: str) -> bool:
    """The task that launched a job lets go of it for the worker host's follower, which
    takes it over at once (as ``orphaned``), from the stored offsets."""
    return bool(
        Job.objects.filter(pk=job.pk, lease_owner=owner, state__in=list(OWNED)).update(
            lease_owner=released_by(owner), lease_expires=timezone.now() - dt.timedelta(seconds=1)
        )
    )


#: The lease owner of a job let go of on purpose (``hand_over``, ``release``): the
#: host's name, so that a job only that host can reach (``remote=False``) stays there.
RELEASED = "released"


def released_by(owner: str) -> str:
    return f"{owner.split(':', 1)[0]}:{RELEASED}"


def was_released(job: Job) -> bool:
    return job.lease_owner == "" or job.lease_owner.endswith(f":{RELEASED}")


def orphaned() -> QuerySet[Job]:
    """Jobs a worker held whose lease expired: nobody follows them."""
    now = timezone.now()
    return Job.objects.filter(state__in=list(OWNED)).filter(
        Q(lease_expires__isnull=True) | Q(lease_expires__lt=now)
    )


def requeue_lost(now: dt.datetime | None = None) -> list[Job]:
    """Queued jobs whose task has waited longer than QUEUE_GRACE: their message may be
    lost (a Redis without persistence restarted). Each is marked as sent again now, by
    one sweep only; the caller sends it. A duplicate message is harmless: only one
    worker can claim the job."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=conf.QUEUE_GRACE)
    # Only jobs whose task was sent (queued_at): a job made and never submitted is
    # "queued" too, and is nobody's to run.
    waiting = Job.objects.filter(
        state=State.QUEUED, cancel_requested_at__isnull=True, queued_at__lt=cutoff
    ).exclude(task_id="")
    resent = []
    for job in waiting.order_by("pk")[:1000]:
        if Job.objects.filter(pk=job.pk, state=State.QUEUED, queued_at=job.queued_at).update(
            queued_at=now
        ):
            job.queued_at = now
            resent.append(job)
    return resent


# Cancel -------------------------------------------------------------------------------


def request_cancel(job: Job) -> bool:
    """Ask for the job to stop; False if it had ended already.

    A queued job ends at once, and never runs (the worker that gets its task cannot
    claim it). A job a worker holds is stopped by that worker, which looks for the
    request twice a second; one whose worker died is stopped by the worker that takes
    it over (``tasks.cancel_job`` does that at once when the lease has expired).
    """
    now = timezone.now()
    Job.objects.filter(pk=job.pk, state__in=list(ACTIVE), cancel_requested_at__isnull=True).update(
        cancel_requested_at=now
    )
    if transition(
        job,
        allowed=[State.QUEUED],
        **_ended(job, State.CANCELED, error="Canceled before it started."),
    ):
        return True
    job.refresh_from_db()
    return job.state in OWNED

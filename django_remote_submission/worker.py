"""What runs beside each Celery worker: the sweep that takes over jobs nobody follows and
sends lost queued jobs again, and the threads that follow the jobs it took over."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import close_old_connections, connections
from django.utils import timezone

from django_remote_submission import jobs, scheduling
from django_remote_submission.conf import conf
from django_remote_submission.follower import Engine, report_end
from django_remote_submission.models import Job, WorkerBeat
from django_remote_submission.runner import (
    TAKEN_OVER,
    RunOptions,
    build_transport,
    control_directory,
    record_failure,
    resume_job,
)

logger = logging.getLogger(__name__)

#: How many orphaned jobs one pass of the sweep takes over, at most.
TAKE_OVER_PER_PASS = 500
#: Seconds between looks for jobs to take over: a job handed over by the task that
#: launched it waits at most this long for the host's follower.
TAKE_OVER_SECONDS = 0.25


#: A worker whose sweep has not beaten for this long has stopped without saying so:
#: its row goes when another sweep starts.
FORGET_BEATS_AFTER = dt.timedelta(days=1)

REATTACHED = (
    "The server answered again after the job had failed for its absence: following "
    "goes on from the stored offsets."
)

#: Whether this process (or the worker process that forked it) runs the sweep and the
#: followers: its tasks then hand long jobs over to them.
hosting = False

Resend = Callable[[Job], None]
OnEnd = Callable[[Job, "dict[str, int] | None", "BaseException | None"], None]


@dataclass
class Sweep:
    """Every quarter of REMOTE_SUBMISSION_LEASE_SECONDS: take over the jobs whose lease
    expired and follow each in a thread of this process, and send again the queued jobs
    whose task waited longer than REMOTE_SUBMISSION_QUEUE_GRACE. Every worker runs one;
    the conditional updates of ``jobs`` make sure one of them wins each job."""

    resend: Resend
    on_end: OnEnd
    owner: str = field(default_factory=jobs.new_owner)
    passes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _followed: dict[int, threading.Thread] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    engine: Engine | None = None
    started_at: dt.datetime = field(default_factory=timezone.now)
    beats: int = 0

    def start(self) -> None:
        self.started_at = timezone.now()
        self.engine = Engine(self.owner, self.on_end)
        jobs.sweep_pid = os.getpid()
        self._thread = threading.Thread(target=self._loop, name="drs-sweep", daemon=True)
        self._thread.start()
        logger.info("The job sweep runs every %.1f s as %s", conf.LEASE_SECONDS / 4, self.owner)

    def stop(self) -> None:
        """Stop sweeping, and let go of the jobs followed here at once: another worker's
        sweep takes them over at its next pass."""
        self._stop.set()
        jobs.sweep_pid = 0
        with self._lock:
            followed = list(self._followed)
        if self.engine is not None:
            followed += self.engine.stop()
        if followed:
            released = jobs.release(self.owner, followed)
            logger.info("Handed over %d jobs on shutdown", released)
        self._forget_beat()

    def _loop(self) -> None:
        try:
            self._sweep()
        finally:
            # Again here: a pass that was under way as stop() ran may have beaten since.
            self._forget_beat()
            connections.close_all()

    def beat(self) -> None:
        """Tell the operators' page this sweep is alive: one upsert of its row."""
        now = timezone.now()
        followed = len(self.followed) + (self.engine.followed if self.engine else 0)
        if not self.beats:
            WorkerBeat.objects.filter(last_sweep_at__lt=now - FORGET_BEATS_AFTER).delete()
        WorkerBeat.objects.bulk_create(
            [
                WorkerBeat(
                    owner=self.owner,
                    host=socket.gethostname()[:150],
                    pid=os.getpid(),
                    started_at=self.started_at,
                    last_sweep_at=now,
                    jobs_followed=followed,
                )
            ],
            update_conflicts=True,
            unique_fields=["owner"],
            update_fields=["last_sweep_at", "jobs_followed"],
        )
        self.beats += 1

    def _forget_beat(self) -> None:
        try:
            WorkerBeat.objects.filter(owner=self.owner).delete()
        except Exception:
            logger.warning("Could not remove the sweep's beat row", exc_info=True)

    def _sweep(self) -> None:
        next_queue_check = next_reattach = 0.0
        while not self._stop.wait(TAKE_OVER_SECONDS):
            try:
                self.take_over()
                if time.monotonic() >= next_queue_check:
                    next_queue_check = time.monotonic() + conf.LEASE_SECONDS / 4
                    self.beat()
                    self.resend_lost()
                    jobs.renew_kept()
                if time.monotonic() >= next_reattach:
                    next_reattach = time.monotonic() + 3 * conf.LEASE_SECONDS
                    self.reattach_gone()
            except Exception:
                logger.exception("The job sweep failed; it tries again")
                # A database that restarted, say: the next pass connects again. Between
                # passes the connection stays open (one connect a pass would be most of
                # what an idle sweep costs the database).
                close_old_connections()

    def sweep_once(self) -> None:
        self.take_over()
        self.resend_lost()

    def take_over(self) -> None:
        self.passes += 1
        host = socket.gethostname()[:150]
        for job in jobs.orphaned().select_related("server", "interpreter", "owner")[
            :TAKE_OVER_PER_PASS
        ]:
            if self._stop.is_set():
                return
            if job.run_options.get("remote") is False and not job.lease_owner.startswith(
                f"{host}:"
            ):
                continue  # it runs on another worker host, which alone can reach it
            if job.pk in self._followed or (
                self.engine is not None and self.engine.follows(job.pk)
            ):
                continue  # followed here, by a follower that fell behind on its lease
            handed = jobs.was_released(job)
            if jobs.take_over(job, self.owner):
                if not handed:
                    logger.warning("Job %s had no live worker: taking it over", job.pk)
                self._follow(job, taken_over=not handed)

    def reattach_gone(self) -> None:
        """Jobs that failed because their server stayed away: where the server answers
        again and the program's control directory is still there, follow them again."""
        tried: set[int] = set()
        for job in jobs.reattachable().select_related("server", "interpreter", "owner")[:50]:
            if self._stop.is_set() or job.server_id in tried:
                continue
            try:
                options = RunOptions.from_row(job.run_options, task_id=job.task_id)
                with build_transport(job, options) as transport:
                    there = transport.exists(control_directory(job))
            except Exception as exc:
                logger.info("Job %s: its server is still away (%s)", job.pk, exc)
                tried.add(job.server_id)  # one try per server and pass
                continue
            if not there:
                jobs.forget_reattach(job)
                continue
            if jobs.reattach(job, self.owner):
                logger.warning("Job %s: its server answers again; following it again", job.pk)
                self._follow(job, taken_over=False, note=REATTACHED)

    def resend_lost(self) -> None:
        for job in jobs.requeue_lost():
            logger.warning("Job %s waited in the queue too long: sending it again", job.pk)
            self.resend(job)

    def _follow(self, job: Job, *, taken_over: bool = True, note: str = "") -> None:
        launched = job.remote_pgid is not None or (
            scheduling.is_scheduled(job) and bool(job.scheduler_job_id)
        )
        if self.engine is not None and job.state != Job.State.STARTING and launched:
            try:
                self.engine.adopt(job, note=TAKEN_OVER.format(job=job) if taken_over else note)
            except Exception as exc:
                record_failure(job, exc, owner=self.owner)
                self.on_end(job, None, exc)
            return
        # Not launched yet (its worker died while staging): the whole run, in a thread.
        thread = threading.Thread(
            target=self._resume, args=(job,), name=f"drs-job-{job.pk}", daemon=True
        )
        with self._lock:
            self._followed[job.pk] = thread
        thread.start()

    def _resume(self, job: Job) -> None:
        try:
            report_end(job, self.on_end, lambda: resume_job(job, self.owner))
        finally:
            with self._lock:
                self._followed.pop(job.pk, None)

    @property
    def followed(self) -> list[int]:
        with self._lock:
            return list(self._followed)


_sweep: Sweep | None = None


def declare_hosting() -> None:
    """Called as a worker starts, before its pool processes fork: its tasks may hand
    jobs over to the followers its sweep will run."""
    global hosting
    hosting = conf.SWEEP


def start_sweep(*, resend: Resend, on_end: OnEnd) -> Sweep | None:
    """Start this process's sweep (once), unless REMOTE_SUBMISSION_SWEEP is False."""
    global _sweep
    if not conf.SWEEP or _sweep is not None:
        return _sweep
    _sweep = Sweep(resend=resend, on_end=on_end)
    _sweep.start()
    return _sweep


def stop_sweep() -> None:
    global _sweep
    if _sweep is not None:
        _sweep.stop()
        _sweep = None

"""The one status call per (server, login) and interval that asks a scheduler about all
the login's jobs, however many the engine follows there."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django_remote_submission.exceptions import TransportError
from django_remote_submission.schedulers import pbs, slurm
from django_remote_submission.schedulers.base import Ending, QueueEntry, job_name

if TYPE_CHECKING:
    import uuid

    from django_remote_submission.transport.base import CommandResult, Transport

#: The least time between two status calls unless a server sets its own: AiiDA's default,
#: and what cluster admins expect of a polite client.
MIN_INTERVAL = 10.0
#: Seconds a status command may take before it counts as failed: a scheduler in trouble
#: can hang its clients (a squeue with no reachable controller waits minutes).
COMMAND_TIMEOUT = 30.0


@dataclass(frozen=True)
class QueueView:
    """What one status call said. ``known`` is False when it failed or printed what could
    not be read: then nothing is known of any job, and no job is taken as ended."""

    entries: dict[str, QueueEntry]
    known: bool = True
    error: str = ""
    #: The ids the call asked about (PBS's); None: every job of the login (Slurm's).
    asked: frozenset[str] | None = None

    def answers_for(self, job_id: str) -> bool:
        """Whether this view can tell anything of the job (a PBS call made for other
        jobs can't: its silence is not an ending)."""
        return self.known and (self.asked is None or job_id in self.asked)

    def of(self, job_id: str) -> QueueEntry | None:
        """The job's entry; None for a job the scheduler did not list (or when unknown)."""
        return self.entries.get(job_id)

    def named(self, name: str) -> QueueEntry | None:
        """The entry of the job with this name, for a submission that may have happened."""
        return next((entry for entry in self.entries.values() if entry.name == name), None)


@dataclass
class SchedulerQueue:
    """The queue of one login, read at most once per ``min_interval`` seconds: every
    caller within an interval gets the same view. A failed call waits out the interval
    too, so a scheduler in trouble is not asked more often."""

    min_interval: float = MIN_INTERVAL
    user: str | None = None
    #: Environment of the scheduler's commands (``SLURM_CONF`` where a login node serves
    #: several clusters, ``PBS_SERVER``...).
    env: dict[str, str] | None = None
    timeout: float = COMMAND_TIMEOUT
    clock: Callable[[], float] = time.monotonic
    #: Status commands run so far: what the scheduler paid.
    calls: int = 0
    _view: QueueView | None = None
    _at: float = field(default=float("-inf"))
    #: One status call at a time: the engine's followers and runners share the queue.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    #: The scheduler's name, for messages.
    name = "the scheduler"

    def view(
        self, transport: Transport, job_ids: Collection[str] = (), *, fresh: bool = False
    ) -> QueueView:
        """The login's jobs (those of ``job_ids`` at least), from the last call if it is
        recent enough, else from a new one; ``fresh`` asks anew whatever the interval."""
        with self._lock:
            now = self.clock()
            if self._view is not None and not fresh and now - self._at < self.min_interval:
                return self._view
            self._at = now
            self._view = self._status(transport, list(job_ids))
            return self._view

    def age(self) -> float:
        """Seconds since the last status call."""
        return self.clock() - self._at

    def expire(self) -> None:
        """The next ``view`` asks anew (after a cancel, whose outcome is awaited)."""
        self._at = float("-inf")

    def find(self, transport: Transport, job_uuid: uuid.UUID | str) -> str | None:
        """The scheduler's id of the job already submitted for this app job, if any: a
        retry after a worker died or a submission timed out asks this before submitting
        again. Raises when the scheduler cannot say, since "not there" would be a guess."""
        raise NotImplementedError

    def ending(self, transport: Transport, job_id: str) -> Ending:
        """How a job the queue no longer lists ended; ``unknown`` when the scheduler has
        forgotten it or cannot be asked."""
        raise NotImplementedError

    def _status(self, transport: Transport, job_ids: list[str]) -> QueueView:
        raise NotImplementedError

    def _run(self, transport: Transport, argv: list[str]) -> CommandResult | str:
        """The command's result, or why it could not run (a hang, a dropped connection)."""
        self.calls += 1
        try:
            return transport.run(argv, timeout=self.timeout, env=self.env)
        except TransportError as exc:
            return str(exc)

    def _not_found_out(self, error: str) -> TransportError:
        return TransportError(
            f"Could not tell whether the job was submitted to {self.name} already ({error}); "
            "it is not submitted again until that can be read"
        )


@dataclass
class SlurmQueue(SchedulerQueue):
    """Slurm: one ``squeue --me`` lists every job of the login, ended ones too while Slurm
    remembers them; ``job_ids`` are not needed."""

    name = "Slurm"

    def _status(self, transport: Transport, job_ids: list[str]) -> QueueView:
        result = self._run(transport, slurm.squeue_command(self.user))
        if isinstance(result, str):
            return QueueView({}, known=False, error=f"squeue failed: {result}")
        if not result.ok:
            return QueueView({}, known=False, error=f"squeue failed: {result.reason()}")
        try:
            return QueueView(slurm.parse_squeue(result.stdout.decode("utf-8", "replace")))
        except ValueError as exc:
            return QueueView({}, known=False, error=str(exc))

    def find(self, transport: Transport, job_uuid: uuid.UUID | str) -> str | None:
        view = self.view(transport, fresh=True)
        if not view.known:
            raise self._not_found_out(view.error)
        entry = view.named(job_name(job_uuid))
        return entry.job_id if entry is not None else None

    def ending(self, transport: Transport, job_id: str) -> Ending:
        result = self._run(transport, slurm.scontrol_show_job_command(job_id))
        if isinstance(result, str) or not result.ok:
            why = result if isinstance(result, str) else result.reason()
            return Ending("unknown", f"Slurm could not say how job {job_id} ended: {why}")
        try:
            fields = slurm.parse_scontrol_job(result.stdout.decode("utf-8", "replace"))
        except ValueError as exc:
            return Ending("unknown", f"Slurm's account of job {job_id} could not be read: {exc}")
        return slurm.ending_of(fields)


@dataclass
class PbsQueue(SchedulerQueue):
    """PBS: one ``qstat -f -F json -x`` for the engine's jobs on the login, named by id
    (PBS lists a user's jobs in full only that way)."""

    name = "PBS"

    def _status(self, transport: Transport, job_ids: list[str]) -> QueueView:
        if not job_ids:
            return QueueView({})  # nothing to ask about: no call at all
        result = self._run(transport, pbs.qstat_command(job_ids))
        if isinstance(result, str):
            return QueueView({}, known=False, error=f"qstat failed: {result}")
        # qstat exits non-zero when one of the ids is unknown (its history expired) and
        # still prints the others: what it printed counts, if it can be read.
        try:
            return QueueView(
                pbs.parse_qstat_json(result.stdout.decode("utf-8", "replace")),
                asked=frozenset(job_ids),
            )
        except ValueError as exc:
            error = result.reason() if not result.ok else str(exc)
            return QueueView({}, known=False, error=f"qstat failed: {error}")

    def find(self, transport: Transport, job_uuid: uuid.UUID | str) -> str | None:
        result = self._run(transport, pbs.qselect_command(job_uuid, self.user))
        if isinstance(result, str) or not result.ok:
            raise self._not_found_out(result if isinstance(result, str) else result.reason())
        try:
            ids = pbs.parse_qselect(result.stdout.decode("utf-8", "replace"))
        except ValueError as exc:
            raise self._not_found_out(str(exc)) from None
        return ids[-1] if ids else None  # the latest, should a name ever repeat

    def ending(self, transport: Transport, job_id: str) -> Ending:
        view = self._status(transport, [job_id])
        entry = view.of(job_id)
        if entry is not None and entry.ending is not None:
            return entry.ending
        why = view.error or "it no longer lists the job"
        return Ending("unknown", f"PBS could not say how job {job_id} ended: {why}")


#: Views in a row (distinct status calls) that must show a job ended, or no longer list
#: it, before it counts as ended by the scheduler: its exit code, written on a compute
#: node, may reach the login node's view of the shared files a moment after the queue
#: forgot the job.
GONE_VIEWS = 2


@dataclass(frozen=True)
class Verdict:
    """What a new view says of one job: ``gone`` once it has left the queue (or ended
    there) for good; ``reason`` why it waits, when listed as waiting; ``running`` when
    listed as running."""

    gone: bool = False
    reason: str | None = None
    running: bool = False


@dataclass
class QueueWatch:
    """One job's reading of its queue's views: each view counts once, however often it
    is looked at, and an unknown view changes nothing."""

    job_id: str
    _last: QueueView | None = None
    _gone: int = 0

    def see(self, view: QueueView) -> Verdict:
        if view is self._last:
            return Verdict()
        self._last = view
        if not view.answers_for(self.job_id):
            return Verdict()  # unknown: ask again
        entry = view.of(self.job_id)
        if entry is None or entry.state == "ended":
            self._gone += 1
            return Verdict(gone=self._gone >= GONE_VIEWS)
        self._gone = 0
        if entry.state in ("queued", "held"):
            return Verdict(reason=entry.reason or entry.raw_reason or "waiting")
        return Verdict(running=entry.state in ("running", "ending", "suspended"))

    def hurry(self, queue: SchedulerQueue) -> None:
        queue.expire()

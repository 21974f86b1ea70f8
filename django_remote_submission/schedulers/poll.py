"""The one status call per (server, login) and interval that asks a scheduler about all
the login's jobs, however many the engine follows there."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django_remote_submission.exceptions import TransportError
from django_remote_submission.schedulers import slurm
from django_remote_submission.schedulers.base import Ending, QueueEntry, job_name

if TYPE_CHECKING:
    import uuid

    from django_remote_submission.transport.base import Transport

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

    def of(self, job_id: str) -> QueueEntry | None:
        """The job's entry; None for a job the scheduler did not list (or when unknown)."""
        return self.entries.get(job_id)

    def named(self, name: str) -> QueueEntry | None:
        """The entry of the job with this name, for a submission that may have happened."""
        return next((entry for entry in self.entries.values() if entry.name == name), None)


@dataclass
class SlurmQueue:
    """The Slurm queue of one login, read at most once per ``min_interval`` seconds: every
    caller within an interval gets the same view. A failed call waits out the interval
    too, so a scheduler in trouble is not asked more often."""

    min_interval: float = MIN_INTERVAL
    user: str | None = None
    #: Environment of the status commands (``SLURM_CONF`` where a login node serves
    #: several clusters).
    env: dict[str, str] | None = None
    timeout: float = COMMAND_TIMEOUT
    clock: Callable[[], float] = time.monotonic
    #: Status calls run so far (squeue and scontrol): what the scheduler paid.
    calls: int = 0
    _view: QueueView | None = None
    _at: float = field(default=float("-inf"))

    def view(self, transport: Transport, *, fresh: bool = False) -> QueueView:
        """The login's jobs, from the last call if it is recent enough, else from a new
        one; ``fresh`` asks anew whatever the interval (a submission's look-up)."""
        now = self.clock()
        if self._view is not None and not fresh and now - self._at < self.min_interval:
            return self._view
        self._at = now
        self.calls += 1
        try:
            result = transport.run(
                slurm.squeue_command(self.user), timeout=self.timeout, env=self.env
            )
        except TransportError as exc:  # a hung squeue, a dropped connection
            self._view = QueueView({}, known=False, error=f"squeue failed: {exc}")
            return self._view
        if not result.ok:
            self._view = QueueView({}, known=False, error=f"squeue failed: {result.reason()}")
            return self._view
        try:
            self._view = QueueView(slurm.parse_squeue(result.stdout.decode("utf-8", "replace")))
        except ValueError as exc:
            self._view = QueueView({}, known=False, error=str(exc))
        return self._view

    def find(self, transport: Transport, job_uuid: uuid.UUID | str) -> QueueEntry | None:
        """The job already submitted for this app job, if the scheduler has it: a retry
        after a worker died or an sbatch timed out asks this before submitting again.
        Raises when the queue cannot be read, since "not there" would then be a guess."""
        view = self.view(transport, fresh=True)
        if not view.known:
            raise TransportError(
                f"Could not tell whether the job was submitted already ({view.error}); "
                "it is not submitted again until the queue can be read"
            )
        return view.named(job_name(job_uuid))

    def ending(self, transport: Transport, job_id: str) -> Ending:
        """How a job the queue no longer lists ended, from ``scontrol``; ``unknown`` when
        Slurm has forgotten it or cannot be asked."""
        self.calls += 1
        try:
            result = transport.run(
                slurm.scontrol_show_job_command(job_id), timeout=self.timeout, env=self.env
            )
        except TransportError as exc:
            return Ending("unknown", f"Slurm could not say how job {job_id} ended: {exc}")
        if not result.ok:
            return Ending(
                "unknown", f"Slurm could not say how job {job_id} ended: {result.reason()}"
            )
        try:
            fields = slurm.parse_scontrol_job(result.stdout.decode("utf-8", "replace"))
        except ValueError as exc:
            return Ending("unknown", f"Slurm's account of job {job_id} could not be read: {exc}")
        return slurm.ending_of(fields)

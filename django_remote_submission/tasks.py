"""The Celery tasks of 2.x, and cancel_job. Thin: load, unseal secrets, call the runner.

Secret arguments (``password``, ``passphrase``) are sealed before the task message is
built and shown as ``********`` wherever Celery prints arguments, so they travel through
the broker and the result backend encrypted, and reach no log in clear text.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import time
from collections.abc import Sequence
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Ignore
from celery.signals import worker_init, worker_ready, worker_shutting_down
from celery.utils import uuid
from django.db import transaction

from django_remote_submission import jobs, scheduling, secrets, worker
from django_remote_submission.conf import conf
from django_remote_submission.exceptions import (
    HandedOver,
    JobCanceled,
    LeaseLost,
    NotClaimed,
    ResourcesRefused,
    SecretError,
)
from django_remote_submission.keys import deploy_key, find_public_key, remove_key
from django_remote_submission.logstream import LogPolicy
from django_remote_submission.models import Job, Server
from django_remote_submission.results import is_matching
from django_remote_submission.runner import (
    RunOptions,
    copy_job,
    record_failure,
    resume_job,
    run_job,
    timeout_seconds,
)
from django_remote_submission.transport import LocalTransport, Transport, connect_ssh
from django_remote_submission.transport.ssh import pool as connection_pool

__all__ = [
    "LogPolicy",
    "cancel_job",
    "copy_job_to_server",
    "copy_key_to_server",
    "delete_key_from_server",
    "enqueue_submission",
    "is_matching",
    "submit_job_to_server",
]

logger = logging.getLogger(__name__)

SECRET_ARGUMENTS = ("password", "passphrase")


class SecretArgumentsTask(Task[Any, Any]):
    """A task whose secret arguments are sealed on the way in and opened in the worker.

    For a task that runs a job (``runs_job``), sending it starts a new run: the job's
    task id is recorded and a cancel request left from an earlier run is cleared, so
    that a cancel arriving while it waits in the queue stops this run.
    """

    runs_job = False

    def apply_async(  # type: ignore[override]
        self,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        signature = inspect.signature(self.run)
        bound = signature.bind_partial(*(args or ()), **(kwargs or {}))
        sealed: dict[str, Any] = {}
        shown: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            if name in SECRET_ARGUMENTS and value is not None and not secrets.is_sealed(value):
                sealed[name], shown[name] = secrets.seal(str(value)), secrets.MASK
            elif isinstance(value, dt.timedelta):
                # Celery's JSON serializer cannot carry a timedelta; 2.x passed one.
                sealed[name] = shown[name] = value.total_seconds()
            else:
                sealed[name] = shown[name] = value
        options.setdefault("argsrepr", "()")
        options.setdefault("kwargsrepr", repr(shown))
        if self.runs_job and sealed.get("job_pk") is not None:
            options.setdefault("task_id", uuid())
            jobs.begin_run(sealed["job_pk"], options["task_id"], _row_options(sealed))
        return super().apply_async((), sealed, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            opened = {name: secrets.unseal(value) for name, value in kwargs.items()}
        except SecretError as exc:
            job_pk = kwargs.get("job_pk")
            job = Job.objects.filter(pk=job_pk).first() if job_pk is not None else None
            if job is not None:
                record_failure(job, exc)
            raise
        if self.runs_job and self.request.id is None and kwargs.get("job_pk") is not None:
            # Called directly, not through the broker: this call is the new run.
            jobs.begin_run(kwargs["job_pk"])
        try:
            return super().__call__(*args, **opened)
        except (NotClaimed, LeaseLost, HandedOver) as exc:
            if self.request.id is None or self.request.called_directly:
                raise
            # A second message for a job another worker holds (or took over): that worker
            # stores the outcome under the job's task id; this one stores nothing.
            logger.info("%s", exc)
            # Without the cause: Celery formats an ignored task's traceback, and this
            # one's cause goes deep into the runner (a seventh of a worker's time when
            # it launched ten jobs a second).
            raise Ignore() from None


def _row_options(kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """A task's arguments as ``Job.run_options`` keeps them (secrets already sealed);
    None if they are invalid (the worker records why, on the job)."""
    try:
        return _options(None, **{k: v for k, v in kwargs.items() if k != "job_pk"}).to_row()
    except (TypeError, ValueError):
        return None


def _task_arguments(row: dict[str, Any]) -> dict[str, Any]:
    """``Job.run_options`` as the arguments of submit_job_to_server, secrets sealed."""
    arguments = {
        "password": row.get("password"),
        "public_key_filename": row.get("key_filename"),
        "username": row.get("username"),
        "timeout": row.get("timeout"),
        "log_policy": row.get("log_policy", LogPolicy.LOG_LIVE),
        "store_results": row.get("store_results"),
        "remote": row.get("remote", True),
        "passphrase": row.get("passphrase"),
    }
    return {name: value for name, value in arguments.items() if value is not None}


def _options(
    task: Task[Any, Any] | None,
    *,
    password: str | None = None,
    public_key_filename: str | None = None,
    username: str | None = None,
    timeout: float | dt.timedelta | None = None,
    log_policy: int = LogPolicy.LOG_LIVE,
    store_results: Sequence[str] | None = None,
    remote: bool = True,
    passphrase: str | None = None,
) -> RunOptions:
    return RunOptions(
        username=username or None,  # 2.x's admin passed "" for "the owner's"
        password=password,
        key_filename=public_key_filename,
        passphrase=passphrase,
        timeout=timeout_seconds(timeout),
        log_policy=LogPolicy(log_policy),
        store_results=_patterns(store_results),
        remote=remote,
        task_id=(task.request.id or "") if task is not None else "",
    )


def _patterns(store_results: Sequence[str] | str | None) -> list[str] | None:
    if store_results is None:
        return None
    if isinstance(store_results, str):
        return [store_results]  # one pattern, not a list of its characters
    return [str(pattern) for pattern in store_results]


#: Seconds a task waits for its job's row to become visible: code that queues a job in
#: the transaction that creates it sends the message before the row commits.
JOB_VISIBLE_WAIT = 10.0


def _load(job_pk: int) -> Job:
    rows = Job.objects.select_related("server", "interpreter", "owner")
    deadline = time.monotonic() + JOB_VISIBLE_WAIT
    pause = 0.05
    while True:
        try:
            return rows.get(pk=job_pk)
        except Job.DoesNotExist:
            if time.monotonic() >= deadline:
                raise
            logger.info("Job %s is not visible yet; waiting for its transaction", job_pk)
            time.sleep(pause)
            pause = min(1.0, pause * 2)


def enqueue_submission(job_pk: int, **options: Any) -> str:
    """Queue ``submit_job_to_server`` for a job once the current transaction commits (at
    once outside one), and return the task's id. The app's own pages, admin actions and
    API queue jobs this way: a worker never gets a job whose row it cannot see yet, and a
    request that rolls back queues nothing. Secrets wait in this process's memory until
    the commit, and are sealed when the message is built."""
    task_id = uuid()
    # The id is on the row at once, for the answer to this request; the commit sends.
    jobs.begin_run(job_pk, task_id, _row_options(options))
    transaction.on_commit(
        lambda: submit_job_to_server.apply_async(
            kwargs={"job_pk": job_pk, **options}, task_id=task_id
        )
    )
    return task_id


@shared_task(
    bind=True,
    base=SecretArgumentsTask,
    runs_job=True,
    # A worker process killed mid-task gives the message back rather than storing a
    # failure: the job itself is taken over by another worker's sweep, and the message
    # that comes back finds it held and is ignored.
    acks_late=True,
    reject_on_worker_lost=True,
    name="django_remote_submission.tasks.submit_job_to_server",
)
def submit_job_to_server(
    self: Task[Any, Any],
    job_pk: int,
    password: str | None = None,
    public_key_filename: str | None = None,
    username: str | None = None,
    timeout: float | dt.timedelta | None = None,
    log_policy: int = LogPolicy.LOG_LIVE,
    store_results: Sequence[str] | None = None,
    remote: bool = True,
    passphrase: str | None = None,
) -> dict[str, int]:
    """Run the job on its server; returns ``{remote filename: result pk}``."""
    job = _load(job_pk)
    try:
        options = _options(
            self,
            password=password,
            public_key_filename=public_key_filename,
            username=username,
            timeout=timeout,
            log_policy=log_policy,
            store_results=store_results,
            remote=remote,
            passphrase=passphrase,
        )
    except ValueError as exc:
        record_failure(job, exc)
        raise
    # What the server's scheduler would refuse (or what a direct server can't give) ends
    # the job here, in words, before anything is sent.
    problems = scheduling.resource_problems(job.server, job.resources, options.timeout)
    if problems:
        refused = ResourcesRefused(" ".join(problems))
        record_failure(job, refused)
        raise refused
    # In a worker whose sweep runs the host's followers, a job still running after a
    # moment is handed to them (a short job ends here, at once), and this slot is free.
    hand_over = (
        conf.HAND_OVER_AFTER if worker.hosting and not self.request.called_directly else None
    )
    return run_job(
        job, options, hand_over_after=hand_over, rerun=bool(self.request.called_directly)
    )


@shared_task(
    bind=True,
    base=SecretArgumentsTask,
    runs_job=True,
    # A worker process killed mid-task gives the message back rather than storing a
    # failure: the job itself is taken over by another worker's sweep, and the message
    # that comes back finds it held and is ignored.
    acks_late=True,
    reject_on_worker_lost=True,
    name="django_remote_submission.tasks.copy_job_to_server",
)
def copy_job_to_server(
    self: Task[Any, Any],
    job_pk: int,
    password: str | None = None,
    public_key_filename: str | None = None,
    username: str | None = None,
    timeout: float | dt.timedelta | None = None,
    log_policy: int = LogPolicy.LOG_LIVE,
    store_results: Sequence[str] | None = None,
    remote: bool = True,
    passphrase: str | None = None,
) -> dict[str, int]:
    """Upload the job's program without running it (``timeout``, ``log_policy`` and
    ``store_results`` are accepted and ignored, as in 2.x); returns ``{}``."""
    job = _load(job_pk)
    options = _options(
        self,
        password=password,
        public_key_filename=public_key_filename,
        username=username,
        timeout=None,
        log_policy=LogPolicy.LOG_LIVE,
        store_results=None,
        remote=remote,
        passphrase=passphrase,
    )
    copy_job(job, options)
    return {}


def _key_transport(
    username: str, password: str | None, hostname: str, port: int, remote: bool
) -> Transport:
    if not remote:
        return LocalTransport()
    pinned = (
        Server.objects.filter(hostname=hostname, port=port)
        .exclude(host_key="")
        .values_list("host_key", flat=True)
        .distinct()
    )
    keys = list(pinned[:2])
    return connect_ssh(
        hostname,
        port,
        username,
        password=password,
        # The key pinned on the Server for this host, when the servers agree on one.
        host_key=keys[0] if len(keys) == 1 else None,
    )


@shared_task(base=SecretArgumentsTask, name="django_remote_submission.tasks.copy_key_to_server")
def copy_key_to_server(
    username: str,
    password: str | None,
    hostname: str,
    port: int = 22,
    public_key_filename: str | None = None,
    remote: bool = True,
) -> None:
    """Add the worker's public key to the account's authorized_keys, so that later jobs
    need no password. The key is found by itself when ``public_key_filename`` is None."""
    public_key = find_public_key(public_key_filename)
    with _key_transport(username, password, hostname, port, remote) as transport:
        deploy_key(transport, public_key)


@shared_task(base=SecretArgumentsTask, name="django_remote_submission.tasks.delete_key_from_server")
def delete_key_from_server(
    username: str,
    password: str | None,
    hostname: str,
    port: int = 22,
    public_key_filename: str | None = None,
    remote: bool = True,
) -> None:
    """Remove the worker's public key from the account's authorized_keys again."""
    public_key = find_public_key(public_key_filename)
    with _key_transport(username, password, hostname, port, remote) as transport:
        remove_key(transport, public_key)
    # A pooled connection logged in with that key must not outlive it.
    connection_pool.discard(hostname, int(port), username)


@shared_task(name="django_remote_submission.tasks.cancel_job")
def cancel_job(job_pk: int) -> bool:
    """Stop the job: a queued one never runs; a running one is stopped by the worker that
    follows it (its program's whole process tree: TERM, then KILL after
    REMOTE_SUBMISSION_KILL_GRACE); one that no worker follows (its lease expired) is
    stopped by this call, over a connection of its own, and marked canceled. Returns
    False if the job had already ended."""
    job = _load(job_pk)
    asked = jobs.request_cancel(job)
    if not asked:
        return False
    if job.state == Job.State.CANCELED:
        _store_outcome(job, None, JobCanceled(job.error))
        return True
    owner = jobs.new_owner()
    if jobs.take_over(job, owner):
        logger.info("Job %s had no live worker: this cancel stops it", job.pk)
        try:
            _store_outcome(job, resume_job(job, owner, patient=False), None)
        except LeaseLost:
            pass
        except Exception as exc:
            _store_outcome(job, None, exc)
    return True


def _store_outcome(job: Job, results: dict[str, int] | None, error: BaseException | None) -> None:
    """What ``.get()`` of the job's task returns, stored by whoever ended the job when
    that is not the task itself (a worker that took the job over, a cancel)."""
    if not job.task_id:
        return
    backend = submit_job_to_server.backend
    try:
        if error is None:
            backend.mark_as_done(job.task_id, results or {})
        else:
            backend.mark_as_failure(
                job.task_id, error if isinstance(error, Exception) else RuntimeError(str(error))
            )
    except Exception:
        # No result backend configured (DisabledBackend), or it is away.
        logger.debug("No result stored for job %s", job.pk, exc_info=True)


def _resend(job: Job) -> None:
    """Send a queued job's task again, with the id and the options of its run."""
    submit_job_to_server.apply_async(
        kwargs={"job_pk": job.pk, **_task_arguments(job.run_options or {})},
        task_id=job.task_id or None,
    )


@worker_init.connect
def _declare_hosting(**_: Any) -> None:
    worker.declare_hosting()


@worker_ready.connect
def _start_sweep(**_: Any) -> None:
    worker.start_sweep(resend=_resend, on_end=_store_outcome)


@worker_shutting_down.connect
def _stop_sweep(**_: Any) -> None:
    worker.stop_sweep()

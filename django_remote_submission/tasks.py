"""The Celery tasks of 2.x, and cancel_job. Thin: load, unseal secrets, call the runner.

Secret arguments (``password``, ``passphrase``) are sealed before the task message is
built and shown as ``********`` wherever Celery prints arguments, so they travel through
the broker and the result backend encrypted, and reach no log in clear text.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
from collections.abc import Sequence
from typing import Any

from celery import Task, shared_task
from django.utils import timezone

from django_remote_submission import secrets
from django_remote_submission.keys import deploy_key, find_public_key, remove_key
from django_remote_submission.logstream import HEARTBEAT_SECONDS, LogPolicy
from django_remote_submission.models import Job
from django_remote_submission.results import is_matching
from django_remote_submission.runner import (
    JobCanceled,
    RunOptions,
    copy_job,
    record_failure,
    run_job,
    timeout_seconds,
)
from django_remote_submission.transport import LocalTransport, SSHTransport, Transport
from django_remote_submission.transport.ssh import pool as connection_pool

__all__ = [
    "LogPolicy",
    "cancel_job",
    "copy_job_to_server",
    "copy_key_to_server",
    "delete_key_from_server",
    "is_matching",
    "submit_job_to_server",
]

logger = logging.getLogger(__name__)

SECRET_ARGUMENTS = ("password", "passphrase")


class SecretArgumentsTask(Task[Any, Any]):
    """A task whose secret arguments are sealed on the way in and opened in the worker."""

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
        return super().apply_async((), sealed, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        opened = {name: secrets.unseal(value) for name, value in kwargs.items()}
        return super().__call__(*args, **opened)


def _options(
    task: Task[Any, Any],
    *,
    password: str | None,
    public_key_filename: str | None,
    username: str | None,
    timeout: float | dt.timedelta | None,
    log_policy: int,
    store_results: Sequence[str] | None,
    remote: bool,
    passphrase: str | None,
) -> RunOptions:
    return RunOptions(
        username=username or None,  # 2.x's admin passed "" for "the owner's"
        password=password,
        key_filename=public_key_filename,
        passphrase=passphrase,
        timeout=timeout_seconds(timeout),
        log_policy=LogPolicy(log_policy),
        store_results=list(store_results) if store_results is not None else None,
        remote=remote,
        task_id=task.request.id or "",
    )


def _load(job_pk: int) -> Job:
    return Job.objects.select_related("server", "interpreter", "owner").get(pk=job_pk)


@shared_task(
    bind=True, base=SecretArgumentsTask, name="django_remote_submission.tasks.submit_job_to_server"
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
    if job.is_finished:
        # Run again: a cancel request belonged to the earlier run.
        Job.objects.filter(pk=job.pk).update(cancel_requested_at=None)
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
    return run_job(job, options)


@shared_task(
    bind=True, base=SecretArgumentsTask, name="django_remote_submission.tasks.copy_job_to_server"
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
    copy_job(
        job,
        RunOptions(
            username=username or None,
            password=password,
            key_filename=public_key_filename,
            passphrase=passphrase,
            remote=remote,
            task_id=self.request.id or "",
        ),
    )
    return {}


def _key_transport(
    username: str,
    password: str | None,
    hostname: str,
    port: int,
    remote: bool,
    passphrase: str | None = None,
    key_filename: str | None = None,
) -> Transport:
    if not remote:
        return LocalTransport()
    return SSHTransport(
        hostname,
        port,
        username,
        password=password,
        passphrase=passphrase,
        key_filename=key_filename,
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
    """Ask the worker running the job to stop it (TERM to its process group, KILL after
    REMOTE_SUBMISSION_KILL_GRACE). Returns False if the job had already ended."""
    job = _load(job_pk)
    if job.is_finished:
        return False
    now = timezone.now()
    Job.objects.filter(pk=job.pk, cancel_requested_at__isnull=True).update(cancel_requested_at=now)
    if job.status == Job.STATUS.initial:
        record_failure(job, JobCanceled("Canceled before it started."))
    elif job.heartbeat is None or now - job.heartbeat > dt.timedelta(seconds=3 * HEARTBEAT_SECONDS):
        record_failure(
            job,
            JobCanceled(
                "Canceled, but no worker was following the job: its program may still run "
                f"on the server as process group {job.remote_pgid}."
            ),
        )
    return True

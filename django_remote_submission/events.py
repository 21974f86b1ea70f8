"""What browsers are told: group names, frame payloads, and publishing after commit.

Payload builders are pure functions. Publishing never fails a job: the database is the
source of truth, and a client that missed frames catches up from it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone

from django_remote_submission import signals
from django_remote_submission.models import Job, Log

logger = logging.getLogger(__name__)

#: Seconds a job-log socket's watch lasts (``watch``); it is renewed every third of it.
WATCH_SECONDS = 60.0
#: Seconds one publish may take before it is given up.
PUBLISH_TIMEOUT = 2.0
#: Seconds publishing pauses after a failure, so a dead layer does not slow jobs down.
BACKOFF_SECONDS = 5.0

STATUS = "status"
LOG = "log"
HISTORY_COMPLETE = "history-complete"


def user_group(user_pk: int) -> str:
    return f"drs.user.{int(user_pk)}"


def job_group(job_pk: int) -> str:
    return f"drs.job.{int(job_pk)}"


class LogLike(Protocol):
    """What a log frame is made of: a ``Log``, or the ``LogRow`` the runner stores."""

    @property
    def id(self) -> int | None: ...
    @property
    def job_id(self) -> int: ...
    @property
    def time(self) -> datetime: ...
    @property
    def content(self) -> str: ...
    @property
    def stream(self) -> str: ...


def iso_time(value: Any) -> str | None:
    """A time as the frames and the pages' JSON carry it: ISO 8601, or None."""
    return value.isoformat() if value is not None else None


def status_payload(job: Job) -> dict[str, Any]:
    """A job's status frame: the 2.x keys, then additions."""
    return {
        "job_id": job.pk,
        "title": job.title,
        "status": job.status,
        "modified": iso_time(job.modified),
        "event": STATUS,
        "finished": job.is_finished,
        "exit_code": job.exit_code,
        "error": job.error,
        "started_at": iso_time(job.started_at),
        "finished_at": iso_time(job.finished_at),
        "owner_id": job.owner_id,
        "state": job.state,
        "queued_at": iso_time(job.queued_at),
        "heartbeat": iso_time(job.heartbeat),
        "scheduler_job_id": job.scheduler_job_id,
        "scheduler_reason": job.scheduler_reason,
        "pending_since": iso_time(job.pending_since),
    }


def log_payload(log: LogLike) -> dict[str, Any]:
    """A log frame: the 2.x keys, then additions."""
    return {
        "log_id": log.id,
        "time": iso_time(log.time),
        "content": log.content,
        "stream": log.stream,
        "event": LOG,
        "job_id": log.job_id,
    }


class Publisher:
    """Sends events to the channel layer, giving up quickly while it is unreachable.

    Sends go through one event loop of the publisher's own, in a thread, for the life
    of the process: a network layer (channels-redis) keeps one connection pool per
    event loop, so a loop made for each send (``async_to_sync`` in a worker thread)
    would connect to Redis again for each. The in-memory layer, whose queues belong to
    the loop of the code that uses them, is sent to with ``async_to_sync`` as before.
    """

    def __init__(self) -> None:
        self._paused_until = 0.0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_pid = 0

    def _run(
        self, layer: Any, coroutine: Callable[..., Coroutine[Any, Any, None]], *args: Any
    ) -> None:
        from channels.layers import InMemoryChannelLayer

        if isinstance(layer, InMemoryChannelLayer):
            async_to_sync(coroutine)(layer, *args)
            return
        future = asyncio.run_coroutine_threadsafe(coroutine(layer, *args), self._own_loop())
        try:
            future.result(PUBLISH_TIMEOUT + 1)
        finally:
            future.cancel()

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            # A forked worker process inherits the object but not the thread.
            if self._loop is None or self._loop_pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="drs-publisher", daemon=True).start()
                self._loop, self._loop_pid = loop, os.getpid()
            return self._loop

    def send(self, group: str, message: dict[str, Any]) -> bool:
        if time.monotonic() < self._paused_until:
            return False
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return False
        try:
            self._run(layer, _send_with_timeout, group, message)
        except Exception as exc:
            with self._lock:
                self._paused_until = time.monotonic() + BACKOFF_SECONDS
            logger.warning(
                "Could not publish to %s (%s: %s); clients catch up from the database. "
                "Pausing events for %g s.",
                group,
                type(exc).__name__,
                exc,
                BACKOFF_SECONDS,
            )
            return False
        return True

    def reset(self) -> None:
        self._paused_until = 0.0

    def send_many(self, messages: Sequence[tuple[str, dict[str, Any]]]) -> bool:
        """Many events in one go: one event loop and one set of connections for all,
        where ``send`` pays for both per event (a follower publishes for many jobs)."""
        if not messages or time.monotonic() < self._paused_until:
            return False
        from channels.layers import get_channel_layer

        layer = get_channel_layer()
        if layer is None:
            return False
        try:
            self._run(layer, _send_all, messages)
        except Exception as exc:
            with self._lock:
                self._paused_until = time.monotonic() + BACKOFF_SECONDS
            logger.warning(
                "Could not publish %d events (%s: %s); clients catch up from the database. "
                "Pausing events for %g s.",
                len(messages),
                type(exc).__name__,
                exc,
                BACKOFF_SECONDS,
            )
            return False
        return True


async def _send_with_timeout(layer: Any, group: str, message: dict[str, Any]) -> None:
    await asyncio.wait_for(layer.group_send(group, message), PUBLISH_TIMEOUT)


async def _send_all(layer: Any, messages: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Each group's messages one after the other, in their order (a socket reads a gap
    in a job's events as rows it missed); the groups side by side."""
    by_group: dict[str, list[dict[str, Any]]] = {}
    for group, message in messages:
        by_group.setdefault(group, []).append(message)

    async def in_order(group: str, queue: list[dict[str, Any]]) -> None:
        for message in queue:
            await layer.group_send(group, message)

    sends = [in_order(group, queue) for group, queue in by_group.items()]
    await asyncio.wait_for(asyncio.gather(*sends), PUBLISH_TIMEOUT)


publisher = Publisher()


def publish_status(job: Job) -> None:
    """Tell the owner's status sockets, and the job's log sockets, after commit."""
    payload = status_payload(job)
    owner = job.owner_id

    def send() -> None:
        message = {"type": "job.status", "payload": payload}
        publisher.send(user_group(owner), message)
        publisher.send(job_group(payload["job_id"]), message)

    transaction.on_commit(send)


def publish_logs(job_pk: int, rows: Sequence[LogLike], after_id: int | None) -> None:
    """One event for a batch of new rows of one job (call it once they are committed).

    ``after_id`` is the job's last log id before this batch, so that a socket that
    missed an event sees the gap and reads what it missed from the database. The rows
    travel as columns, cheap to build when nobody listens; consumers make the frames.
    """
    if rows:
        publisher.send(job_group(job_pk), _logs_message(job_pk, rows, after_id))


def publish_many_logs(batches: Sequence[tuple[int, Sequence[LogLike], int | None]]) -> None:
    """``publish_logs`` for many jobs' batches at once (a follower's pass)."""
    publisher.send_many(
        [(job_group(job_pk), _logs_message(job_pk, rows, after)) for job_pk, rows, after in batches]
    )


def _logs_message(job_pk: int, rows: Sequence[LogLike], after_id: int | None) -> dict[str, Any]:
    columns = getattr(rows, "columns", None)  # the runner's StoredRows has them made
    if columns is not None:
        ids, whens, contents, streams = columns()
    else:
        ids = [row.id for row in rows]
        whens = [row.time for row in rows]
        contents = [row.content for row in rows]
        streams = [row.stream for row in rows]
    times: dict[Any, str | None] = {}
    return {
        "type": "job.logs",
        "job_id": job_pk,
        "after_id": after_id,
        "ids": list(ids),
        "times": [times.get(when) or times.setdefault(when, iso_time(when)) for when in whens],
        "contents": contents,
        "streams": streams,
    }


def log_frames(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The log frames of a ``job.logs`` event, as ``log_payload`` makes them."""
    job_pk = message["job_id"]
    return [
        {
            "log_id": log_id,
            "time": when,
            "content": content,
            "stream": stream,
            "event": LOG,
            "job_id": job_pk,
        }
        for log_id, when, content, stream in zip(
            message["ids"], message["times"], message["contents"], message["streams"], strict=True
        )
    ]


def watch(job_pk: int) -> None:
    """Say that someone watches this job's log, for the next ``WATCH_SECONDS``.

    The job-log socket says it when it connects, and again every third of that while it
    stays open. A worker's follower, which follows many jobs at once, sends a job's log
    events only while the job is watched: a thousand jobs nobody looks at cost no event
    at all. A consumer of your own that joins ``job_group(pk)`` for log events calls
    this too (status events go to the job's group whatever happens).
    """
    Job.objects.filter(pk=job_pk).update(
        watched_until=timezone.now() + dt.timedelta(seconds=WATCH_SECONDS)
    )


def job_saved(sender: type[Job], instance: Job, created: bool, raw: bool, **kwargs: Any) -> None:
    """post_save receiver: one status event, and one ``signals.job_status_changed``, per
    actual change of status or state (admin included). A change of state alone (starting,
    running, finishing) keeps the 2.x status, but the pages show where the job is."""
    if raw:
        return
    status_changed = created or instance.tracker.has_changed("status")
    state_changed = instance.tracker.has_changed("state")
    if not (status_changed or state_changed):
        if instance.tracker.has_changed("scheduler_reason"):
            publish_status(instance)  # why the scheduler holds it: no status change
        return
    publish_status(instance)
    status, state = instance.status, instance.state
    previous_status = None if created else instance.tracker.previous("status")
    previous_state = None if created else instance.tracker.previous("state")
    transaction.on_commit(
        lambda: signals.send_job_status_changed(
            instance, status, previous_status, state, previous_state
        )
    )


def log_saved(sender: type[Log], instance: Log, created: bool, raw: bool, **kwargs: Any) -> None:
    """post_save receiver for rows saved one by one (the runner's batches publish apart)."""
    if created and not raw:
        job_pk = instance.job_id
        transaction.on_commit(lambda: publish_logs(job_pk, [instance], after_id=None))

"""The two WebSocket consumers: a user's job statuses, and one job's log.

Both need a logged-in user (session auth through ``AuthMiddlewareStack``). The log of
a job is open to its owner, and to users with the ``view_job`` permission, as in the admin.
Refusals close the socket with a code a client can act on: 4401 not logged in, 4404 no
such job (or none this user may see: the two look alike, as in the REST API), 4400 bad
query.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from django_remote_submission import events
from django_remote_submission.models import Job, Log

logger = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
#: No longer sent: another user's job closes with CLOSE_NOT_FOUND, so that a socket does
#: not tell which job ids exist. Kept for code that imports it.
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
#: The server's trouble, not the client's: open the socket again in a moment. Not 1011:
#: daphne (through autobahn) sends only 1000 and 3000-4999 for an application, and
#: silently drops any other code, leaving the socket open and silent.
CLOSE_TRY_AGAIN = 4503
#: The reason sent with each close code (a close frame's reason holds 123 bytes at most).
CLOSE_REASONS = {
    CLOSE_BAD_REQUEST: "Bad query string: since must be a log id (an integer).",
    CLOSE_UNAUTHENTICATED: "Not logged in: the socket needs the site's session cookie.",
    CLOSE_NOT_FOUND: "No such job, or not one this user may see.",
    CLOSE_TRY_AGAIN: "The channel layer did not answer in time: open the socket again soon.",
}
#: Seconds the channel layer has to let a socket join its group.
JOIN_TIMEOUT = 5.0

#: Jobs sent to a status socket when it connects (2.x sent the latest 10).
LATEST_JOBS = 10
#: Log rows read from the database at a time, for history and catch-up.
HISTORY_CHUNK = 1000


async def _in_thread(function: Any, *args: Any) -> Any:
    """Run ORM code in Django's database thread, closing stale connections as Channels does."""
    return await database_sync_to_async(function)(*args)


def _query(scope: dict[str, Any]) -> dict[str, str]:
    parsed = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return {key: values[-1] for key, values in parsed.items()}


class _Consumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    group: str | None = None

    async def refuse(self, code: int) -> None:
        """Close with ``code`` and the reason a person reads in the browser's console."""
        await self.close(code=code, reason=CLOSE_REASONS[code])

    async def _authenticated(self) -> Any:
        """The user, or None after refusing the socket (accepted first, so that the
        close code reaches the client instead of a bare HTTP 403)."""
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return None
        return user

    async def _join(self, group: str) -> bool:
        """Join the group, or close with 4503 (a client should open the socket again) if
        the channel layer does not answer in time, e.g. just after Redis restarted."""
        try:
            await asyncio.wait_for(
                self.channel_layer.group_add(group, self.channel_name), JOIN_TIMEOUT
            )
        except Exception:
            logger.warning(
                "Could not join %s; closing the socket with %s",
                group,
                CLOSE_TRY_AGAIN,
                exc_info=True,
            )
            await self.refuse(CLOSE_TRY_AGAIN)
            return False
        self.group = group
        return True

    async def disconnect(self, code: int) -> None:
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Clients have nothing to say; what they send is ignored, as in 2.x."""

    async def job_status(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])


class JobUserConsumer(_Consumer):
    """``ws/job-user/``: the latest jobs of the user on connect, then every status change."""

    async def connect(self) -> None:
        user = await self._authenticated()
        if user is None:
            return
        if not await self._join(events.user_group(user.pk)):
            return
        for payload in await self._latest(user.pk):
            await self.send_json(payload)
        await self.send_json({"event": events.HISTORY_COMPLETE})

    async def _latest(self, user_pk: int) -> list[dict[str, Any]]:
        return await _in_thread(self._latest_sync, user_pk)  # type: ignore[no-any-return]

    def _latest_sync(self, user_pk: int) -> list[dict[str, Any]]:
        jobs = Job.objects.filter(owner_id=user_pk).order_by("-modified", "-id")[:LATEST_JOBS]
        return [events.status_payload(job) for job in jobs]


class JobLogConsumer(_Consumer):
    """``ws/job-log/<job_pk>/``: the stored log on connect (after ``?since=<log id>``),
    a ``history-complete`` frame and the job's status, then each new row exactly once.
    ``?batch=1`` sends lists of rows instead of one frame per row."""

    cursor = 0
    batch = False

    async def connect(self) -> None:
        user = await self._authenticated()
        if user is None:
            return
        query = _query(self.scope)
        try:
            self.cursor = max(0, int(query.get("since", "0") or 0))
        except ValueError:
            await self.refuse(CLOSE_BAD_REQUEST)
            return
        self.batch = query.get("batch", "") not in ("", "0", "false", "no")
        self.job_pk = int(self.scope["url_route"]["kwargs"]["job_pk"])
        if not await self._visible(user):
            await self.refuse(CLOSE_NOT_FOUND)
            return
        # Join before reading history: nothing published meanwhile is missed, and the
        # cursor drops what history already sent. Watch before reading it too: a worker
        # that learns of the watch later sends an event whose after_id shows the gap.
        if not await self._join(events.job_group(self.job_pk)):
            return
        await _in_thread(events.watch, self.job_pk)
        self._watching = asyncio.ensure_future(self._keep_watching())
        await self._send_stored()
        await self.send_json(
            {
                "event": events.HISTORY_COMPLETE,
                "job_id": self.job_pk,
                "last_log_id": self.cursor,
            }
        )
        job = await self._job()
        if job is not None:
            await self.send_json(events.status_payload(job))

    async def _keep_watching(self) -> None:
        while True:
            await asyncio.sleep(events.WATCH_SECONDS / 3)
            try:
                await _in_thread(events.watch, self.job_pk)
            except Exception:
                logger.warning("Could not renew the watch of job %s", self.job_pk, exc_info=True)

    async def disconnect(self, code: int) -> None:
        watching = getattr(self, "_watching", None)
        if watching is not None:
            watching.cancel()
        await super().disconnect(code)

    async def job_status(self, event: dict[str, Any]) -> None:
        if event["payload"].get("finished"):
            # Every row is stored before a job ends: send what a lost event kept from us,
            # so that "finished" always comes after the last line.
            await self._send_stored()
        await self.send_json(event["payload"])

    async def job_logs(self, event: dict[str, Any]) -> None:
        rows = [
            row
            for row in events.log_frames(event)
            if row["log_id"] is None or row["log_id"] > self.cursor
        ]
        after = event.get("after_id")
        if after is not None and after > self.cursor:
            # Frames were lost (a full or restarted channel layer): read the gap.
            await self._send_stored(up_to=after)
            rows = [row for row in rows if row["log_id"] is None or row["log_id"] > self.cursor]
        await self._send_rows(rows)

    async def _send_rows(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.batch:
            await self.send_json(rows)
        else:
            for row in rows:
                await self.send_json(row)
        self.cursor = max([self.cursor, *(row["log_id"] or 0 for row in rows)])

    async def _send_stored(self, up_to: int | None = None) -> None:
        while rows := await self._stored(self.cursor, up_to):
            await self._send_rows(rows)
            if len(rows) < HISTORY_CHUNK:
                return

    async def _stored(self, after: int, up_to: int | None) -> list[dict[str, Any]]:
        return await _in_thread(self._stored_sync, after, up_to)  # type: ignore[no-any-return]

    def _stored_sync(self, after: int, up_to: int | None) -> list[dict[str, Any]]:
        logs = Log.objects.filter(job_id=self.job_pk, pk__gt=after)
        if up_to is not None:
            logs = logs.filter(pk__lte=up_to)
        return [events.log_payload(log) for log in logs.order_by("pk")[:HISTORY_CHUNK]]

    async def _visible(self, user: Any) -> bool:
        return await _in_thread(self._visible_sync, user)  # type: ignore[no-any-return]

    def _visible_sync(self, user: Any) -> bool:
        return Job.objects.visible_to(user).filter(pk=self.job_pk).exists()

    async def _job(self) -> Job | None:
        return await _in_thread(self._job_sync)  # type: ignore[no-any-return]

    def _job_sync(self) -> Job | None:
        return Job.objects.filter(pk=self.job_pk).first()

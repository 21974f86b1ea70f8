"""The WebSocket consumers, driven by WebsocketCommunicator over the in-memory layer."""

import asyncio
import datetime as dt
import threading

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from django_remote_submission import events
from django_remote_submission.consumers import (
    CLOSE_BAD_REQUEST,
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHENTICATED,
)
from django_remote_submission.logstream import LogPolicy, LogWriter
from django_remote_submission.models import Job
from django_remote_submission.routing import websocket_urlpatterns
from tests.factories import make_job, make_log, make_user

pytestmark = pytest.mark.django_db(transaction=True)

application = URLRouter(websocket_urlpatterns)
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TIMEOUT = 5


def run(coroutine_function):
    """Run an async test body (no pytest-asyncio needed)."""
    return async_to_sync(coroutine_function)()


async def connect(path, user):
    communicator = WebsocketCommunicator(application, path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    return communicator


async def receive_until(communicator, predicate, limit=10_000):
    frames = []
    while len(frames) < limit:
        frame = await communicator.receive_json_from(timeout=TIMEOUT)
        frames.append(frame)
        if predicate(frame):
            return frames
    raise AssertionError(f"no matching frame in {frames[-5:]}")


def is_history_complete(frame):
    return isinstance(frame, dict) and frame.get("event") == events.HISTORY_COMPLETE


async def close_frame(communicator):
    output = await communicator.receive_output(timeout=TIMEOUT)
    while output["type"] != "websocket.close":
        output = await communicator.receive_output(timeout=TIMEOUT)
    return output


async def closed_with(communicator):
    return (await close_frame(communicator)).get("code")


@database_sync_to_async
def write_batch(job, lines, stream="stdout"):
    writer = LogWriter(
        job,
        LogPolicy.LOG_LIVE,
        batch_lines=10_000,
        batch_seconds=3600,
        max_bytes=None,
        publish=events.publish_logs,
    )
    writer.add(stream, lines, 0, NOW)
    writer.close()


def test_log_history_then_marker_then_status_then_live_rows():
    owner = make_user("bob@example.com")  # an @ in the name is fine: groups use pks
    job = make_job(owner=owner)
    stored = [make_log(job=job, content=f"old {i}\n") for i in range(3)]

    async def body():
        socket = await connect(f"/ws/job-log/{job.pk}/", owner)
        frames = await receive_until(socket, is_history_complete)
        assert [f["content"] for f in frames[:-1]] == ["old 0\n", "old 1\n", "old 2\n"]
        assert set(frames[0]) >= {"log_id", "time", "content", "stream"}  # the 2.x keys
        assert frames[0]["job_id"] == job.pk
        assert frames[-1]["last_log_id"] == stored[-1].pk
        status = await socket.receive_json_from(timeout=TIMEOUT)
        assert status["event"] == "status"
        assert (status["status"], status["finished"]) == ("initial", False)

        await write_batch(job, ["new 1\n", "new 2\n"])
        live = [await socket.receive_json_from(timeout=TIMEOUT) for _ in range(2)]
        assert [f["content"] for f in live] == ["new 1\n", "new 2\n"]
        assert live[0]["log_id"] > stored[-1].pk
        assert await socket.receive_nothing(timeout=0.2)
        await socket.disconnect()

    run(body)


def test_since_resumes_after_a_cursor():
    job = make_job()
    logs = [make_log(job=job, content=f"{i}\n") for i in range(5)]

    async def body():
        socket = await connect(f"/ws/job-log/{job.pk}/?since={logs[2].pk}", job.owner)
        frames = await receive_until(socket, is_history_complete)
        assert [f["content"] for f in frames[:-1]] == ["3\n", "4\n"]
        await socket.disconnect()

    run(body)


def test_history_goes_to_the_new_socket_only():
    job = make_job()
    make_log(job=job, content="once\n")

    async def body():
        first = await connect(f"/ws/job-log/{job.pk}/", job.owner)
        await receive_until(first, is_history_complete)
        await first.receive_json_from(timeout=TIMEOUT)  # status
        second = await connect(f"/ws/job-log/{job.pk}/", job.owner)
        frames = await receive_until(second, is_history_complete)
        assert [f["content"] for f in frames[:-1]] == ["once\n"]
        assert await first.receive_nothing(timeout=0.3)  # 2.x re-broadcast history here
        await first.disconnect()
        await second.disconnect()

    run(body)


def test_the_end_of_a_job_is_signalled():
    job = make_job()

    async def body():
        socket = await connect(f"/ws/job-log/{job.pk}/", job.owner)
        await receive_until(socket, is_history_complete)
        await socket.receive_json_from(timeout=TIMEOUT)

        @database_sync_to_async
        def finish():
            job.status = Job.STATUS.success
            job.exit_code = 0
            job.save()

        await finish()
        frame = await socket.receive_json_from(timeout=TIMEOUT)
        assert (frame["event"], frame["status"], frame["finished"]) == ("status", "success", True)
        assert frame["exit_code"] == 0
        await socket.disconnect()

    run(body)


def test_a_lost_event_is_read_back_from_the_database():
    job = make_job()

    async def body():
        socket = await connect(f"/ws/job-log/{job.pk}/", job.owner)
        await receive_until(socket, is_history_complete)
        await socket.receive_json_from(timeout=TIMEOUT)
        events.publisher._paused_until = float("inf")  # the layer "drops" this batch
        await write_batch(job, ["lost 1\n", "lost 2\n"])
        events.publisher.reset()
        await write_batch(job, ["seen\n"])
        frames = [await socket.receive_json_from(timeout=TIMEOUT) for _ in range(3)]
        assert [f["content"] for f in frames] == ["lost 1\n", "lost 2\n", "seen\n"]
        assert await socket.receive_nothing(timeout=0.2)
        await socket.disconnect()

    run(body)


def test_batched_frames_on_request():
    job = make_job()
    make_log(job=job, content="a\n")
    make_log(job=job, content="b\n")

    async def body():
        socket = await connect(f"/ws/job-log/{job.pk}/?batch=1", job.owner)
        history = await socket.receive_json_from(timeout=TIMEOUT)
        assert [row["content"] for row in history] == ["a\n", "b\n"]
        assert is_history_complete(await socket.receive_json_from(timeout=TIMEOUT))
        await socket.receive_json_from(timeout=TIMEOUT)
        await write_batch(job, [f"{i}\n" for i in range(50)])
        live = await socket.receive_json_from(timeout=TIMEOUT)
        assert [row["content"] for row in live] == [f"{i}\n" for i in range(50)]
        await socket.disconnect()

    run(body)


@pytest.mark.parametrize("path", ["/ws/job-log/{pk}/", "/ws/job-user/", "/job-user/"])
def test_anonymous_is_refused(path):
    job = make_job()

    async def body():
        socket = await connect(path.format(pk=job.pk), AnonymousUser())
        assert await closed_with(socket) == CLOSE_UNAUTHENTICATED

    run(body)


def test_another_users_job_looks_missing_unless_the_view_permission_opens_it():
    """No job-id oracle: another user's job closes with the code of a missing one, as
    REST answers 404 for both; staff see it only with the view permission, as in the admin."""
    from django.contrib.auth.models import Permission

    job = make_job()
    make_log(job=job, content="private\n")
    stranger = make_user("mallory")
    staff = make_user("admin", is_staff=True)
    viewer = make_user("auditor")
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))

    async def body():
        for user in (stranger, staff):
            socket = await connect(f"/ws/job-log/{job.pk}/", user)
            assert await closed_with(socket) == CLOSE_NOT_FOUND
            socket = await connect(f"/ws/job-log/{job.pk + 1000}/", user)
            assert await closed_with(socket) == CLOSE_NOT_FOUND
        socket = await connect(f"/job-log/{job.pk}/", viewer)
        frames = await receive_until(socket, is_history_complete)
        assert frames[0]["content"] == "private\n"
        await socket.disconnect()

    run(body)


def test_each_refusal_says_why_in_its_close_reason():
    job = make_job()

    async def body():
        cases = [
            ("/ws/job-user/", AnonymousUser(), 4401, "Not logged in"),
            (f"/ws/job-log/{job.pk}/?since=abc", job.owner, 4400, "since must be a log id"),
            ("/ws/job-log/999999/", job.owner, 4404, "No such job"),
        ]
        for path, user, code, words in cases:
            frame = await close_frame(await connect(path, user))
            assert frame["code"] == code
            assert words in frame["reason"]
            assert len(frame["reason"].encode()) <= 123  # what a close frame can carry

    run(body)


def test_missing_job_and_bad_cursor():
    job = make_job()

    async def body():
        socket = await connect("/ws/job-log/999999/", job.owner)
        assert await closed_with(socket) == CLOSE_NOT_FOUND
        socket = await connect(f"/ws/job-log/{job.pk}/?since=abc", job.owner)
        assert await closed_with(socket) == CLOSE_BAD_REQUEST

    run(body)


def test_user_socket_gets_latest_jobs_then_each_status_change():
    owner = make_user("carol+jobs@example.com")
    jobs = [make_job(owner=owner, title=f"job {i}") for i in range(12)]
    other = make_job(title="not carol's")

    async def body():
        socket = await connect("/ws/job-user/", owner)
        frames = await receive_until(socket, is_history_complete)
        history = frames[:-1]
        assert len(history) == 10
        assert {f["job_id"] for f in history} <= {j.pk for j in jobs}
        assert set(history[0]) >= {"job_id", "title", "status", "modified"}

        @database_sync_to_async
        def change():
            jobs[0].status = Job.STATUS.submitted
            jobs[0].save()
            jobs[0].title = "renamed, same status"
            jobs[0].save()  # no status change: no frame
            other.status = Job.STATUS.submitted
            other.save()  # someone else's job: not on this socket
            jobs[0].status = Job.STATUS.failure
            jobs[0].save()

        await change()
        first = await socket.receive_json_from(timeout=TIMEOUT)
        second = await socket.receive_json_from(timeout=TIMEOUT)
        assert [(f["job_id"], f["status"]) for f in (first, second)] == [
            (jobs[0].pk, "submitted"),
            (jobs[0].pk, "failure"),
        ]
        assert await socket.receive_nothing(timeout=0.3)
        await socket.disconnect()

    run(body)


def test_a_change_of_state_alone_is_a_status_frame_too():
    """Starting, running and finishing all keep 2.x's "submitted": the frames of each
    change of state carry it, with the state and the times the pages show."""
    owner = make_user()
    job = make_job(owner=owner)

    async def body():
        socket = await connect("/ws/job-user/", owner)
        await receive_until(socket, is_history_complete)

        @database_sync_to_async
        def run_it():
            job.status, job.state, job.queued_at = "submitted", "starting", NOW
            job.save()
            job.state, job.started_at = "running", NOW + dt.timedelta(seconds=1)
            job.save()
            job.title = "renamed, same state"
            job.save()  # no change of status or state: no frame
            job.state = "finishing"
            job.save()

        await run_it()
        frames = [await socket.receive_json_from(timeout=TIMEOUT) for _ in range(3)]
        assert [(f["status"], f["state"]) for f in frames] == [
            ("submitted", "starting"),
            ("submitted", "running"),
            ("submitted", "finishing"),
        ]
        assert frames[1]["queued_at"] == NOW.isoformat()
        assert frames[1]["started_at"] == (NOW + dt.timedelta(seconds=1)).isoformat()
        assert "heartbeat" in frames[1]
        assert await socket.receive_nothing(timeout=0.3)
        await socket.disconnect()

    run(body)


def test_group_names_are_valid_for_any_user():
    assert events.user_group(12) == "drs.user.12"
    assert events.job_group(7) == "drs.job.7"


def test_a_dead_channel_layer_never_fails_the_job(settings):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:1/0"]},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    try:
        job = make_job()
        writer = LogWriter(
            job,
            LogPolicy.LOG_LIVE,
            batch_lines=1,
            batch_seconds=1,
            max_bytes=None,
            publish=events.publish_logs,
        )
        writer.add("stdout", ["kept\n"], 5, NOW)
        writer.close()
        job.status = Job.STATUS.success
        job.save()
        assert [log.content for log in job.logs.all()] == ["kept\n"]
        assert events.publisher._paused_until > 0
    finally:
        events.publisher.reset()
        channel_layers.backends.clear()


def test_the_last_rows_come_before_finished_even_if_their_event_was_lost():
    job = make_job()

    async def body():
        socket = await connect(f"/ws/job-log/{job.pk}/", job.owner)
        await receive_until(socket, is_history_complete)
        await socket.receive_json_from(timeout=TIMEOUT)
        events.publisher._paused_until = float("inf")
        await write_batch(job, ["last line\n"])
        events.publisher.reset()

        @database_sync_to_async
        def finish():
            job.status = Job.STATUS.success
            job.save()

        await finish()
        row = await socket.receive_json_from(timeout=TIMEOUT)
        status = await socket.receive_json_from(timeout=TIMEOUT)
        assert row["content"] == "last line\n"
        assert status["finished"] is True
        await socket.disconnect()

    run(body)


def test_a_channel_layer_that_cannot_take_the_socket_closes_it_with_4503(monkeypatch):
    from channels.layers import InMemoryChannelLayer

    async def refuse(self, group, channel):
        raise ConnectionError("the channel layer is down")

    monkeypatch.setattr(InMemoryChannelLayer, "group_add", refuse)
    job = make_job()

    async def body():
        for path in (f"/ws/job-log/{job.pk}/", "/ws/job-user/"):
            socket = await connect(path, job.owner)
            assert await closed_with(socket) == 4503

    run(body)


def test_publishing_from_a_worker_thread_keeps_one_redis_connection(settings):
    import redis

    from django_remote_submission.testing import RedisServer

    server = RedisServer().start()  # its own, so that only this test connects to it
    redis_url = server.url
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": "drs-publish-test"},
        }
    }
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    probe = redis.Redis.from_url(redis_url)
    before = probe.info("stats")["total_connections_received"]
    sent = []

    def publish_many_times():
        for i in range(20):
            sent.append(events.publisher.send(events.job_group(1), {"type": "job.logs", "n": i}))

    try:
        thread = threading.Thread(target=publish_many_times)
        thread.start()
        thread.join(60)
        assert sent == [True] * 20
        # One connection for the publisher's own event loop, whatever the number of sends
        # (a loop per send connected again each time).
        assert probe.info("stats")["total_connections_received"] - before <= 2
    finally:
        events.publisher.reset()
        channel_layers.backends.clear()
        probe.close()
        server.stop()


def test_a_log_socket_watches_its_job_while_it_is_open(monkeypatch):
    job = make_job()
    other = make_job(owner=job.owner)
    monkeypatch.setattr(events, "WATCH_SECONDS", 0.9)  # renewed every 0.3 s

    async def body():
        socket = await connect(f"/ws/job-log/{job.pk}/", job.owner)
        await receive_until(socket, is_history_complete)
        first = await database_sync_to_async(watched_until)(job)
        assert first is not None
        assert first > dt.datetime.now(dt.UTC)
        # Renewed while the socket stays open.
        while await database_sync_to_async(watched_until)(job) == first:
            await asyncio.sleep(0.05)
        await socket.disconnect()

    run(body)
    other.refresh_from_db()
    assert other.watched_until is None


def watched_until(job):
    return Job.objects.values_list("watched_until", flat=True).get(pk=job.pk)

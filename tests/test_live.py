"""Across processes, for real: a Celery worker process runs a job over the private sshd,
daphne serves the consumers, Redis carries tasks and events, and a websocket client
logged in with a session cookie watches."""

import asyncio
import json
import time

import pytest
import websockets
from django.db import connection
from django.test import Client

from django_remote_submission.models import Job
from django_remote_submission.tasks import submit_job_to_server
from tests.live import LiveStack

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
]

LINES = 1000
PROGRAM = f"""
import time
for i in range({LINES}):
    print("line", i, flush=True)
    if i % 50 == 0:
        time.sleep(0.05)
"""
EXPECTED = [f"line {i}\n" for i in range(LINES)]


@pytest.fixture
def stack(redis_url, tmp_path):
    live = LiveStack(redis_url, tmp_path / "stack").start()
    yield live
    live.stop()


def session_cookie(user):
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def submit(stack, target, job, arguments=None):
    """Send the job through the stack's Redis, as a web process would (with the target's
    login, or ``arguments``)."""
    from celery import Celery

    client = Celery("drs-live-client", broker=stack.redis_url, set_as_current=False)
    client.conf.update(
        task_serializer="json", accept_content=["json"], result_backend=stack.redis_url
    )
    task = client.tasks[submit_job_to_server.name]
    try:
        return task.apply_async(
            kwargs={"job_pk": job.pk, **(arguments or target.submit_kwargs)}, queue=stack.queue
        )
    finally:
        client.close()
        connection.close()  # submit runs in a thread of its own: so does its connection


async def read_frames(stack, path, cookie, until, *, limit=None, listening=None):
    """Frames of one socket until ``until(frame)`` is true, or ``limit`` log rows.

    ``listening``, a future, gets the socket's ``history-complete`` frame: the consumer
    sends it only after joining the group that carries the events, so from then on the
    socket hears every one. If the socket fails or ends first, the future gets the error.
    """
    frames = []
    try:
        async with websockets.connect(
            stack.websocket_url(path), additional_headers={"Cookie": cookie}, origin=stack.origin
        ) as socket:
            while True:
                frame = json.loads(await asyncio.wait_for(socket.recv(), timeout=60))
                frames.append(frame)
                if listening is not None and history_complete(frame):
                    listening.set_result(frame)
                if until(frame):
                    return frames
                if limit is not None and len(log_rows(frames)) >= limit:
                    return frames
    except BaseException as exc:
        if listening is not None and not listening.done():
            listening.set_exception(exc)
        raise
    finally:
        if listening is not None and not listening.done():
            listening.set_exception(AssertionError(f"{path} ended before its history: {frames}"))


async def subscribe(stack, path, cookie, until, *, limit=None):
    """Starts reading a socket and returns once it hears every new event: the task that
    reads it, to be awaited for its frames."""
    listening = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        read_frames(stack, path, cookie, until, limit=limit, listening=listening)
    )
    try:
        await listening
    except BaseException:
        task.cancel()
        raise
    return task


def history_complete(frame):
    return isinstance(frame, dict) and frame.get("event") == "history-complete"


def log_rows(frames):
    return [f for f in frames if isinstance(f, dict) and f.get("event") == "log"]


def finished(frame):
    return isinstance(frame, dict) and frame.get("event") == "status" and frame["finished"]


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.fixture
def job_and_cookie(openssh_target):
    if not openssh_target.account.password:
        from tests.conftest import unavailable

        unavailable("the OpenSSH server offers no password login here")
    job = openssh_target.job(PROGRAM)
    return job, session_cookie(openssh_target.owner)


def test_every_line_exactly_once_in_order_and_the_status_frames(
    stack, openssh_target, job_and_cookie
):
    job, cookie = job_and_cookie

    async def watch():
        statuses = await subscribe(
            stack, "/ws/job-user/", cookie, lambda f: f.get("status") == "success"
        )
        logs = await subscribe(stack, f"/ws/job-log/{job.pk}/", cookie, finished)
        await asyncio.to_thread(submit, stack, openssh_target, job)
        return await statuses, await logs

    status_frames, log_frames = run(watch())
    assert [f["content"] for f in log_rows(log_frames)] == EXPECTED
    ids = [f["log_id"] for f in log_rows(log_frames)]
    assert ids == sorted(set(ids))
    mine = [f["status"] for f in status_frames if f.get("job_id") == job.pk]
    assert mine[0] == "initial"  # the history sent on connect
    assert mine[-2:] == ["submitted", "success"]
    job.refresh_from_db()
    assert job.status == "success"


def test_a_client_that_drops_and_comes_back_with_since_misses_nothing(
    stack, openssh_target, job_and_cookie
):
    job, cookie = job_and_cookie
    path = f"/ws/job-log/{job.pk}/"

    async def watch():
        first = await subscribe(stack, path, cookie, finished, limit=300)
        await asyncio.to_thread(submit, stack, openssh_target, job)
        before = await first  # the client goes away mid-job
        last = log_rows(before)[-1]["log_id"]
        after = await read_frames(stack, f"{path}?since={last}", cookie, finished)
        return before, after

    before, after = run(watch())
    received = [f["content"] for f in log_rows(before) + log_rows(after)]
    assert len(log_rows(before)) < LINES
    assert received == EXPECTED


def test_redis_stopped_while_a_job_runs(openssh_target, job_and_cookie, tmp_path):
    """The job finishes with every row stored; a client catches up afterwards."""
    from django_remote_submission.testing import RedisServer

    job, cookie = job_and_cookie
    job.program = PROGRAM.replace("time.sleep(0.05)", "time.sleep(0.2)")
    job.save()
    redis = RedisServer().start()
    stack = LiveStack(redis.url, tmp_path / "stack").start()
    try:

        async def watch():
            first = await subscribe(stack, f"/ws/job-log/{job.pk}/", cookie, finished, limit=100)
            await asyncio.to_thread(submit, stack, openssh_target, job)
            return await first

        before = run(watch())
        redis.stop()  # mid-job: the worker can publish nothing more
        for _ in range(600):
            job.refresh_from_db()
            if job.is_finished:
                break
            run(asyncio.sleep(0.1))
        assert job.status == "success"
        assert [log.content for log in job.logs.order_by("id")] == EXPECTED

        redis = RedisServer(port=redis.port).start()
        last = log_rows(before)[-1]["log_id"]
        path = f"/ws/job-log/{job.pk}/?since={last}"
        broken = []
        deadline = time.monotonic() + 60
        while True:
            # As a browser does: a socket that the restart broke is opened again: 4503
            # from the consumer, 1011 from daphne when the consumer itself failed. Until
            # the socket is served, however many tries that takes; the pause between
            # tries only spares the machine.
            try:
                after = run(read_frames(stack, path, cookie, finished))
                break
            except websockets.exceptions.ConnectionClosedError as exc:
                broken.append(exc.rcvd.code if exc.rcvd else None)
                assert time.monotonic() < deadline, f"never served again: {broken}"
                run(asyncio.sleep(0.2))
        assert set(broken) <= {4503, 1011}
        received = [f["content"] for f in log_rows(before) + log_rows(after)]
        assert received == EXPECTED
        assert b"Could not publish" in stack.log("worker")
    finally:
        stack.stop()
        redis.stop()


def test_the_origin_is_checked_and_a_session_is_needed(stack, openssh_target):
    job = openssh_target.job("print(1)")

    async def attempt(headers, origin):
        async with websockets.connect(
            stack.websocket_url(f"/ws/job-log/{job.pk}/"), additional_headers=headers, origin=origin
        ) as socket:
            await socket.recv()

    with pytest.raises(websockets.exceptions.InvalidStatus):
        run(attempt({}, "http://evil.example"))
    with pytest.raises(websockets.exceptions.ConnectionClosedError) as excinfo:
        run(attempt({}, stack.origin))
    assert excinfo.value.rcvd.code == 4401
    assert Job.objects.filter(pk=job.pk).exists()

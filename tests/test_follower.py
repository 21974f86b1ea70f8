"""A worker host follows many running jobs over one connection, and a running job holds
no worker slot: real worker processes, the private sshd, numbered lines."""

import asyncio
import itertools
import re
import subprocess
import threading
import time

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from django_remote_submission.models import Job, Log
from django_remote_submission.tasks import cancel_job
from tests.live import LiveStack
from tests.test_live import submit
from tests.test_reattach import FOREVER, numbers, stored_lines, wait_for

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.redis,
    pytest.mark.worker,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

WORKER_ENV = {"DRS_SWEEP": "1", "DRS_LEASE_SECONDS": "4", "DRS_HAND_OVER_AFTER": "0.2"}
JOBS = 16
LINES = 40
PROGRAM = f"""
import time
for i in range(1, {LINES + 1}):
    print("n", i, flush=True)
    time.sleep(0.1)
"""


@pytest.fixture
def stack(redis_url, tmp_path):
    live = LiveStack(redis_url, tmp_path / "stack")
    yield live
    live.stop()


def ssh_connections(username):
    """The connections open to the private sshd for one login (one process each)."""
    result = subprocess.run(
        ["ps", "-u", username, "-o", "args="], capture_output=True, text=True, check=False
    )
    return sum(1 for line in result.stdout.splitlines() if re.match(r"sshd: \S+@notty", line))


def test_many_jobs_run_at_once_on_two_slots_over_few_connections(stack, openssh_target):
    target = openssh_target
    # A program file each: jobs writing one path at once would overwrite each other's.
    jobs = [
        target.job(PROGRAM, title=f"job {i}", remote_filename=f"program-{i}.py")
        for i in range(JOBS)
    ]
    stack.start_worker("only", pool="threads", concurrency=2, **WORKER_ENV)
    seen = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            seen.append(ssh_connections(target.account.username))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for job in jobs:
            submit(stack, target, job)
        for job in jobs:
            wait_for(lambda job=job: Job.objects.get(pk=job.pk).is_finished, what="the jobs")
    finally:
        done.set()
        watcher.join()

    for job in jobs:
        job.refresh_from_db()
        assert (job.state, job.exit_code) == ("success", 0), job.error
        assert numbers(job) == list(range(1, LINES + 1))
    # The most programs running at one moment (a job's start is such a moment).
    running_at_once = max(
        sum(1 for other in jobs if other.started_at <= job.started_at < other.finished_at)
        for job in jobs
    )
    # Two slots, yet many programs ran at once: a running job holds no slot.
    assert running_at_once > 2
    # The pool's cap (4 per host) bounds the connections, whatever the number of jobs.
    assert 1 <= max(seen) <= 4
    assert b"handed over to this host's follower" in stack.log("only")


def test_a_followed_job_is_canceled(stack, openssh_target):
    target = openssh_target
    job = target.job(FOREVER)
    stack.start_worker("only", pool="threads", concurrency=1, **WORKER_ENV)
    submit(stack, target, job)
    wait_for(stored_lines(job, 20), what="the first lines")
    wait_for(lambda: b"handed over" in stack.log("only"), what="the hand-over")

    assert cancel_job(job.pk) is True

    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, what="the cancel")
    job.refresh_from_db()
    assert (job.state, job.status) == ("canceled", "failure")
    assert job.error.startswith("Canceled at the request of a user.")
    assert target.live_processes(job.remote_pgid) == []
    seen = numbers(job)
    assert seen == list(range(1, len(seen) + 1))
    assert Log.objects.filter(job=job).count() >= len(seen)


def test_log_events_go_only_to_watched_jobs_and_a_new_watcher_sees_the_gap(stack, openssh_target):
    from asgiref.sync import async_to_sync
    from channels_redis.core import RedisChannelLayer

    from django_remote_submission import events

    target = openssh_target
    watched, unwatched = (
        target.job(FOREVER, title=name, remote_filename=f"{name}.py")
        for name in ("watched", "unwatched")
    )
    stack.start_worker("only", pool="threads", concurrency=2, **WORKER_ENV)
    for job in (watched, unwatched):
        submit(stack, target, job)
    for job in (watched, unwatched):
        wait_for(stored_lines(job, 20), what="the first lines")
    wait_for(lambda: stack.log("only").count(b"handed over") >= 2, what="the hand-overs")
    layer = RedisChannelLayer(hosts=[stack.redis_url], prefix=f"drs-{stack.queue}")

    async def listen():
        channel = await layer.new_channel()
        for job in (watched, unwatched):
            await layer.group_add(events.job_group(job.pk), channel)
        # As a job-log socket does: watch, then read the history up to now.
        await database_sync_to_async(events.watch)(watched.pk)
        history = await database_sync_to_async(last_log_id)(watched)
        received = []
        while len([m for m in received if m["type"] == "job.logs"]) < 10:
            received.append(await asyncio.wait_for(layer.receive(channel), 30))
        return history, received

    history, received = async_to_sync(listen)()
    logs = [m for m in received if m["type"] == "job.logs"]
    assert {m["job_id"] for m in logs} == {watched.pk}
    # The first event says where the rows it carries (if any) begin: the socket reads
    # from its history to there from the database, so nothing is missed.
    assert logs[0]["after_id"] is not None
    assert logs[0]["after_id"] >= history
    # In order: a pass that took several reads together sends several events of the job.
    for before, after in itertools.pairwise(logs):
        last = before["ids"][-1] if before["ids"] else before["after_id"]
        assert after["after_id"] == last
    for job in (watched, unwatched):
        cancel_job(job.pk)
    for job in (watched, unwatched):
        wait_for(lambda job=job: Job.objects.get(pk=job.pk).is_finished, what="the cancels")


def last_log_id(job):
    last = Log.objects.filter(job=job).order_by("-id").values_list("id", flat=True).first()
    connection.close()
    return last or 0


NUMBERED = """
import time
for i in range(1, 31):
    print("n", i, flush=True)
    time.sleep(0.05)
"""


def test_without_perl_on_the_server_each_job_is_followed_over_its_own_sessions(
    openssh_target,
):
    from django_remote_submission import jobs
    from django_remote_submission.follower import Engine, Follower, follower_key
    from django_remote_submission.runner import HandedOver, run_job

    target = openssh_target
    job = target.job(NUMBERED, remote_filename="alone.py")
    options = target.options()
    ends = []
    engine = Engine(
        jobs.new_owner(),
        lambda job, results, error: ends.append((results, error, threading.current_thread().name)),
    )
    with pytest.raises(HandedOver):
        run_job(job, options, hand_over_after=0)
    job.refresh_from_db()
    # Handed over as soon as it was launched: the task read none of its output.
    assert (job.stdout_offset, job.stderr_offset, job.logs.count()) == (0, 0, 0)
    assert jobs.take_over(job, engine.owner)
    # What a follower that found no perl on the server is (its check sets no_reader).
    key = follower_key(job, options)
    engine.followers[key] = Follower(
        key, engine.owner, engine._finish, engine._follow_alone, engine.on_end, no_reader=True
    )
    try:
        engine.adopt(job)
        wait_for(lambda: ends, what="the job's end")
    finally:
        engine.stop()
    [(results, error, thread)] = ends
    assert (results, error) == ({}, None)
    # Followed and ended by a thread of its own, not by a reader and the finishers.
    assert thread == f"drs-job-{job.pk}"
    job.refresh_from_db()
    assert (job.state, job.exit_code) == ("success", 0), job.error
    assert numbers(job) == list(range(1, 31))


def test_following_many_servers_costs_one_database_connection(openssh_target):
    # Three servers (three rows for the same sshd: three (server, login) to follow), a
    # follower each; their database work all goes through the host's one database thread.
    from django.db.backends.signals import connection_created

    from django_remote_submission import jobs
    from django_remote_submission.follower import Engine
    from django_remote_submission.models import Server
    from django_remote_submission.runner import HandedOver, run_job

    target = openssh_target
    servers = [target.server]
    for index in range(2):
        copy = Server.objects.get(pk=target.server.pk)
        copy.pk, copy.title = None, f"{copy.title} {index}"
        copy.save()
        copy.interpreters.set(target.server.interpreters.all())
        servers.append(copy)
    made = [
        target.job(NUMBERED, server=server, remote_filename=f"many-{i}.py")
        for i, server in enumerate(servers)
    ]
    opened = []

    def record(sender, connection, **kwargs):
        opened.append(threading.current_thread().name)

    ends = []
    engine = Engine(jobs.new_owner(), lambda job, results, error: ends.append((job.pk, error)))
    for job in made:
        with pytest.raises(HandedOver):
            run_job(job, target.options(), hand_over_after=0)
        job.refresh_from_db()
        assert jobs.take_over(job, engine.owner)
    connection_created.connect(record)
    try:
        for job in made:
            engine.adopt(job)
        wait_for(lambda: len(ends) == len(made), what="the jobs' ends")
    finally:
        connection_created.disconnect(record)
        engine.stop()
    assert sorted(ends) == sorted((job.pk, None) for job in made)
    assert len(engine.followers) == 3
    for job in made:
        job.refresh_from_db()
        assert (job.state, job.exit_code) == ("success", 0), job.error
        assert numbers(job) == list(range(1, 31))
    # No follower thread connected; the database thread did, once, for all three.
    assert [name for name in opened if name.startswith("drs-follow")] == []
    assert len([name for name in opened if name.startswith("drs-store")]) == 1


#: Waits until the login's tracker is killed (the test says so by a file), then leaves
#: a child behind in a session of its own (its middle process lives 3 s), and ends when
#: the test has read its record (another file).
ESCAPES_LATER = r"""
while [ ! -e tracker-killed ]; do sleep 0.1; done
sh -c 'setsid sleep 1000 </dev/null >/dev/null 2>&1 &
  echo $! > escaped.tmp && mv escaped.tmp escaped; sleep 3' &
wait
echo "1 middle gone"
while [ ! -e may-end ]; do sleep 0.1; done
"""


def test_a_killed_tracker_is_started_again_by_the_follower(openssh_target, monkeypatch):
    from django_remote_submission import follower as follower_module
    from django_remote_submission import jobs
    from django_remote_submission.follower import Engine
    from django_remote_submission.runner import HandedOver, control_directory, run_job
    from tests.factories import make_interpreter
    from tests.test_kill_tree import TRACKERS

    monkeypatch.setattr(follower_module, "TRACKER_CHECK_SECONDS", 1.0)
    target = openssh_target
    t = target.transport
    shell = make_interpreter(name="sh", path="/bin/sh")
    target.server.interpreters.add(shell)
    job = target.job(ESCAPES_LATER, remote_filename="later.sh", interpreter=shell)
    ends = []
    engine = Engine(jobs.new_owner(), lambda job, results, error: ends.append(error))
    with pytest.raises(HandedOver):
        run_job(job, target.options(), hand_over_after=0)
    job.refresh_from_db()
    assert jobs.take_over(job, engine.owner)
    escaped = None
    try:
        engine.adopt(job)
        wait_for(lambda: t.run_shell(TRACKERS).stdout.split(), what="the login's tracker")
        t.run_shell("pkill -KILL -u \"$(id -u)\" -f '[t]ree[.]sh tracker'")
        assert t.run_shell(TRACKERS).stdout.split() == []
        t.put_text("", f"{target.directory}/tracker-killed")
        wait_for(lambda: job.logs.filter(content="1 middle gone\n").exists(), what="the escape")
        escaped = t.read_file(f"{target.directory}/escaped").decode().strip()
        tree = t.read_file(f"{control_directory(job)}/tree").decode()
        # Recorded by a tracker the follower started again (the job's monitor did not).
        assert escaped in {line.split()[0] for line in tree.splitlines() if line.strip()}
        t.put_text("", f"{target.directory}/may-end")
        wait_for(lambda: ends, what="the job's end")
    finally:
        engine.stop()
        if escaped:
            t.run(["kill", "-KILL", escaped])
    assert ends == [None]


def test_the_reader_sees_a_list_written_again_within_the_second_as_long_as_before(tmp_path):
    # One job replaced by another, in place (same inode), as long, within the same second:
    # only the mtime's fraction tells the two lists apart.
    import os
    import shutil
    import subprocess

    from django_remote_submission.transport.scripts import READER

    if shutil.which("perl") is None:
        pytest.skip("no perl on this machine")
    for name in ("c1", "c2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "stdout").write_bytes(f"{name}\n".encode())
        (tmp_path / name / "stderr").write_bytes(b"")
    (tmp_path / "reader.pl").write_text(READER)
    listing = tmp_path / "list"

    def write_list(job, name, nanoseconds):
        with listing.open("r+b" if listing.exists() else "wb") as out:
            out.truncate(0)
            out.write(f"{job} 0 0 {str(tmp_path / name).encode().hex()} 0\nEND\n".encode())
        os.utime(listing, ns=(second + nanoseconds, second + nanoseconds))

    second = (int(time.time()) - 5) * 10**9
    write_list(7, "c1", 100_000_000)
    reader = subprocess.Popen(
        ["perl", str(tmp_path / "reader.pl"), str(listing), "0.05", "0.05", "65536"],
        stdout=subprocess.PIPE,
    )
    try:
        seen = b""

        def until(data):
            nonlocal seen
            deadline = time.monotonic() + 10
            while data not in seen and time.monotonic() < deadline:
                seen += os.read(reader.stdout.fileno(), 65536)
            return data in seen

        assert until(b"D 7 0 0 3\nc1\n")
        write_list(8, "c2", 600_000_000)
        seen = b""
        assert until(b"D 8 0 0 3\nc2\n")
    finally:
        reader.kill()
        reader.wait()
        reader.stdout.close()

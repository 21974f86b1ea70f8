"""The 2.x task API: through a real Celery worker and Redis, and its failure paths."""

import base64
import datetime as dt
import logging
import re
import socket
import time

import pytest
from django.test import override_settings

from django_remote_submission import secrets
from django_remote_submission.exceptions import (
    AuthenticationFailed,
    ConnectionFailed,
    HostKeyRejected,
    RemoteSubmissionError,
)
from django_remote_submission.logstream import LogPolicy
from django_remote_submission.models import Job
from django_remote_submission.tasks import (
    LogPolicy as ExportedLogPolicy,
)
from django_remote_submission.tasks import (
    cancel_job,
    copy_key_to_server,
    delete_key_from_server,
    is_matching,
    submit_job_to_server,
)
from django_remote_submission.testing import free_port, generate_key_pair
from tests.conftest import unavailable

pytestmark = pytest.mark.ssh


def test_2x_names_and_values():
    assert ExportedLogPolicy is LogPolicy
    assert (LogPolicy.LOG_NONE, LogPolicy.LOG_LIVE, LogPolicy.LOG_TOTAL) == (0, 1, 2)
    assert is_matching("1.txt", ["!*.txt", "[12].txt"])
    assert submit_job_to_server.name == "django_remote_submission.tasks.submit_job_to_server"


HOLD_FOR_THE_TEST = """
    import socket
    print("line", 0, flush=True)
    # Holds the job until the test has looked through Redis while it runs.
    with socket.create_connection(("127.0.0.1", {port}), timeout=60) as test:
        test.recv(1)
    for i in (1, 2):
        print("line", i, flush=True)
    open("out.txt", "w").write("done")
"""


def scan_redis(redis_url, needle):
    """Every key and value in every Redis database that holds `needle`, in clear or in
    the base64 body of a message (as Kombu's Redis transport stores task arguments)."""
    import redis

    found = []
    with redis.Redis.from_url(redis_url) as connection:
        for db in range(16):
            with redis.Redis.from_url(redis_url, db=db) as client:
                for key in client.scan_iter(count=1000):
                    kind = client.type(key)
                    values = {
                        b"string": lambda k, c=client: [c.get(k)],
                        b"list": lambda k, c=client: c.lrange(k, 0, -1),
                        b"hash": lambda k, c=client: [*c.hgetall(k).keys(), *c.hgetall(k).values()],
                        b"set": lambda k, c=client: list(c.smembers(k)),
                        b"zset": lambda k, c=client: c.zrange(k, 0, -1),
                    }.get(kind, lambda k: [])(key)
                    readable = [*values, *(body for v in values for body in message_bodies(v))]
                    if needle in key or any(needle in (v or b"") for v in readable):
                        found.append((db, key))
        connection.ping()
    return found


def message_bodies(value):
    return [
        base64.b64decode(body) for body in re.findall(rb'"body": "([A-Za-z0-9+/=]*)"', value or b"")
    ]


@pytest.mark.worker
@pytest.mark.redis
def test_submit_through_celery_and_redis_leaves_no_password_anywhere(
    celery_worker, celery_app, redis_url, openssh_target, caplog
):
    target = openssh_target
    if not target.account.password:
        unavailable("the OpenSSH server offers no password login here")
    caplog.set_level(logging.DEBUG)
    celery_app.conf.result_extended = True
    password = target.account.password
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(60)
        job = target.job(HOLD_FOR_THE_TEST.format(port=listener.getsockname()[1]))
        result = submit_job_to_server.delay(
            job_pk=job.pk,
            password=password,
            username=target.account.username,
            timeout=dt.timedelta(minutes=5),
            store_results=["*.txt"],
        )
        held, _ = listener.accept()  # the job runs: its task is the worker's
        with held:
            during = scan_redis(redis_url, password.encode())
            # The scan reads the task's arguments where the broker keeps them.
            sealed = scan_redis(redis_url, secrets.MARKER.encode())
            held.sendall(b"go")
    results = result.get(timeout=60)
    assert sealed != []
    assert list(results) == ["out.txt"]
    job.refresh_from_db()
    assert job.status == "success"
    assert job.task_id == result.id
    assert [log.content for log in job.logs.order_by("id")] == [f"line {i}\n" for i in range(3)]
    assert during == []
    assert scan_redis(redis_url, password.encode()) == []
    assert all(password not in record.getMessage() for record in caplog.records)
    meta = celery_app.backend.get_task_meta(result.id)
    assert password not in repr(meta)
    assert secrets.is_sealed(meta["kwargs"]["password"])  # stored, but sealed
    assert not any(password in str(value) for value in Job.objects.values().get(pk=job.pk).values())


def test_the_password_is_sealed_before_it_reaches_the_broker(target):
    """apply_async hands Celery a sealed password and a masked representation."""
    sent = {}

    class Recorder(Exception):
        pass

    from celery import Task

    original = Task.apply_async

    def record(self, args=None, kwargs=None, **options):
        sent.update(kwargs=kwargs, options=options)
        raise Recorder

    Task.apply_async = record
    try:
        with pytest.raises(Recorder):
            submit_job_to_server.delay(7, "hunter2", timeout=dt.timedelta(seconds=90))
    finally:
        Task.apply_async = original
    assert sent["kwargs"]["job_pk"] == 7
    assert secrets.is_sealed(sent["kwargs"]["password"])
    assert "hunter2" not in repr(sent["kwargs"])
    assert secrets.unseal(sent["kwargs"]["password"]) == "hunter2"
    assert sent["kwargs"]["timeout"] == 90.0
    assert "hunter2" not in sent["options"]["kwargsrepr"]
    assert "'password': '********'" in sent["options"]["kwargsrepr"]


# Failures end the job in failure, with the cause named ------------------------------


def failed(job):
    job.refresh_from_db()
    assert job.status == "failure"
    assert job.finished_at is not None
    return job.error


def ssh_only(target):
    if not target.account.password:
        unavailable(f"the {target.name} server offers no password login here")


def test_wrong_password(ssh_target, caplog):
    target = ssh_target
    ssh_only(target)
    caplog.set_level(logging.DEBUG)
    job = target.job("print(1)")
    with pytest.raises(AuthenticationFailed):
        submit_job_to_server(
            job_pk=job.pk, password="not-the-password", username=target.account.username
        )
    assert "refused the password" in failed(job)
    assert all("not-the-password" not in record.getMessage() for record in caplog.records)


def test_unreachable_host(ssh_target):
    target = ssh_target
    ssh_only(target)
    job = target.job("print(1)")
    job.server.port = free_port()
    job.server.save()
    with pytest.raises(ConnectionFailed):
        submit_job_to_server(job_pk=job.pk, **target.submit_kwargs)
    assert "Connection refused" in failed(job)


def test_host_key_mismatch(ssh_target, tmp_path):
    target = ssh_target
    ssh_only(target)
    _, other = generate_key_pair(tmp_path / "other")
    job = target.job("print(1)")
    job.server.host_key = other
    job.server.save()
    with pytest.raises(HostKeyRejected):
        submit_job_to_server(job_pk=job.pk, **target.submit_kwargs)
    assert "CHANGED" in failed(job)


def test_unknown_host_key_under_tofu_is_pinned_on_the_server(ssh_target, monkeypatch, tmp_path):
    target = ssh_target
    ssh_only(target)
    monkeypatch.setenv("HOME", str(tmp_path))
    job = target.job("print(1)")
    job.server.host_key = ""
    job.server.save()
    with override_settings(REMOTE_SUBMISSION_HOST_KEY_POLICY="tofu"):
        submit_job_to_server(job_pk=job.pk, **target.submit_kwargs)
    job.server.refresh_from_db()
    assert job.server.host_key.split()[:2] == target.account.host_key.split()[:2]


def test_a_bad_timeout_fails_the_job(target):
    job = target.job("print(1)")
    with pytest.raises(ValueError, match="timeout must be positive"):
        submit_job_to_server(job_pk=job.pk, timeout=-1, **target.submit_kwargs)
    assert "timeout must be positive" in failed(job)


def test_username_defaults_to_the_server_default_then_the_owner(target):
    from django_remote_submission.runner import login_name

    job = target.job("print(1)")
    assert login_name(job) == "owner@example.com"
    assert login_name(job, "") == "owner@example.com"
    job.server.username = "service"
    assert login_name(job) == "service"
    assert login_name(job, "alice") == "alice"


def test_rerunning_after_a_cancel_runs(target):
    job = target.job("print('second run')")
    cancel_job(job.pk)
    assert failed(job) == "Canceled before it started."
    submit_job_to_server(job_pk=job.pk, **target.submit_kwargs)
    job.refresh_from_db()
    assert job.status == "success"
    assert job.logs.get().content == "second run\n"


def test_copy_and_delete_key_tasks(ssh_target, tmp_path, monkeypatch):
    target = ssh_target
    ssh_only(target)
    monkeypatch.setenv("HOME", str(tmp_path))
    key, _ = generate_key_pair(tmp_path / ".ssh" / "id_ed25519")
    # No known_hosts: the key tasks trust the key pinned on the Server for that host.
    account = target.account
    arguments = {
        "username": account.username,
        "password": account.password,
        "hostname": account.hostname,
        "port": account.port,
    }
    assert copy_key_to_server(**arguments) is None
    job = target.job("print('with the deployed key')")
    submit_job_to_server(job_pk=job.pk, username=account.username)  # no password: ~/.ssh key
    assert job.logs.get().content == "with the deployed key\n"
    delete_key_from_server(public_key_filename=f"{key}.pub", **arguments)
    job = target.job("print(1)")
    with pytest.raises(AuthenticationFailed):
        submit_job_to_server(job_pk=job.pk, username=account.username)
    assert "refused every key offered" in failed(job)


def test_store_results_as_one_string_is_one_pattern(target):
    job = target.job("open('a.txt', 'w')\nopen('b.csv', 'w')")
    assert list(
        submit_job_to_server(job_pk=job.pk, store_results="*.txt", **target.submit_kwargs)
    ) == ["a.txt"]


def test_a_secret_the_worker_cannot_open_fails_the_job(target):
    job = target.job("print(1)")
    with override_settings(SECRET_KEY="the-web-process-key", SECRET_KEY_FALLBACKS=[]):
        sealed = secrets.seal("pw")
    with pytest.raises(secrets.SecretError):
        submit_job_to_server(job_pk=job.pk, password=sealed, remote=False)
    assert "must share SECRET_KEY" in failed(job)


@pytest.mark.worker
@pytest.mark.redis
def test_canceling_a_queued_job_keeps_it_from_running(celery_app, target, transactional_db):
    from celery.contrib.testing.worker import start_worker

    job = target.job("open('ran.txt', 'w')")
    result = submit_job_to_server.delay(job_pk=job.pk, **target.submit_kwargs)
    job.refresh_from_db()
    assert job.task_id == result.id
    assert cancel_job(job.pk) is True
    with (
        start_worker(celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING"),
        pytest.raises(RemoteSubmissionError, match="Canceled before it started"),
    ):
        result.get(timeout=60)
    assert failed(job) == "Canceled before it started."
    assert not target.transport.exists(f"{target.directory}/ran.txt")
    # Sent again, it runs: the new submission clears the old request.
    submit_job_to_server.delay(job_pk=job.pk, **target.submit_kwargs)
    with start_worker(celery_app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status == "success":
                break
            time.sleep(0.1)
    assert job.status == "success"

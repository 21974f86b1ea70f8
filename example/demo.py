#!/usr/bin/env python
"""Run the example site with everything it needs, on this machine: `make demo`.

Prepares the database (SQLite in var/ unless DATABASE_URL says otherwise), a demo user,
an embedded Redis unless REDIS_URL is set, an embedded SSH server on loopback unless
example/.env names a real host (EXAMPLE_SERVER_HOSTNAME), then starts a Celery worker and
the ASGI server and prints where to go. Ctrl-C (or SIGTERM) stops all of it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import getpass
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEMO_USER = "demo"
DEMO_SERVER_PK = 1
#: Seconds the worker gets to stop once its jobs are ended, before it is killed.
WORKER_STOP_SECONDS = 5
PYTHON_INTERPRETER_PK = 1


class DemoError(Exception):
    """Something the user must fix; printed without a traceback."""


def _read_env_file() -> None:
    import environ

    environ.Env.read_env(HERE / ".env", overwrite=False)


def _unset(name: str) -> bool:
    return not os.environ.get(name, "").strip()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _die_with_parent() -> None:
    """In a child: a session of its own (the terminal's Ctrl-C reaches the demo only,
    which ends the jobs first, then stops the processes in order), and SIGTERM if the
    demo itself dies, so nothing is left running."""
    os.setsid()
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Demo:
    def __init__(self, port: int | None, *, reset_password: bool = False) -> None:
        self.requested_port = port
        self.reset_password = reset_password
        self.port = 0
        self.var = Path(os.environ.get("EXAMPLE_VAR_DIR", "").strip() or HERE / "var").resolve()
        self.logs = self.var / "logs"
        self.redis: Any = None
        self.ssh: Any = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = threading.Event()

    # -- the services the site needs --------------------------------------------------

    def start_redis(self) -> str:
        if not _unset("REDIS_URL"):
            return f"{os.environ['REDIS_URL']} (from REDIS_URL)"
        from django_remote_submission.testing import RedisServer

        # SIGTERM when the demo dies, however it dies: nothing of it is left running.
        self.redis = RedisServer(directory=self.var / "redis", die_with_parent=True).start()
        os.environ["REDIS_URL"] = self.redis.url
        return f"embedded, {self.redis.url}"

    def start_ssh(self) -> str:
        if not _unset("EXAMPLE_SERVER_HOSTNAME"):
            host = os.environ["EXAMPLE_SERVER_HOSTNAME"]
            port = os.environ.get("EXAMPLE_SERVER_PORT", "").strip() or "22"
            return f"{host}:{port} (from example/.env)"
        from django_remote_submission.testing import EmbeddedSSHServer, generate_key_pair

        key = self.var / "demo_ed25519"
        if not key.exists():
            generate_key_pair(key, comment="django-remote-submission demo")
        public_key = Path(f"{key}.pub").read_text().strip()
        home = self.var / "ssh-home"
        (home / "jobs").mkdir(parents=True, exist_ok=True)
        self.ssh = EmbeddedSSHServer(home=home, authorized_keys=[public_key]).start()
        os.environ.update(
            EXAMPLE_SERVER_HOSTNAME=self.ssh.host,
            EXAMPLE_SERVER_PORT=str(self.ssh.port),
            EXAMPLE_SERVER_HOST_KEY=self.ssh.host_key,
            EXAMPLE_REMOTE_USER=self.ssh.username,
            EXAMPLE_REMOTE_KEY_FILENAME=str(key),
        )
        if _unset("EXAMPLE_REMOTE_DIRECTORY"):
            os.environ["EXAMPLE_REMOTE_DIRECTORY"] = str(home / "jobs") + "/"
        if _unset("EXAMPLE_PYTHON_PATH"):
            # The jobs run on this machine: the demo's own Python is there for sure.
            os.environ["EXAMPLE_PYTHON_PATH"] = sys.executable
        return (
            f"embedded, {self.ssh.host}:{self.ssh.port}, jobs run here as {self.ssh.username} "
            f"in {os.environ['EXAMPLE_REMOTE_DIRECTORY']}"
        )

    # -- the database ----------------------------------------------------------------

    def prepare_database(self) -> str:
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")
        django.setup()
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.core.management import call_command

        from django_remote_submission.models import Interpreter, Server

        call_command("migrate", interactive=False, verbosity=0)
        if not Server.objects.exists() and not Interpreter.objects.exists():
            call_command("loaddata", str(HERE / "fixtures" / "initial_data.json"), verbosity=0)

        python = Interpreter.objects.filter(pk=PYTHON_INTERPRETER_PK).first()
        if python is not None:
            python.path = settings.EXAMPLE_PYTHON_PATH
            python.arguments = settings.EXAMPLE_PYTHON_ARGUMENTS
            python.save()
        server = Server.objects.filter(pk=DEMO_SERVER_PK).first()
        if server is not None:
            server.hostname = settings.EXAMPLE_SERVER_HOSTNAME
            server.port = settings.EXAMPLE_SERVER_PORT
            server.username = settings.EXAMPLE_REMOTE_USER
            if settings.EXAMPLE_SERVER_HOST_KEY:
                server.host_key = settings.EXAMPLE_SERVER_HOST_KEY
            server.save()
            if python is not None:
                server.interpreters.add(python)
            if not server.host_key:
                print(
                    f"  Note: no host key is pinned for {server.hostname}:{server.port}. Pin it "
                    f"with `python manage.py remote_pin_host_key {server.pk}` in example/, "
                    "or jobs fail with an unknown host key."
                )

        password_file = self.var / "demo-password"
        if self.reset_password or not password_file.exists():
            password_file.touch(mode=0o600)
            password_file.write_text(secrets.token_urlsafe(12))
        password = password_file.read_text().strip()
        user, _ = get_user_model().objects.get_or_create(username=DEMO_USER)
        user.is_staff = user.is_superuser = True
        # Set only when it changed: a new hash would log out every open session.
        if not user.check_password(password):
            user.set_password(password)
        user.save()
        return password

    # -- the site's processes --------------------------------------------------------

    def _spawn(self, name: str, arguments: list[str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", *arguments],
                cwd=HERE,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    def _tail(self, name: str, lines: int = 25) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _wait(self, name: str, ready: Any, what: str) -> None:
        deadline = time.monotonic() + 120
        while not ready():
            process = self.processes[name]
            if process.poll() is not None:
                raise DemoError(f"The {what} stopped at start:\n{self._tail(name)}")
            if time.monotonic() > deadline or self.stopping.is_set():
                raise DemoError(f"The {what} did not start in time:\n{self._tail(name)}")
            time.sleep(0.1)

    def start_site(self) -> None:
        port = self.requested_port or int(os.environ.get("DEMO_PORT", "").strip() or 8000)
        if not _port_is_free(port):
            if self.requested_port:
                raise DemoError(f"Port {port} is in use; pick another with --port.")
            from django_remote_submission.testing import free_port

            print(f"  Port {port} is in use; using a free one.")
            port = free_port()
        self.port = port
        worker_log = self.logs / "worker.log"
        log_start = worker_log.stat().st_size if worker_log.exists() else 0
        # A thread pool: a job waits on its server most of the time, so one worker process
        # follows several jobs, and a cancel is not stuck behind a running job.
        self._spawn(
            "worker",
            ["celery", "-A", "server.celery", "worker", "-P", "threads", "-c", "4",
             "-l", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        )  # fmt: skip
        self._spawn(
            "web",
            ["daphne", "-b", "127.0.0.1", "-p", str(port), "server.asgi:application"],
        )

        def worker_ready() -> bool:
            path = self.logs / "worker.log"
            with path.open("rb") as log:
                log.seek(log_start)
                return b" ready." in log.read()

        def web_ready() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        self._wait("web", web_ready, "web server")
        self._wait("worker", worker_ready, "Celery worker")

    # -- stopping --------------------------------------------------------------------

    def stop(self) -> None:
        # The running jobs end first, with the reason why, and their programs stop: the
        # worker then has nothing to finish. Its warm shutdown (SIGTERM) lets the tasks
        # that noticed return; a worker still busy after a few seconds is killed (its
        # jobs are recorded already). Celery's cold shutdown is not used: its thread
        # pool cannot kill a task, and says so with a traceback.
        self._end_running_jobs()
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + WORKER_STOP_SECONDS
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()
        self._end_running_jobs()
        if self.ssh is not None:
            self.ssh.stop()
            self.ssh = None
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def _end_running_jobs(self) -> None:
        """Jobs not ended yet: record why they end, and stop their programs when they run
        on this machine (the embedded server)."""
        from django.apps import apps

        if not apps.ready:
            return
        from django.db.models import Q

        from django_remote_submission.exceptions import JobCanceled
        from django_remote_submission.models import Job
        from django_remote_submission.runner import record_failure

        State = Job.State
        sent = Q(state=State.QUEUED, queued_at__isnull=False)  # made and never sent: kept
        active = Q(state__in=[State.STARTING, State.RUNNING, State.FINISHING]) | sent
        for job in Job.objects.filter(active):
            record_failure(job, JobCanceled("The demo was stopped while this job ran."))
            if self.ssh is not None and job.remote_pgid and job.server_id == DEMO_SERVER_PK:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(job.remote_pgid, signal.SIGKILL)

    # -- the whole run ---------------------------------------------------------------

    def run(self) -> int:
        def on_signal(signum: int, frame: Any) -> None:
            self.stopping.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        print("Starting the django-remote-submission demo…", flush=True)
        try:
            redis = self.start_redis()
            ssh = self.start_ssh()
            password = self.prepare_database()
            self.start_site()
        except DemoError as exc:
            print(f"\nThe demo could not start: {exc}", file=sys.stderr)
            self.stop()
            return 1
        except BaseException:
            self.stop()
            raise
        url = f"http://127.0.0.1:{self.port}"
        print(
            f"""
  The demo is running.

  Site:       {url}/example/
  Log in as:  {DEMO_USER} / {password}
  Admin:      {url}/admin/
  REST API:   {url}/api/
  Redis:      {redis}
  SSH server: {ssh}
  Logs:       {self.logs / "web.log"}, {self.logs / "worker.log"}

  Press Ctrl-C to stop.
""",
            flush=True,
        )
        status = 0
        while not self.stopping.wait(0.5):
            for name, process in self.processes.items():
                if process.poll() is not None:
                    print(f"\nThe {name} process stopped:\n{self._tail(name)}", file=sys.stderr)
                    status = 1
                    self.stopping.set()
        print("\nStopping…", flush=True)
        self.stop()
        print("Stopped.", flush=True)
        return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, help="the site's port (default 8000, or DEMO_PORT)")
    parser.add_argument(
        "--reset-password",
        action="store_true",
        help="give the demo user a new password (this logs out its open sessions)",
    )
    arguments = parser.parse_args()
    os.chdir(HERE)
    sys.path.insert(0, str(HERE))
    _read_env_file()
    getpass.getuser()  # fail early on a machine where the user has no name
    return Demo(arguments.port, reset_password=arguments.reset_password).run()


if __name__ == "__main__":
    sys.exit(main())

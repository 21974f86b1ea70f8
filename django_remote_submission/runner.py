"""Run one job over a Transport: stage, launch, follow, finish, collect. No Celery here."""

from __future__ import annotations

import datetime as dt
import getpass
import logging
import posixpath
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from django.utils import timezone

from django_remote_submission import jobs
from django_remote_submission.conf import conf
from django_remote_submission.exceptions import (
    AuthenticationFailed,
    ConnectionFailed,
    ConnectionLost,
    RemoteSubmissionError,
)
from django_remote_submission.logstream import STREAMS, LineSplitter, LogPolicy, LogRow, LogWriter
from django_remote_submission.models import Job, Log, Server
from django_remote_submission.results import collect, snapshot
from django_remote_submission.transport import LocalTransport, SSHTransport, Transport
from django_remote_submission.transport.detached import DetachedProcess, describe_survivors

logger = logging.getLogger(__name__)

#: Seconds between looks at the database for a cancel request while a job runs.
CANCEL_CHECK_SECONDS = 0.5
#: Characters of the program's last stderr line quoted in a failed job's error.
REASON_LENGTH = 500
#: Seconds before the first try at connecting again after a lost connection, and the
#: longest pause between tries (the pause doubles after each).
RECONNECT_FIRST_PAUSE = 0.5
RECONNECT_MAX_PAUSE = 30.0

T = TypeVar("T")


@dataclass
class RunOptions:
    """How to run a job; secrets here live only in the worker's memory."""

    username: str | None = None
    password: str | None = None
    key_filename: str | None = None
    passphrase: str | None = None
    timeout: float | None = None
    log_policy: LogPolicy = LogPolicy.LOG_LIVE
    store_results: Sequence[str] | None = None
    remote: bool = True
    task_id: str = ""
    on_batch: Callable[[Sequence[LogRow]], None] | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (
            f"RunOptions(username={self.username!r}, timeout={self.timeout!r}, "
            f"log_policy={self.log_policy!r}, store_results={self.store_results!r}, "
            f"remote={self.remote!r})"
        )


def login_name(job: Job, username: str | None = None) -> str:
    """The SSH login: the one asked for, else the server's default, else the owner's."""
    return username or job.server.username or job.owner.get_username()


def server_login_name(server: Server, username: str | None = None) -> str:
    """The SSH login outside a job (a connection test): the one asked for, else the
    server's default, else this process's OS user, as ``ssh`` would."""
    return username or server.username or getpass.getuser()


def build_transport(job: Job, options: RunOptions) -> Transport:
    if not options.remote:
        return LocalTransport()
    server = job.server
    return SSHTransport(
        server.hostname,
        server.port,
        login_name(job, options.username),
        password=options.password,
        key_filename=options.key_filename,
        passphrase=options.passphrase,
        host_key=server.host_key or None,
        on_new_host_key=lambda line: pin_first_key(server, line),
    )


def pin_first_key(server: Server, line: str) -> None:
    """Trust on first use: store the key only if none was pinned meanwhile."""
    Server.objects.filter(pk=server.pk, host_key="").update(host_key=line)
    server.host_key = line


def remote_directory(job: Job) -> str:
    """The job's directory as the transport expects it (``~/x`` means the login's ``x``)."""
    directory = job.remote_directory.strip() or "."
    if directory == "~":
        return "."
    if directory.startswith("~/"):
        return directory[2:] or "."
    return directory.rstrip("/") or "/"


def control_directory(job: Job) -> str:
    return posixpath.join(remote_directory(job), f".drs-{job.uuid}")


def program_path(job: Job) -> str:
    return posixpath.join(remote_directory(job), job.remote_filename)


def program_argument(job: Job) -> str:
    # A name starting with "-" would be read as an option by the interpreter.
    name = job.remote_filename
    return name if not name.startswith("-") else f"./{name}"


class ServerGone(ConnectionLost):
    """The connection was lost and could not be made again in time: the program may
    still run on the server."""


class JobCanceled(RemoteSubmissionError):
    pass


class JobRunner:
    """Runs one job to its end. Every way out leaves the job in success or failure."""

    def __init__(self, job: Job, transport: Transport, options: RunOptions) -> None:
        self.job = job
        self.transport = transport
        self.options = options
        self.writer = LogWriter(
            job,
            LogPolicy(options.log_policy),
            batch_lines=conf.LOG_BATCH_LINES,
            batch_seconds=conf.LOG_BATCH_SECONDS,
            max_bytes=conf.LOG_MAX_BYTES,
            on_batch=options.on_batch,
        )
        self._next_cancel_check = 0.0

    def run(self) -> dict[str, int]:
        try:
            with self.transport:
                before = self.stage()
                process = self.launch()
                try:
                    self.follow(process)
                    exit_code, error = self._reconnecting(lambda: self.finish(process))
                except ServerGone:
                    raise  # its program runs on, to be collected when the server is back
                except Exception:
                    # Nobody would follow it or collect its results: stop it, over the
                    # job's own connections.
                    self._stop_program()
                    raise
                results = self._reconnecting(lambda: self.collect(before))
                self._reconnecting(self.cleanup)
        except Exception as exc:
            self.fail(exc)
            raise
        except BaseException as exc:  # Ctrl-C in remote_submit, a worker shutting down
            self._stop_program()
            self.fail(RemoteSubmissionError(f"Interrupted ({type(exc).__name__})."))
            raise
        self.end(exit_code, error)
        return results

    # The steps -----------------------------------------------------------------------

    def stage(self) -> dict[str, tuple[int, float]]:
        if self._cancel_requested():
            raise JobCanceled("Canceled before it started.")
        directory = remote_directory(self.job)
        self.transport.mkdir_p(directory)
        self.transport.put_text(self.job.program, program_path(self.job))
        return snapshot(self.transport.list_tree(directory))

    def launch(self) -> DetachedProcess:
        command = [*self.job.interpreter.command, program_argument(self.job)]
        process = self.transport.start_detached(
            command,
            cwd=remote_directory(self.job),
            control_directory=control_directory(self.job),
            time_limit=self.options.timeout,
            grace=conf.KILL_GRACE,
        )
        job = self.job
        job.status = Job.STATUS.submitted
        job.started_at = timezone.now()
        job.finished_at = None
        job.exit_code = None
        job.error = ""
        job.remote_pid = process.monitor_pid
        job.remote_pgid = process.pgid
        job.stdout_offset = job.stderr_offset = 0
        job.heartbeat = job.started_at
        job.task_id = self.options.task_id or job.task_id
        job.save(
            update_fields=[
                "status",
                "started_at",
                "finished_at",
                "exit_code",
                "error",
                "remote_pid",
                "remote_pgid",
                "stdout_offset",
                "stderr_offset",
                "heartbeat",
                "task_id",
                "modified",
            ]
        )
        logger.info(
            "Job %s started on %s (pgid %s)", job.pk, self.transport.description, process.pgid
        )
        return process

    def follow(self, process: DetachedProcess) -> None:
        splitters = [LineSplitter(conf.LOG_MAX_LINE_LENGTH) for _ in STREAMS]
        #: Bytes of each stream read so far: where following goes on after a reconnect.
        read = [0 for _ in STREAMS]
        canceled = False
        following = True
        while following:
            files = [(process.stdout_path, read[0]), (process.stderr_path, read[1])]
            try:
                for item in self.transport.follow(files, process=process):
                    if item is None:
                        self.writer.tick()
                    else:
                        index, chunk = item
                        read[index] += len(chunk)
                        lines = splitters[index].feed(chunk)
                        offset = splitters[index].offset
                        self.writer.add(STREAMS[index], lines, offset, timezone.now())
                    if not canceled and self._cancel_requested():
                        canceled = True
                        self.transport.put_text("", f"{process.control_directory}/canceled")
                        # What survives is named by the job's reason (``finish``).
                        self.transport.stop(process, grace=conf.KILL_GRACE)
                following = False
            except ConnectionLost as exc:
                self.writer.flush()  # what was read is stored before the wait
                self._reconnect(exc)
        now = timezone.now()
        for index, splitter in enumerate(splitters):
            self.writer.add(STREAMS[index], splitter.finish(), splitter.offset, now)
        self.writer.close()

    def finish(self, process: DetachedProcess) -> tuple[int, str]:
        code, markers = self.transport.outcome(process)
        if code is None:
            code = self.transport.wait_for_exit_code(process)
            code, markers = self.transport.outcome(process)
            assert code is not None
        # The stop (a cancel's or the time limit's) left what survived it on the server.
        survived = describe_survivors(self.transport.survivors(process)) if markers else ""
        if "canceled" in markers:
            return code, f"Canceled at the request of a user.{survived}"
        if "timed_out" in markers:
            return code, (
                f"Timed out: the program ran longer than {self.options.timeout:g} s, so the "
                f"server stopped it (TERM, then KILL after {conf.KILL_GRACE:g} s).{survived}"
            )
        if code == 0:
            return code, ""
        reason = self._last_stderr_line(process)
        if code in (126, 127):
            return code, f"The program could not be started (exit code {code}): {reason}"
        if reason:
            return code, f"The program exited with code {code}: {reason}"
        return code, f"The program exited with code {code}."

    def collect(self, before: dict[str, tuple[int, float]]) -> dict[str, int]:
        directory = remote_directory(self.job)
        return collect(
            self.job,
            self.transport,
            directory,
            before,
            patterns=self.options.store_results,
            exclude=[self.job.remote_filename, f".drs-{self.job.uuid}/"],
            report=lambda text: self.writer.note("stderr", text),
        )

    def cleanup(self) -> None:
        try:
            self.transport.remove(control_directory(self.job), recursive=True)
        except RemoteSubmissionError as exc:
            logger.warning("Could not remove the control directory of job %s: %s", self.job.pk, exc)

    # Outcomes ------------------------------------------------------------------------

    def end(self, exit_code: int, error: str) -> None:
        if jobs.finish(self.job, exit_code, error):
            logger.info("Job %s ended: %s (exit code %s)", self.job.pk, self.job.status, exit_code)

    def _stop_program(self) -> None:
        job = self.job
        if job.status != Job.STATUS.submitted or job.remote_pgid is None:
            return
        process = DetachedProcess(job.remote_pgid, job.remote_pid or 0, control_directory(job))
        try:
            with self.transport:
                survivors = self.transport.stop(process, grace=conf.KILL_GRACE)
        except Exception:
            logger.warning("Could not stop the program of job %s", job.pk, exc_info=True)
            return
        if survivors:
            logger.warning(
                "The program of job %s was stopped, but%s", job.pk, describe_survivors(survivors)
            )

    def fail(self, exc: BaseException) -> None:
        try:
            self.writer.close()  # what was read is stored, even now
        except Exception:
            logger.exception("Could not store the last lines of job %s", self.job.pk)
        record_failure(self.job, exc)

    # Reconnecting --------------------------------------------------------------------

    def _reconnecting(self, step: Callable[[], T]) -> T:
        """Run a step of the job, again after a reconnect if the connection is lost."""
        while True:
            try:
                return step()
            except ConnectionLost as exc:
                self._reconnect(exc)

    def _reconnect(self, lost: ConnectionLost) -> None:
        """Connect again, with backoff, for at most RECONNECT_TIMEOUT seconds; raise
        ServerGone after that. The program runs on meanwhile: it was started detached,
        and its output waits in its control directory."""
        started = time.monotonic()
        deadline = started + conf.RECONNECT_TIMEOUT
        pause = RECONNECT_FIRST_PAUSE
        last: Exception = lost
        logger.warning("Job %s lost its connection (%s); connecting again", self.job.pk, lost)
        while True:
            self.transport.close()  # let go of the dead connection
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServerGone(
                    f"{lost} Connecting again failed for {conf.RECONNECT_TIMEOUT:g} s "
                    f"(REMOTE_SUBMISSION_RECONNECT_TIMEOUT), last with: {last} The program "
                    "may still be running on the server, as process group "
                    f"{self.job.remote_pgid}."
                ) from lost
            time.sleep(min(pause, remaining))
            pause = min(RECONNECT_MAX_PAUSE, pause * 2)
            self.writer.tick()  # this worker is alive, and still responsible for the job
            try:
                self.transport.open()
                if not self.transport.run(["true"]).ok:
                    raise ConnectionFailed("the server could not run `true`")
            except (ConnectionFailed, AuthenticationFailed) as exc:
                last = exc
                continue
            waited = time.monotonic() - started
            logger.info("Job %s is connected again after %.1f s", self.job.pk, waited)
            self.writer.note(
                "stderr", f"The connection was lost ({lost}); connected again after {waited:.0f} s."
            )
            return

    # Helpers -------------------------------------------------------------------------

    def _cancel_requested(self) -> bool:
        now = time.monotonic()
        if now < self._next_cancel_check:
            return False
        self._next_cancel_check = now + CANCEL_CHECK_SECONDS
        return Job.objects.filter(pk=self.job.pk, cancel_requested_at__isnull=False).exists()

    def _last_stderr_line(self, process: DetachedProcess) -> str:
        size = self.transport.file_size(process.stderr_path) or 0
        tail = self.transport.read_file(process.stderr_path, max(0, size - 4096))
        lines = [line.strip() for line in tail.decode("utf-8", "replace").splitlines()]
        lines = [line for line in lines if line]
        return lines[-1][:REASON_LENGTH] if lines else ""


def record_failure(job: Job, exc: BaseException) -> None:
    """End the job in failure with a reason a person can read; it must never stay
    initial or submitted. A job that has ended already keeps its outcome."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, RemoteSubmissionError):
        logger.info("Job %s failed: %s", job.pk, reason)
    else:
        reason = f"{type(exc).__name__}: {reason}"
        logger.error("Job %s failed unexpectedly", job.pk, exc_info=exc)
    try:
        jobs.fail(job, reason)
    except Exception:
        logger.exception("Could not record the failure of job %s", job.pk)


def run_job(job: Job, options: RunOptions, transport: Transport | None = None) -> dict[str, int]:
    """Run ``job`` to its end and return ``{relative path: result pk}``.

    Raises the error that ended it early, after recording it on the job.
    """
    if job.is_finished and job.cancel_requested_at is None:
        # Run again: this run's outcome is its own, from the start.
        jobs.begin_run(job.pk)
        job.refresh_from_db()
    if transport is None:
        try:
            transport = build_transport(job, options)
        except Exception as exc:
            record_failure(job, exc)
            raise
    return JobRunner(job, transport, options).run()


def copy_job(job: Job, options: RunOptions) -> None:
    """Upload the program without running it, as 2.x's copy_job_to_server did."""
    try:
        transport = build_transport(job, options)
        with transport:
            transport.mkdir_p(remote_directory(job))
            transport.put_text(job.program, program_path(job))
        job.status = Job.STATUS.submitted
        job.save(update_fields=["status", "modified"])
        Log.objects.create(
            job=job,
            stream="stdout",
            content=f"File {job.remote_filename} successfully copied to {job.remote_directory}.",
        )
    except Exception as exc:
        record_failure(job, exc)
        raise
    job.exit_code = 0
    job.error = ""
    job.status = Job.STATUS.success
    job.finished_at = timezone.now()
    job.save(update_fields=["exit_code", "error", "status", "finished_at", "modified"])


def timeout_seconds(timeout: float | int | dt.timedelta | None) -> float | None:
    """``timeout`` as seconds: 2.x passed a timedelta, JSON can only carry a number."""
    if timeout is None:
        return None
    seconds = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else float(timeout)
    if seconds <= 0:
        raise ValueError(f"timeout must be positive, not {seconds:g} s")
    return seconds

"""Run one job over a Transport: stage, launch, follow, finish, collect. No Celery here."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import posixpath
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from django.db import DatabaseError
from django.utils import timezone

from django_remote_submission import jobs, scheduling, secrets
from django_remote_submission.conf import conf
from django_remote_submission.events import publish_logs
from django_remote_submission.exceptions import (
    AuthenticationFailed,
    ConnectionFailed,
    ConnectionLost,
    HandedOver,
    JobCanceled,
    LeaseLost,
    NotClaimed,
    RemoteSubmissionError,
    ServerGone,
    TransportError,
)
from django_remote_submission.logstream import STREAMS, LineSplitter, LogPolicy, LogRow, LogWriter
from django_remote_submission.models import Job, Log, Server
from django_remote_submission.results import collect, snapshot
from django_remote_submission.schedulers.base import Ending
from django_remote_submission.schedulers.poll import QueueWatch, SchedulerQueue
from django_remote_submission.transport import LocalTransport, Transport, connect_ssh, detached
from django_remote_submission.transport.detached import DetachedProcess, describe_survivors
from django_remote_submission.transport.shell import remote_path

logger = logging.getLogger(__name__)

#: Seconds between looks at the database for a cancel request while a job runs.
CANCEL_CHECK_SECONDS = 0.5
#: The log's note of a job another worker took over, from its stored offsets.
TAKEN_OVER = (
    "The worker following this job stopped; another took it over and goes on from "
    "byte {job.stdout_offset} of stdout and {job.stderr_offset} of stderr."
)
#: Seconds between looks at a scheduled job that a runner follows itself (its files; its
#: scheduler's queue is asked at most once per the server's status interval).
SCHEDULED_PAUSE = 0.5
#: Seconds a scheduler is asked how a job ended while it still calls it not ended.
SCHEDULER_SETTLE_SECONDS = 15.0
#: The endings in which the scheduler stopped the program (its exit code then says only
#: which signal).
STOPPED_BY_SCHEDULER = frozenset({"canceled", "timeout", "out_of_memory", "node_fail", "preempted"})
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

    def to_row(self) -> dict[str, object]:
        """What ``Job.run_options`` keeps of these, so that another worker can take the
        job over: secrets sealed, as they travel through the broker."""
        row: dict[str, object] = {
            "username": self.username,
            "key_filename": self.key_filename,
            "timeout": self.timeout,
            "log_policy": int(self.log_policy),
            "store_results": list(self.store_results) if self.store_results is not None else None,
            "remote": self.remote,
        }
        for name in jobs.SECRET_OPTIONS:
            value = getattr(self, name)
            if value is not None:
                row[name] = value if secrets.is_sealed(value) else secrets.seal(str(value))
        return row

    @classmethod
    def from_row(cls, row: dict[str, object], task_id: str = "") -> RunOptions:
        """The options kept on a job's row, secrets opened (raises ``SecretError``)."""
        timeout = row.get("timeout")
        patterns = row.get("store_results")
        return cls(
            username=_text(row.get("username")),
            password=_text(secrets.unseal(row.get("password"))),
            key_filename=_text(row.get("key_filename")),
            passphrase=_text(secrets.unseal(row.get("passphrase"))),
            timeout=float(timeout) if isinstance(timeout, int | float) else None,
            log_policy=LogPolicy(int(row.get("log_policy", LogPolicy.LOG_LIVE))),  # type: ignore[call-overload]
            store_results=[str(p) for p in patterns] if isinstance(patterns, list) else None,
            remote=bool(row.get("remote", True)),
            task_id=task_id,
        )


def _text(value: object) -> str | None:
    return str(value) if value is not None else None


def running_as(job: Job) -> str:
    """Where a job's program may still run, for a reason that says so: "as process group
    123" (direct), "as Slurm job 456" (through a scheduler)."""
    kind = scheduling.kind_of(job.server)
    if kind is not None and job.scheduler_job_id:
        return f"as {kind.name} job {job.scheduler_job_id}"
    return f"as process group {job.remote_pgid}"


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
    return connect_ssh(
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


#: The file of the control directory that keeps the job directory's listing from before
#: the launch, so that whoever collects the results knows which files the job made.
SNAPSHOT_FILE = "before.json"


def program_path(job: Job) -> str:
    return posixpath.join(remote_directory(job), job.remote_filename)


def program_argument(job: Job) -> str:
    # A name starting with "-" would be read as an option by the interpreter.
    name = job.remote_filename
    return name if not name.startswith("-") else f"./{name}"


class JobRunner:
    """Runs one job to its end, holding its lease as ``owner``. Every way out leaves the
    job in a final state, except a lost lease (the job is another worker's now) and a
    server gone for longer than the reconnect timeout (its program may still run)."""

    def __init__(
        self,
        job: Job,
        transport: Transport,
        options: RunOptions,
        owner: str = "",
        *,
        hand_over_after: float | None = None,
    ) -> None:
        self.job = job
        #: Seconds after the launch at which a job still running is handed over to the
        #: worker host's follower (None: follow it to its end here).
        self.hand_over_after = hand_over_after
        self.transport = transport
        self.options = options
        self.owner = owner
        self.writer = LogWriter(
            job,
            LogPolicy(options.log_policy),
            batch_lines=conf.LOG_BATCH_LINES,
            batch_seconds=conf.LOG_BATCH_SECONDS,
            max_bytes=conf.LOG_MAX_BYTES,
            on_batch=options.on_batch,
            publish=publish_logs,
            owner=owner,
            lease_seconds=conf.LEASE_SECONDS,
        )
        self._next_cancel_check = 0.0
        self._canceled = False
        self._note_resume = True
        #: Whether the job goes through its server's batch scheduler (Slurm, PBS).
        self.scheduled = scheduling.is_scheduled(job)
        #: How the scheduler ended a job that left its queue without an exit code.
        self.scheduler_ending: Ending | None = None

    def run(self) -> dict[str, int]:
        """Stage, launch, follow, finish, collect: a job this runner claimed."""
        return self._guarded(self._run_from_start)

    def resume(self, *, patient: bool = True, note: bool = True) -> dict[str, int]:
        """Go on with a job taken over from a worker that stopped renewing its lease:
        from the stored offsets if its program was launched, else from the start. A
        ``patient`` resume connects with backoff for up to RECONNECT_TIMEOUT (the server
        may be the reason the last worker gave up); else one try."""
        self._note_resume = note
        return self._guarded(self._run_resumed, patient=patient)

    def _guarded(
        self, body: Callable[[], dict[str, int]], *, patient: bool = False
    ) -> dict[str, int]:
        try:
            if patient:
                self._reconnecting(self._open)
            with self.transport:
                return body()
        except HandedOver:
            raise
        except LeaseLost:
            logger.warning("Job %s was taken over by another worker; this one stops", self.job.pk)
            raise
        except Exception as exc:
            self.fail(exc)
            raise
        except BaseException as exc:  # Ctrl-C in remote_submit, a worker shutting down
            self._stop_program()
            self.fail(RemoteSubmissionError(f"Interrupted ({type(exc).__name__})."))
            raise

    def _open(self) -> None:
        try:
            self.transport.open()
        except ConnectionLost:
            raise
        except ConnectionFailed as exc:
            raise ConnectionLost(str(exc)) from exc

    def _run_from_start(self) -> dict[str, int]:
        with jobs.keep(self.job.pk, self.owner):
            before = self.stage()
            process = self.submit() if self.scheduled else self.launch()
        return self._complete(process, before)

    def _run_resumed(self) -> dict[str, int]:
        if self.scheduled:
            return self._resume_scheduled()
        process = self._reconnecting(self._find_process)
        if process is None:
            logger.info("Job %s was not launched by the worker that died: starting it", self.job.pk)
            return self._run_from_start()
        job = self.job
        if job.state == Job.State.STARTING:
            # Launched, but the worker died before it said so.
            self._launched(process)
        before = self._reconnecting(self._read_snapshot)
        self.writer.resume()
        if self._note_resume:
            self.writer.note("stderr", TAKEN_OVER.format(job=job))
        return self._complete(process, before)

    def _complete(
        self, process: DetachedProcess, before: dict[str, tuple[int, float]]
    ) -> dict[str, int]:
        try:
            self.follow(process)
            exit_code, error = self._reconnecting(lambda: self.finish(process))
        except (ServerGone, LeaseLost, HandedOver, DatabaseError):
            # Its program runs on, for whoever holds the job (or later) to collect: a
            # database that went away leaves the job to the sweep, once it is back.
            raise
        except Exception:
            # Nobody would follow it or collect its results: stop it, over the job's own
            # connections.
            self._stop_program()
            raise
        results = self._reconnecting(lambda: self.collect(before))
        self._reconnecting(self.cleanup)
        self.end(exit_code, error)
        return results

    # The steps -----------------------------------------------------------------------

    def stage(self) -> dict[str, tuple[int, float]]:
        if self._cancel_requested():
            raise JobCanceled("Canceled before it started.")
        directory = remote_directory(self.job)
        self.transport.mkdir_p(directory)
        self.transport.put_text(self.job.program, program_path(self.job))
        before = snapshot(self.transport.list_tree(directory))
        # Kept on the server too, for a worker that takes the job over.
        ctl = control_directory(self.job)
        self.transport.mkdir_p(ctl)
        self.transport.put_text(
            json.dumps({name: list(value) for name, value in before.items()}),
            posixpath.join(ctl, SNAPSHOT_FILE),
        )
        if self._cancel_requested(force=True):
            raise JobCanceled("Canceled before it started.")
        return before

    def launch(self) -> DetachedProcess:
        command = [*self.job.interpreter.command, program_argument(self.job)]
        process = self.transport.start_detached(
            command,
            cwd=remote_directory(self.job),
            control_directory=control_directory(self.job),
            time_limit=self.options.timeout,
            grace=conf.KILL_GRACE,
        )
        self._launched(process)
        logger.info(
            "Job %s started on %s (pgid %s)", self.job.pk, self.transport.description, process.pgid
        )
        return process

    # Through a batch scheduler ------------------------------------------------------

    def submit(self) -> DetachedProcess:
        """Hand the program to the server's batch scheduler (instead of ``launch``): the
        job is ``pending`` under the scheduler's id until the scheduler starts it."""
        job = self.job
        kind = scheduling.kind_of(job.server)
        assert kind is not None
        ctl = remote_path(control_directory(job))
        header = scheduling.header_for(job, ctl, f"{ctl}/batch.sh", self.options.timeout)
        command = [*job.interpreter.command, program_argument(job)]
        try:
            answer = detached.submit(
                self.transport,
                command,
                cwd=remote_directory(job),
                control_directory=ctl,
                header=header,
                submit_command=kind.submit_shell,
                time_limit=None,
                grace=conf.KILL_GRACE,
            )
            job_id = kind.parse_submit(answer)
        except (TransportError, ValueError) as exc:
            # A submission that timed out, or whose answer was lost, may have queued the
            # job all the same: look it up by its name before saying it failed.
            try:
                job_id = self._submitted_already()
            except TransportError as lookup:
                raise TransportError(f"{exc} {lookup}") from exc
            if job_id is None:
                raise TransportError(str(exc)) from exc
        if not jobs.submitted(job, self.owner, scheduler_job_id=job_id):
            raise LeaseLost(f"Job {job.pk} was taken over by another worker.")
        self._record_task_id()
        logger.info("Job %s submitted to %s as job %s", job.pk, kind.name, job_id)
        return DetachedProcess(0, 0, ctl)

    def _scheduler_account(self) -> Ending:
        """How the scheduler says the job ended, asked again for a few seconds while it
        has not settled yet (the job still completing)."""
        deadline = time.monotonic() + SCHEDULER_SETTLE_SECONDS
        while True:
            ending = self._queue().ending(self.transport, self.job.scheduler_job_id)
            if ending.kind != "unknown" or time.monotonic() >= deadline:
                return ending
            time.sleep(1.0)

    def _queue(self) -> SchedulerQueue:
        return scheduling.queue_for(self.job.server, login_name(self.job, self.options.username))

    def _submitted_already(self) -> str | None:
        """The scheduler's id of this job if it was submitted before (by name)."""
        return self._reconnecting(lambda: self._queue().find(self.transport, self.job.uuid))

    def _resume_scheduled(self) -> dict[str, int]:
        """Go on with a scheduled job from its row: submitted (pending or running), or
        not yet known to be (then looked up by name before submitting again)."""
        job = self.job
        if not job.scheduler_job_id:
            job_id = self._submitted_already()
            if job_id is None:
                logger.info("Job %s was not submitted by the worker that died: submitting", job.pk)
                return self._run_from_start()
            if not jobs.submitted(job, self.owner, scheduler_job_id=job_id):
                raise LeaseLost(f"Job {job.pk} was taken over by another worker.")
        process = DetachedProcess(0, 0, remote_path(control_directory(job)))
        before = self._reconnecting(self._read_snapshot)
        self.writer.resume()
        if self._note_resume and job.state != Job.State.PENDING:
            self.writer.note("stderr", TAKEN_OVER.format(job=job))
        return self._complete(process, before)

    def _follow_scheduled(self, process: DetachedProcess) -> None:
        """Follow a scheduled job from this runner (no follower to hand it to): its files,
        read from the stored offsets, and its scheduler's queue, one shared status call
        per interval, until its exit code is written or the scheduler ended it."""
        if self.hand_over_after is not None and not self._cancel_requested(force=True):
            self._hand_over()  # pending or running: the host's follower takes it
        offsets = [self.writer.offsets[stream] for stream in STREAMS]
        splitters = [LineSplitter(conf.LOG_MAX_LINE_LENGTH, offset) for offset in offsets]
        read = list(offsets)
        watch = QueueWatch(self.job.scheduler_job_id)
        while True:
            try:
                if self._scheduled_pass(process, splitters, read, watch):
                    break
            except ConnectionLost as exc:
                self.writer.flush()
                self._reconnect(exc)
                continue
            time.sleep(SCHEDULED_PAUSE)
        self._close_streams(splitters)

    def _scheduled_pass(
        self,
        process: DetachedProcess,
        splitters: list[LineSplitter],
        read: list[int],
        watch: QueueWatch,
    ) -> bool:
        """One look at a scheduled job: True once it has ended."""
        job = self.job
        ended = self.transport.file_size(process.exit_code_path) is not None
        self._read_more(process, splitters, read)
        if job.state == Job.State.PENDING and (
            ended or self.transport.file_size(f"{process.control_directory}/pgid") is not None
        ):
            jobs.scheduler_started(job, self.owner)
        if ended:
            return True
        if not self._canceled and self._cancel_requested():
            self._cancel(process)
            watch.hurry(self._queue())
        view = self._queue().view(self.transport, [job.scheduler_job_id])
        verdict = watch.see(view)
        if verdict.reason is not None and job.state == Job.State.PENDING:
            jobs.waiting_because(job, self.owner, verdict.reason)
        if not verdict.gone:
            return False
        self._read_more(process, splitters, read)
        return True

    def _read_more(
        self, process: DetachedProcess, splitters: list[LineSplitter], read: list[int]
    ) -> None:
        """Store what the job's output files gained since ``read`` (bytes of each)."""
        for index, path in enumerate((process.stdout_path, process.stderr_path)):
            data = self.transport.read_file(path, read[index])
            if data:
                read[index] += len(data)
                lines = splitters[index].feed(data)
                self.writer.add(
                    STREAMS[index],
                    lines,
                    splitters[index].offset,
                    timezone.now(),
                    ends=splitters[index].ends,
                )
        self.writer.tick()

    def _cancel_at_scheduler(self) -> None:
        """Nobody will follow the job (it failed here): end it at the scheduler."""
        job = self.job
        if not job.scheduler_job_id or job.state not in (
            Job.State.PENDING,
            Job.State.RUNNING,
            Job.State.FINISHING,
        ):
            return
        try:
            with self.transport:
                refused = scheduling.cancel(job, self.transport)
        except Exception:
            logger.warning("Could not cancel job %s at its scheduler", job.pk, exc_info=True)
            return
        if refused:
            logger.warning("Cancel of job %s: the scheduler said %s", job.pk, refused)

    def _record_task_id(self) -> None:
        """The task running the job now is the one ``.get()`` of the job waits for."""
        if self.job.task_id != self.options.task_id and self.options.task_id:
            Job.objects.filter(pk=self.job.pk).update(task_id=self.options.task_id)
            self.job.task_id = self.options.task_id

    def _launched(self, process: DetachedProcess) -> None:
        self._record_task_id()
        if not jobs.launched(
            self.job,
            self.owner,
            pid=process.monitor_pid,
            pgid=process.pgid,
            started_at=timezone.now(),
        ):
            raise LeaseLost(f"Job {self.job.pk} was taken over by another worker.")

    def follow(self, process: DetachedProcess) -> None:
        if self.scheduled:
            self._follow_scheduled(process)
            return
        offsets = [self.writer.offsets[stream] for stream in STREAMS]
        splitters = [LineSplitter(conf.LOG_MAX_LINE_LENGTH, offset) for offset in offsets]
        #: Bytes of each stream read so far: where following goes on after a reconnect.
        read = list(offsets)
        hand_over_at = (
            time.monotonic() + self.hand_over_after if self.hand_over_after is not None else None
        )
        if self.hand_over_after == 0 and not self._cancel_requested():
            # Straight to the follower: no session and no tail -f for one look.
            self._hand_over()
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
                        splitter = splitters[index]
                        lines = splitter.feed(chunk)
                        self.writer.add(
                            STREAMS[index],
                            lines,
                            splitter.offset,
                            timezone.now(),
                            ends=splitter.ends,
                        )
                    if not self._canceled and self._cancel_requested():
                        self._cancel(process)
                    if hand_over_at is not None and time.monotonic() >= hand_over_at:
                        self._hand_over()
                following = False
            except ConnectionLost as exc:
                self.writer.flush()  # what was read is stored before the wait
                self._reconnect(exc)
        self._close_streams(splitters)

    def _close_streams(self, splitters: list[LineSplitter]) -> None:
        now = timezone.now()
        for index, splitter in enumerate(splitters):
            lines = splitter.finish()
            self.writer.add(STREAMS[index], lines, splitter.offset, now, ends=splitter.ends)
        self.writer.close()

    def _hand_over(self) -> None:
        """Store what was read, and let the follower of this worker host go on from the
        stored offsets (a partial last line is read again there)."""
        if self._canceled:
            return  # the stop is under way here; see it to its end
        self.writer.flush()
        if not jobs.hand_over(self.job, self.owner):
            raise LeaseLost(f"Job {self.job.pk} was taken over by another worker.")
        logger.info("Job %s handed over to this host's follower", self.job.pk)
        raise HandedOver(f"Job {self.job.pk} is followed by the worker host's follower.")

    def complete_followed(
        self, process: DetachedProcess, splitters: list[LineSplitter], read: list[int]
    ) -> dict[str, int]:
        """End a job the worker host's follower followed until its program ended: what
        its reader did not deliver, the outcome, the results, the cleanup."""
        return self._guarded(lambda: self._complete_followed(process, splitters, read))

    def _complete_followed(
        self, process: DetachedProcess, splitters: list[LineSplitter], read: list[int]
    ) -> dict[str, int]:
        try:
            # What its reader did not deliver.
            self._reconnecting(lambda: self._read_more(process, splitters, read))
            self._close_streams(splitters)
            exit_code, error = self._reconnecting(lambda: self.finish(process))
        except (ServerGone, LeaseLost, DatabaseError):
            raise
        except Exception:
            self._stop_program()
            raise
        before = self._reconnecting(self._read_snapshot)
        results = self._reconnecting(lambda: self.collect(before))
        self._reconnecting(self.cleanup)
        self.end(exit_code, error)
        return results

    def _cancel(self, process: DetachedProcess) -> None:
        self._canceled = True
        self.transport.put_text("", f"{process.control_directory}/canceled")
        if self.scheduled:
            refused = scheduling.cancel(self.job, self.transport)
            if refused:
                logger.warning("Cancel of job %s: the scheduler said %s", self.job.pk, refused)
            return
        # What survives is named by the job's reason (``finish``).
        self.transport.stop(process, grace=conf.KILL_GRACE)

    def finish(self, process: DetachedProcess) -> tuple[int | None, str]:
        jobs.finishing(self.job, self.owner)
        code, markers = self.transport.outcome(process)
        if code is None and self.scheduled:
            # The scheduler ended the batch script before the program's end was written.
            canceled = "canceled" in markers
            self._canceled = self._canceled or canceled
            if self.scheduler_ending is None and not canceled:
                self.scheduler_ending = self._scheduler_account()
            ending = self.scheduler_ending or Ending("unknown", "")
            if not canceled:
                ending = scheduling.with_messages(
                    self.job, self.transport, process.control_directory, ending
                )
            return None, scheduling.ending_words(ending, canceled)
        if code is None:
            code = self.transport.wait_for_exit_code(process)
            code, markers = self.transport.outcome(process)
            assert code is not None
        # The stop (a cancel's or the time limit's) left what survived it on the server.
        survived = describe_survivors(self.transport.survivors(process)) if markers else ""
        if "canceled" in markers:
            self._canceled = True
            return code, f"Canceled at the request of a user.{survived}"
        if "timed_out" in markers:
            return code, (
                f"Timed out: the program ran longer than {self.options.timeout:g} s, so the "
                f"server stopped it (TERM, then KILL after {conf.KILL_GRACE:g} s).{survived}"
            )
        if code == 0:
            return code, ""
        if self.scheduled and (code > 128 or code < 0):
            # Killed by a signal: by the scheduler (a cancel, its time or memory limit)?
            # Its stop reaches the program and the monitor in turn, so the monitor may
            # still write the program's end first.
            ending = scheduling.with_messages(
                self.job, self.transport, process.control_directory, self._scheduler_account()
            )
            if ending.kind in STOPPED_BY_SCHEDULER:
                return code, f"{ending.message} The program was killed (exit code {code})."
        reason = self._last_stderr_line(process)
        if code in (126, 127):
            return code, f"The program could not be started (exit code {code}): {reason}"
        if reason:
            return code, f"The program exited with code {code}: {reason}"
        return code, f"The program exited with code {code}."

    def collect(self, before: dict[str, tuple[int, float]]) -> dict[str, int]:
        directory = remote_directory(self.job)
        # Jobs that share the directory upload their programs into it while this one
        # runs: those files are theirs, never this job's results.
        programs = (
            Job.objects.filter(
                server_id=self.job.server_id, remote_directory=self.job.remote_directory
            )
            .exclude(pk=self.job.pk)
            .values_list("remote_filename", flat=True)
            .distinct()
        )
        return collect(
            self.job,
            self.transport,
            directory,
            before,
            patterns=self.options.store_results,
            exclude=[self.job.remote_filename, f".drs-{self.job.uuid}/", *programs],
            report=lambda text: self.writer.note("stderr", text),
        )

    def cleanup(self) -> None:
        try:
            self.transport.remove(control_directory(self.job), recursive=True)
        except RemoteSubmissionError as exc:
            logger.warning("Could not remove the control directory of job %s: %s", self.job.pk, exc)

    # Taking over ---------------------------------------------------------------------

    def _find_process(self) -> DetachedProcess | None:
        """The job's program, from its row or, if its worker died before writing them
        there, from the process ids its monitor wrote; None if it was never launched."""
        job = self.job
        ctl = remote_path(control_directory(job))
        if job.state != Job.State.STARTING and job.remote_pgid is not None:
            return DetachedProcess(job.remote_pgid, job.remote_pid or 0, ctl)
        numbers = []
        for name in ("pgid", "monitor.pid"):
            if self.transport.file_size(f"{ctl}/{name}") is None:
                return None
            text = self.transport.read_file(f"{ctl}/{name}").decode("ascii", "replace").strip()
            if not text.isdigit():
                return None
            numbers.append(int(text))
        return DetachedProcess(numbers[0], numbers[1], ctl)

    def _read_snapshot(self) -> dict[str, tuple[int, float]]:
        path = posixpath.join(control_directory(self.job), SNAPSHOT_FILE)
        try:
            data = json.loads(self.transport.read_file(path))
            return {str(name): (int(size), float(mtime)) for name, (size, mtime) in data.items()}
        except (RemoteSubmissionError, ValueError, TypeError) as exc:
            if isinstance(exc, ConnectionLost):
                raise
            self.writer.note(
                "stderr",
                "The listing of the job's directory from before the launch is gone: every "
                "file that matches the result patterns is stored.",
            )
            return {}

    # Outcomes ------------------------------------------------------------------------

    def end(self, exit_code: int | None, error: str) -> None:
        if jobs.finish(self.job, exit_code, error, owner=self.owner, canceled=self._canceled):
            logger.info("Job %s ended: %s (exit code %s)", self.job.pk, self.job.state, exit_code)

    def _stop_program(self) -> None:
        job = self.job
        if self.scheduled:
            self._cancel_at_scheduler()
            return
        if job.state not in (Job.State.RUNNING, Job.State.FINISHING) or job.remote_pgid is None:
            return
        process = DetachedProcess(
            job.remote_pgid, job.remote_pid or 0, remote_path(control_directory(job))
        )
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
        except LeaseLost:
            return  # the job is another worker's now
        except Exception:
            logger.exception("Could not store the last lines of job %s", self.job.pk)
        canceled = isinstance(exc, JobCanceled)
        if not canceled and (self._canceled or self._cancel_requested(force=True)):
            canceled = True
            where = (
                f" It may still run on the server, {running_as(self.job)}."
                if (self.job.remote_pgid is not None or self.job.scheduler_job_id)
                and "may still" not in str(exc)
                else ""
            )
            exc = RemoteSubmissionError(f"Canceled, but stopping the job failed: {exc}{where}")
        record_failure(
            self.job,
            exc,
            owner=self.owner,
            canceled=canceled,
            reattach=isinstance(exc, ServerGone) and not canceled,
        )

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
                    f"may still be running on the server, {running_as(self.job)}."
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

    def _cancel_requested(self, *, force: bool = False) -> bool:
        now = time.monotonic()
        if now < self._next_cancel_check and not force:
            return False
        self._next_cancel_check = now + CANCEL_CHECK_SECONDS
        return Job.objects.filter(pk=self.job.pk, cancel_requested_at__isnull=False).exists()

    def _last_stderr_line(self, process: DetachedProcess) -> str:
        size = self.transport.file_size(process.stderr_path) or 0
        tail = self.transport.read_file(process.stderr_path, max(0, size - 4096))
        lines = [line.strip() for line in tail.decode("utf-8", "replace").splitlines()]
        lines = [line for line in lines if line]
        return lines[-1][:REASON_LENGTH] if lines else ""


def record_failure(
    job: Job,
    exc: BaseException,
    *,
    owner: str = "",
    canceled: bool = False,
    reattach: bool = False,
) -> None:
    """End the job in failure with a reason a person can read; it must never stay
    initial or submitted. A job that has ended already keeps its outcome, and so does a
    job another worker holds now (when ``owner`` says who should hold it)."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, RemoteSubmissionError):
        logger.info("Job %s failed: %s", job.pk, reason)
    else:
        reason = f"{type(exc).__name__}: {reason}"
        logger.error("Job %s failed unexpectedly", job.pk, exc_info=exc)
    try:
        jobs.fail(job, reason, owner=owner, canceled=canceled, reattach=reattach)
    except Exception:
        logger.exception("Could not record the failure of job %s", job.pk)


def run_job(
    job: Job,
    options: RunOptions,
    transport: Transport | None = None,
    *,
    owner: str = "",
    hand_over_after: float | None = None,
    rerun: bool = True,
) -> dict[str, int]:
    """Run ``job`` to its end and return ``{relative path: result pk}``.

    Raises the error that ended it early, after recording it on the job; ``NotClaimed``
    (changing nothing) if the job is not this run's to start. A job that has ended is
    run again (``rerun``), as a direct call of 2.x did; a task does not do that, as its
    sender queued the job again already, and a late second message of a run that ended
    must not start it over.
    """
    if rerun and job.is_finished and job.cancel_requested_at is None:
        # Run again: this run's outcome is its own, from the start.
        jobs.begin_run(job.pk)
        job.refresh_from_db()
    owner = owner or jobs.new_owner()
    if not jobs.claim(job, owner, options.to_row()):
        job.refresh_from_db()
        if job.state == Job.State.CANCELED:
            raise JobCanceled(job.error)
        raise NotClaimed(f"Job {job.pk} is {job.state}, not queued: this run leaves it alone.")
    if transport is None:
        try:
            transport = build_transport(job, options)
        except Exception as exc:
            record_failure(job, exc, owner=owner)
            raise
    if not options.remote:
        hand_over_after = None  # only this host can reach it: it stays with the task
    return JobRunner(job, transport, options, owner, hand_over_after=hand_over_after).run()


def resume_job(
    job: Job,
    owner: str,
    transport: Transport | None = None,
    *,
    patient: bool = True,
    note: bool = True,
) -> dict[str, int]:
    """Go on with a job ``owner`` took over (``jobs.take_over``), with the options its
    run was asked for, and return its results as ``run_job`` would."""
    try:
        options = RunOptions.from_row(job.run_options or {}, task_id=job.task_id)
        if transport is None:
            transport = build_transport(job, options)
    except Exception as exc:
        record_failure(job, exc, owner=owner)
        raise
    return JobRunner(job, transport, options, owner).resume(patient=patient, note=note)


def copy_job(job: Job, options: RunOptions) -> None:
    """Upload the program without running it, as 2.x's copy_job_to_server did."""
    owner = jobs.new_owner()
    if job.is_finished:
        jobs.begin_run(job.pk)
        job.refresh_from_db()
    if not jobs.claim(job, owner, options.to_row()):
        job.refresh_from_db()
        raise NotClaimed(f"Job {job.pk} is {job.state}, not queued: this copy leaves it alone.")
    try:
        transport = build_transport(job, options)
        with transport:
            transport.mkdir_p(remote_directory(job))
            transport.put_text(job.program, program_path(job))
        Log.objects.create(
            job=job,
            stream="stdout",
            content=f"File {job.remote_filename} successfully copied to {job.remote_directory}.",
        )
    except Exception as exc:
        record_failure(job, exc, owner=owner)
        raise
    jobs.finish(job, 0, "", owner=owner)


def timeout_seconds(timeout: float | int | dt.timedelta | None) -> float | None:
    """``timeout`` as seconds: 2.x passed a timedelta, JSON can only carry a number."""
    if timeout is None:
        return None
    seconds = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else float(timeout)
    if seconds <= 0:
        raise ValueError(f"timeout must be positive, not {seconds:g} s")
    return seconds

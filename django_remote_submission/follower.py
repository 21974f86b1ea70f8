"""Following many running jobs over one connection: per worker host and (server, login),
one thread, one SSH connection, one reader on the server, one transaction per pass; per
worker host, one thread that does the database work of all its followers."""

from __future__ import annotations

import contextlib
import logging
import select
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db import close_old_connections, connections
from django.utils import timezone

from django_remote_submission import jobs, scheduling
from django_remote_submission.conf import conf
from django_remote_submission.events import publish_logs, publish_many_logs
from django_remote_submission.exceptions import (
    AuthenticationFailed,
    ConnectionFailed,
    ConnectionLost,
    LeaseLost,
    RemoteSubmissionError,
)
from django_remote_submission.logstream import (
    STREAMS,
    LineSplitter,
    LogPolicy,
    LogRow,
    LogWriter,
    PendingWrite,
    store_writes,
)
from django_remote_submission.models import Job, Log
from django_remote_submission.runner import (
    JobRunner,
    RunOptions,
    build_transport,
    control_directory,
    login_name,
    resume_job,
    running_as,
)
from django_remote_submission.schedulers.poll import QueueView, QueueWatch
from django_remote_submission.transport import Transport
from django_remote_submission.transport.base import ByteStream
from django_remote_submission.transport.detached import DetachedProcess
from django_remote_submission.transport.scripts import READER
from django_remote_submission.transport.shell import qpath, remote_path

logger = logging.getLogger(__name__)

#: Seconds the server's reader sleeps between passes: after a pass that found output,
#: and after a quiet one.
BUSY_PAUSE = 0.1
IDLE_PAUSE = 0.25
#: The longest time the reader's passes are taken together into one transaction: those
#: that arrived while the last one was stored (a backlog), and those that bring output
#: of jobs nobody watches. The latter wait GATHER_SECONDS for each follower of the
#: worker host, up to MERGE_SECONDS: the host's transactions a second stay about the
#: same however many (server, login) it follows (ten followers storing each pass cost
#: 39 % of a core for 1,000 jobs, 21-24 % so). Output of a watched job or an ending job
#: ends the wait at once.
MERGE_SECONDS = 0.5
GATHER_SECONDS = 0.1
#: The most bytes of one file the reader sends in one pass (fairness between jobs).
PASS_CAP = 4 * 1024 * 1024
#: Seconds between looks for cancel requests of the followed jobs.
CANCEL_CHECK_SECONDS = 0.5
#: Seconds between starts of the login's process tracker (``tree.sh tracker``): one that
#: an admin or the OOM killer ended is back within this time (a running one stays).
TRACKER_CHECK_SECONDS = 30.0
#: Threads of a worker host that finish jobs (collect results, clean up), for all its
#: followers: finishing is slow I/O that must not hold up following.
FINISHERS = 4

OnEnd = Callable[[Job, "dict[str, int] | None", "BaseException | None"], None]
Key = tuple[int, str, bool]
T = TypeVar("T")


def _here(work: Callable[[], T]) -> T:
    return work()


Flags = tuple[frozenset[int], frozenset[int]]


@dataclass
class FlagsCache:
    """Which of a worker host's jobs someone watches, and which were asked to cancel:
    looked up at most every ``CANCEL_CHECK_SECONDS``, for all its followers (ten
    followers asked twenty times a second, each for its own)."""

    owner: str
    _flags: Flags = (frozenset(), frozenset())
    _next: float = 0.0

    def get(self) -> Flags:
        now = time.monotonic()
        if now >= self._next:
            watched = Job.objects.filter(
                watched_until__gt=timezone.now(), lease_owner=self.owner
            ).values_list("pk", flat=True)
            canceled = Job.objects.filter(
                state__in=list(jobs.OWNED),
                lease_owner=self.owner,
                cancel_requested_at__isnull=False,
            ).values_list("pk", flat=True)
            self._flags = (frozenset(watched), frozenset(canceled))
            self._next = now + CANCEL_CHECK_SECONDS
        return self._flags


def _close_connections() -> None:
    """Lets go of this thread's database connections, if it opened any."""
    if any(c.connection is not None for c in connections.all(initialized_only=True)):
        connections.close_all()


def follower_key(job: Job, options: RunOptions) -> Key:
    return (job.server_id, login_name(job, options.username), options.remote)


@dataclass
class Followed:
    """A job this host follows: where its output stands, and its writer."""

    job: Job
    options: RunOptions
    process: DetachedProcess
    writer: LogWriter
    splitters: list[LineSplitter]
    read: list[int]
    #: Set for a job at a batch scheduler: its reading of the login's queue views.
    watch: QueueWatch | None = None
    #: The scheduler no longer lists it, and no exit code came: the finisher asks how
    #: it ended.
    gone: bool = False
    #: Why the scheduler holds it, from the last view that listed it as waiting.
    reason: str | None = None


@dataclass
class Follower:
    """Follows every job of one (server, login) this host holds, over one connection:
    a reader on the server (``scripts.READER``) reports what each job's output files
    gained; lines go to the database in one transaction per pass for all the jobs, with
    their offsets and leases; a job whose program ended goes to the finishers."""

    key: Key
    owner: str
    finish: Callable[[Followed], None]
    #: Where jobs go when the server has no perl for the reader: a thread each, over
    #: sessions of their own (today's way of following one job).
    alone: Callable[[Followed], None]
    on_end: OnEnd
    #: Runs the follower's database work, and returns what it returned: in the worker
    #: host's one database thread (``Engine``), so that following costs one database
    #: connection per host however many (server, login) it follows.
    store: Callable[[Callable[[], Any]], Any] = _here
    #: Which jobs of this host someone watches, and which were asked to cancel: the
    #: ``Engine``'s, one look for all its followers.
    flags: Callable[[], Flags] | None = None
    #: How many followers the worker host runs (the ``Engine``'s).
    peers: Callable[[], int] = lambda: 1
    no_reader: bool = False
    transport: Transport | None = None
    jobs: dict[int, Followed] = field(default_factory=dict)
    _incoming: list[Followed] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _stream: ByteStream | None = None
    _buffer: bytearray = field(default_factory=bytearray)
    _writes: list[PendingWrite] = field(default_factory=list)
    _list_dirty: bool = True
    _next_cancel_check: float = 0.0
    _next_tracker_check: float = 0.0
    _canceling: set[int] = field(default_factory=set)
    _watched: set[int] = field(default_factory=set)
    _nudge: set[int] = field(default_factory=set)
    _thread: threading.Thread | None = None
    #: The last view of the login's scheduler queue (jobs at a batch scheduler), and the
    #: thread that asks for it, at most once per the server's status interval.
    _view: QueueView | None = None
    _queue_thread: threading.Thread | None = None
    _queue_nudge: threading.Event = field(default_factory=threading.Event)
    #: The scheduled jobs' ids and one of them (for the connection), for the thread.
    _scheduled: tuple[tuple[str, ...], Followed | None] = ((), None)

    @property
    def directory(self) -> str:
        # The host's and the server's: two servers may be one machine and one login.
        return f".drs-follow/{self.owner.replace(':', '-')}-{self.key[0]}"

    def add(self, followed: Followed) -> None:
        with self._lock:
            self._incoming.append(followed)
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"drs-follow-{self.key[0]}-{self.key[1]}", daemon=True
            )
            self._thread.start()

    def stop(self) -> list[int]:
        self._stop.set()
        with self._lock:
            return [*self.jobs, *(f.job.pk for f in self._incoming)]

    def holds(self, pk: int) -> bool:
        with self._lock:
            return pk in self.jobs or any(f.job.pk == pk for f in self._incoming)

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.jobs) + len(self._incoming)

    # The loop -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self._take_incoming()
                    if not self.jobs:
                        if self._idle_exit():
                            return
                        continue
                    self._ensure_reader()
                    if self.jobs:
                        self._pass()
                except ConnectionLost as exc:
                    self._reconnect(exc)
                except Exception:
                    logger.exception("Following jobs on %s failed; starting again", self.key)
                    self._close_reader()
                    close_old_connections()  # a database that restarted: connect again
                    time.sleep(1)
                # What this thread read itself (a host key pinned on connecting, say):
                # no connection stays open in it between passes.
                _close_connections()
        finally:
            self._close_reader()
            if self.transport is not None:
                with contextlib.suppress(Exception):
                    self.transport.remove(self.directory, recursive=True)
                self.transport.close()
            connections.close_all()

    def _idle_exit(self) -> bool:
        """Nothing to follow: let the connection go, and wait for more."""
        self._close_reader()
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if self._stop.wait(IDLE_PAUSE):
            return True
        with self._lock:
            return not self._incoming and not self.jobs and self._stop.is_set()

    def _take_incoming(self) -> None:
        with self._lock:
            incoming, self._incoming = self._incoming, []
        for followed in incoming:
            followed.writer.sink = self._writes.append
            self.jobs[followed.job.pk] = followed
            if self.transport is None:
                self.transport = self.store(
                    lambda f=followed: build_transport(f.job, f.options)  # type: ignore[misc]
                )
            self._list_dirty = True

    def _ensure_reader(self) -> None:
        assert self.transport is not None
        if self._stream is None:
            self._open()
            if self.no_reader or not self.transport.run_shell("perl -e 1 >/dev/null 2>&1").ok:
                self._without_reader()
                return
            self.transport.mkdir_p(self.directory)
            self.transport.put_text(READER, f"{self.directory}/reader.pl")
            self._write_list()
            self._stream = self.transport._stream(
                f"exec perl {qpath(self.directory + '/reader.pl')} "
                f"{qpath(self.directory + '/list')} {BUSY_PAUSE} {IDLE_PAUSE} {PASS_CAP}"
            )
            self._buffer.clear()
        elif self._list_dirty:
            self._write_list()

    def _open(self) -> None:
        assert self.transport is not None
        try:
            self.transport.open()
        except ConnectionLost:
            raise
        except (ConnectionFailed, AuthenticationFailed) as exc:
            raise ConnectionLost(str(exc)) from exc

    def _without_reader(self) -> None:
        if not self.no_reader:
            logger.warning(
                "No perl on %s for %s: each job is followed over sessions of its own",
                self.transport.description if self.transport else self.key,
                self.key[1],
            )
        self.no_reader = True
        for followed in self.jobs.values():
            followed.writer.sink = None
            self.alone(followed)
        self.jobs.clear()

    def _write_list(self) -> None:
        assert self.transport is not None
        lines = [
            f"{pk} {f.read[0]} {f.read[1]} {f.process.control_directory.encode().hex()} "
            f"{f.process.monitor_pid}{' w' if f.job.state == Job.State.PENDING else ''}\n"
            for pk, f in self.jobs.items()
        ]
        self.transport.put_text("".join(lines) + "END\n", f"{self.directory}/list")
        self._list_dirty = False

    def _close_reader(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.close()
            self._stream = None

    def _pass(self) -> None:
        """Read frames until the reader ends a pass, then store, renew, and finish."""
        assert self._stream is not None
        ended: list[tuple[int, int]] = []
        began: list[int] = []
        deadline = time.monotonic() + 10 * IDLE_PAUSE + conf.CONNECT_TIMEOUT
        started = time.monotonic()
        merge_until = started + MERGE_SECONDS
        gather_until = started + min(MERGE_SECONDS, GATHER_SECONDS * self.peers())
        urgent = bool(self._nudge)
        while True:
            frame = self._next_frame()
            if frame is None:
                now = time.monotonic()
                if now > deadline:
                    raise ConnectionLost("the server's reader stopped answering")
                wait = IDLE_PAUSE if now >= gather_until else min(IDLE_PAUSE, gather_until - now)
                select.select([self._stream], [], [], max(wait, 0.01))
                continue
            kind, fields, data = frame
            if kind == "H":
                # Passes are taken together, one transaction for all: those the reader
                # sent while the last one was stored (however far behind the database
                # is), and those that bring nothing someone waits for.
                now = time.monotonic()
                if now < merge_until and self._buffered():
                    continue
                if now < gather_until and not urgent:
                    continue
                break
            if kind == "D":
                pk = int(fields[0])
                self._received(pk, int(fields[1]), int(fields[2]), data)
                urgent = urgent or pk in self._watched
            elif kind == "E":
                ended.append((int(fields[0]), int(fields[1])))
                urgent = True
            elif kind == "G":
                # Its monitor died without writing an exit code: the finisher says so.
                ended.append((int(fields[0]), -1))
                urgent = True
            elif kind == "S":
                # A job at a batch scheduler started.
                began.append(int(fields[0]))
                urgent = True
        self._after_pass(ended, began)

    def _buffered(self) -> bool:
        """Whether more of the reader's output is here already."""
        assert self._stream is not None
        chunk = self._stream.read_available()
        if chunk:
            self._buffer += chunk
        return bool(self._buffer)

    def _next_frame(self) -> tuple[str, list[str], bytes] | None:
        assert self._stream is not None
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                head = self._buffer[:newline].decode("ascii", "replace").split(" ")
                if head[0] == "D":
                    length = int(head[4])
                    if len(self._buffer) >= newline + 1 + length:
                        data = bytes(self._buffer[newline + 1 : newline + 1 + length])
                        del self._buffer[: newline + 1 + length]
                        return "D", head[1:], data
                else:
                    del self._buffer[: newline + 1]
                    return head[0], head[1:], b""
            chunk = self._stream.read_available()
            if chunk is None:
                return None
            if chunk == b"":
                raise ConnectionLost("the server's reader ended")
            self._buffer += chunk

    def _received(self, pk: int, index: int, offset: int, data: bytes) -> None:
        followed = self.jobs.get(pk)
        if followed is None or offset != followed.read[index]:
            return  # a job let go of, or a frame from before a reconnect
        followed.read[index] += len(data)
        splitter = followed.splitters[index]
        lines = splitter.feed(data)
        followed.writer.add(
            STREAMS[index], lines, splitter.offset, timezone.now(), ends=splitter.ends
        )

    def _after_pass(self, ended: list[tuple[int, int]], started: Sequence[int] = ()) -> None:
        now = time.monotonic()
        checking = now >= self._next_cancel_check
        for followed in self.jobs.values():
            # Due batches, and every quarter of a lease a write that renews it.
            followed.writer.tick()
        ended += self._read_queue()
        starting = [
            self.jobs[pk]
            for pk in {*started, *(pk for pk, _ in ended)}
            if pk in self.jobs and self.jobs[pk].job.state == Job.State.PENDING
        ]
        lost, asked = self.store(lambda: self._store(checking, starting))
        self._writes.clear()
        for pk in lost:
            logger.warning("Job %s was taken over by another worker; no longer followed", pk)
            if pk in self.jobs:
                del self.jobs[pk]
            self._list_dirty = True
        for pk, _code in ended:
            done = self.jobs.pop(pk, None)
            if done is None:
                continue
            self._list_dirty = True
            done.writer.sink = None
            self.finish(done)
        if checking:
            self._next_cancel_check = now + CANCEL_CHECK_SECONDS
            self._stop_canceled(asked)
        if now >= self._next_tracker_check and self.jobs:
            self._next_tracker_check = now + TRACKER_CHECK_SECONDS
            self._start_tracker()

    # Jobs at a batch scheduler ---------------------------------------------------------

    def _read_queue(self) -> list[tuple[int, int]]:
        """What the last view of the login's queue says of the scheduled jobs: why each
        waits, and which left the queue without an exit code (returned, as ended)."""
        scheduled = [followed for followed in self.jobs.values() if followed.watch is not None]
        self._scheduled = (
            tuple(followed.job.scheduler_job_id for followed in scheduled),
            scheduled[0] if scheduled else None,
        )
        if not scheduled:
            return []
        if self._queue_thread is None or not self._queue_thread.is_alive():
            self._queue_thread = threading.Thread(
                target=self._poll_queue, name=f"drs-queue-{self.key[0]}-{self.key[1]}", daemon=True
            )
            self._queue_thread.start()
        view = self._view
        if view is None:
            return []
        gone = []
        for followed in scheduled:
            assert followed.watch is not None
            verdict = followed.watch.see(view)
            if verdict.reason is not None:
                followed.reason = verdict.reason
            if verdict.gone and not followed.gone:
                followed.gone = True
                gone.append((followed.job.pk, -1))
        return gone

    def _poll_queue(self) -> None:
        """The login's one status call per interval for all its scheduled jobs, in a
        thread of its own: a scheduler slow to answer never holds the live log up."""
        try:
            while not self._stop.is_set():
                ids, sample = self._scheduled
                if sample is None:
                    return
                queue = scheduling.queue_for(sample.job.server, self.key[1])
                try:
                    with build_transport(sample.job, sample.options) as transport:
                        self._view = queue.view(transport, ids)
                except Exception as exc:  # the server is away: unknown, ask again
                    self._view = QueueView({}, known=False, error=str(exc))
                _close_connections()
                self._queue_nudge.wait(max(0.2, queue.min_interval - queue.age()))
                self._queue_nudge.clear()
        finally:
            connections.close_all()

    def hurry_queue(self) -> None:
        """Ask the scheduler anew now (a cancel was sent: its outcome is awaited)."""
        _ids, sample = self._scheduled
        if sample is not None:
            scheduling.queue_for(sample.job.server, self.key[1]).expire()
        self._queue_nudge.set()

    def _start_tracker(self) -> None:
        """Starts the login's process tracker unless one runs (its lock says so), from the
        ``tree.sh`` of a followed job: each job's monitor starts one only at launch."""
        assert self.transport is not None
        direct = [f.process for f in self.jobs.values() if f.watch is None]
        if not direct:
            return  # scheduled jobs run where the scheduler puts them: no tracker here
        script = f"{direct[0].control_directory}/tree.sh"
        # The tracker is a simple command in the background, all its descriptors away
        # from the session's: the session (and this thread) would wait for it otherwise.
        self.transport.run_shell(
            '[ -d "$HOME/.drs-tracker/jobs" ] || exit 0\n'
            f'setsid /bin/sh {qpath(script)} tracker "$HOME/.drs-tracker" '
            "</dev/null >/dev/null 2>&1 &"
        )

    def _store(
        self, checking: bool, starting: Sequence[Followed] = ()
    ) -> tuple[set[int], set[int]]:
        """A pass's database work: which jobs are watched and asked to cancel (when
        ``checking``), the pass's rows, offsets and leases in one transaction, the
        watched jobs' events; returns the jobs taken over by another worker, and those
        asked to cancel."""
        asked: set[int] = set()
        for followed in starting:
            jobs.scheduler_started(followed.job, self.owner)
        for followed in self.jobs.values():
            if followed.reason is not None and followed.job.state == Job.State.PENDING:
                jobs.waiting_because(followed.job, self.owner, followed.reason)
        if checking:
            if self.flags is None:  # a follower of its own, not an Engine's
                self.flags = FlagsCache(self.owner).get
            watched, canceled = self.flags()
            self._check_watched(watched)
            asked = set(canceled) & set(self.jobs)
        lost = store_writes(self._writes, self.owner, self._publish)
        if self._nudge:  # nothing stored for them this pass: tell their sockets anyway
            self._publish([])
        return lost, asked

    def _check_watched(self, watched_now: frozenset[int]) -> None:
        """Which followed jobs someone watches (``events.watch``): only theirs get log
        events. A job newly watched gets one at the next commit even without new rows:
        its ``after_id`` lets the socket read what it missed before."""
        watched = set(watched_now) & set(self.jobs)
        self._nudge |= watched - self._watched
        self._watched = watched

    def _publish(self, batches: Sequence[tuple[int, Sequence[LogRow], int | None]]) -> None:
        """The log events of a pass, for the watched jobs only."""
        sent = [batch for batch in batches if batch[0] in self._watched]
        nudged, self._nudge = self._nudge - {batch[0] for batch in sent}, set()
        for pk in nudged:
            followed = self.jobs.get(pk)
            after = followed.writer._last_log_id if followed is not None else None
            if after is None:
                last = Log.objects.filter(job_id=pk).order_by("-id").values_list("id").first()
                after = last[0] if last else 0
            sent.append((pk, [], after))
        if sent:
            publish_many_logs(sent)

    def _stop_canceled(self, asked: set[int]) -> None:
        for pk in asked - self._canceling:
            if pk not in self.jobs:
                continue
            self._canceling.add(pk)
            threading.Thread(
                target=_stop_program, args=(self.jobs[pk], self.hurry_queue), daemon=True
            ).start()

    def _wait_keeping_leases(self, seconds: float) -> None:
        """Wait, renewing the leases of the jobs meanwhile: the server is away, not this
        worker, and no other worker could do better."""
        end = time.monotonic() + seconds
        while not self._stop.is_set():
            for followed in self.jobs.values():
                followed.writer.flush()
            lost = self.store(lambda: store_writes(self._writes, self.owner))
            for pk in lost & set(self.jobs):
                del self.jobs[pk]
            self._writes.clear()
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            self._stop.wait(min(remaining, conf.LEASE_SECONDS / 4))

    def _reconnect(self, lost: ConnectionLost) -> None:
        """Connect again with backoff; after RECONNECT_TIMEOUT the jobs end in failure,
        saying that their programs may still run."""
        self._close_reader()
        started = time.monotonic()
        pause = 0.5
        logger.warning("Following %s lost its connection (%s)", self.key, lost)
        while not self._stop.is_set():
            assert self.transport is not None
            self.transport.close()
            if time.monotonic() - started > conf.RECONNECT_TIMEOUT:
                break
            self._wait_keeping_leases(pause)
            pause = min(30.0, pause * 2)
            try:
                self._open()
                if not self.transport.run(["true"]).ok:
                    continue
            except ConnectionLost:
                continue
            self._list_dirty = True
            waited = time.monotonic() - started
            logger.info("Following %s again after %.1f s", self.key, waited)
            for followed in self.jobs.values():
                followed.writer.note(
                    "stderr",
                    f"The connection was lost ({lost}); connected again after {waited:.0f} s.",
                )
            return
        for followed in list(self.jobs.values()):
            reason = (
                f"{lost} Connecting again failed for {conf.RECONNECT_TIMEOUT:g} s "
                "(REMOTE_SUBMISSION_RECONNECT_TIMEOUT). The program may still be running on "
                f"the server, {running_as(followed.job)}."
            )
            followed.writer.sink = None

            def fail(followed: Followed = followed, reason: str = reason) -> None:
                with contextlib.suppress(Exception):
                    followed.writer.close()
                jobs.fail(followed.job, reason, owner=self.owner, reattach=True)

            self.store(fail)
            self.on_end(followed.job, None, ConnectionLost(reason))
        self.jobs.clear()


def report_end(
    job: Job, on_end: OnEnd, run: Callable[[], dict[str, int]], *, close: bool = True
) -> None:
    """Run what ends a job in a thread of the worker host, and hand its outcome to
    ``on_end`` (for ``.get()``); nothing if the job went to another worker meanwhile.
    The thread's database connections are closed after, unless ``close`` is false."""
    try:
        results = run()
    except LeaseLost:
        return
    except BaseException as exc:
        connections.close_all()  # a database that went away: the next job connects again
        on_end(job, None, exc)
    else:
        on_end(job, results, None)
    finally:
        if close:
            connections.close_all()


def _drop_broken_connections() -> None:
    """Closes this thread's connections that a database restart broke since their use."""
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and not connection.is_usable():
            connection.close()


def _in_database_thread(work: Callable[[], T]) -> T:
    try:
        return work()
    except BaseException:
        # A database that restarted, say: the next work connects again.
        connections.close_all()
        raise


def _stop_program(followed: Followed, hurry: Callable[[], None] = lambda: None) -> None:
    """A cancel of a followed job: mark it, stop its tree (a scheduled job: cancel it at
    its scheduler, and ask the queue anew); the reader then sees it end. Over a
    transport of its own (on the same pooled connection): the stop takes seconds."""
    process = followed.process
    try:
        with build_transport(followed.job, followed.options) as transport:
            transport.put_text("", f"{process.control_directory}/canceled")
            if followed.watch is not None:
                refused = scheduling.cancel(followed.job, transport)
                if refused:
                    logger.warning(
                        "Cancel of job %s: the scheduler said %s", followed.job.pk, refused
                    )
                hurry()
                return
            transport.stop(process, grace=conf.KILL_GRACE)
    except RemoteSubmissionError:
        logger.warning("Could not stop job %s", followed.job.pk, exc_info=True)
    finally:
        connections.close_all()


@dataclass
class Engine:
    """A worker host's followers, and the threads that finish the jobs they followed."""

    owner: str
    on_end: OnEnd
    followers: dict[Key, Follower] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _finishers: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(FINISHERS, thread_name_prefix="drs-finish")
    )
    #: Jobs handed to the finishers and not finished yet.
    _waiting: int = 0
    _flags: FlagsCache = field(init=False)
    #: The one thread (and database connection) of the followers' database work.
    _database: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="drs-store")
    )

    def __post_init__(self) -> None:
        self._flags = FlagsCache(self.owner)

    def store(self, work: Callable[[], T]) -> T:
        """Runs ``work`` in the host's database thread, and returns what it returned."""
        return self._database.submit(_in_database_thread, work).result()

    def adopt(self, job: Job, *, note: str = "") -> None:
        """Follow a job this host took over (its lease is ``owner``'s), from its row;
        ``note`` goes into its log first (why it changed hands)."""
        options = RunOptions.from_row(job.run_options or {}, task_id=job.task_id)
        ctl = remote_path(control_directory(job))
        scheduled = scheduling.is_scheduled(job)
        if scheduled:
            # It runs where its scheduler put it: no process of it to look at here.
            process = DetachedProcess(0, 0, ctl)
        else:
            assert job.remote_pgid is not None
            process = DetachedProcess(job.remote_pgid, job.remote_pid or 0, ctl)
        writer = LogWriter(
            job,
            LogPolicy(options.log_policy),
            batch_lines=conf.LOG_BATCH_LINES,
            batch_seconds=conf.LOG_BATCH_SECONDS,
            max_bytes=conf.LOG_MAX_BYTES,
            publish=publish_logs,
            owner=self.owner,
            lease_seconds=conf.LEASE_SECONDS,
        )
        writer.resume()
        if note:
            writer.note("stderr", note)
        offsets = [writer.offsets[stream] for stream in STREAMS]
        followed = Followed(
            job,
            options,
            process,
            writer,
            [LineSplitter(conf.LOG_MAX_LINE_LENGTH, offset) for offset in offsets],
            list(offsets),
            watch=QueueWatch(job.scheduler_job_id) if scheduled else None,
        )
        key = follower_key(job, options)
        with self._lock:
            follower = self.followers.get(key)
            if follower is None or follower._stop.is_set():
                follower = self.followers[key] = Follower(
                    key,
                    self.owner,
                    self._finish,
                    self._follow_alone,
                    self.on_end,
                    self.store,
                    self._flags.get,
                    self._active_followers,
                )
        follower.add(followed)

    def _follow_alone(self, followed: Followed) -> None:
        threading.Thread(
            target=self._resume_alone, args=(followed,), name=f"drs-job-{followed.job.pk}"
        ).start()

    def _resume_alone(self, followed: Followed) -> None:
        job = followed.job
        report_end(job, self.on_end, lambda: resume_job(job, self.owner, note=False))

    def _finish(self, followed: Followed) -> None:
        # Held here until a finisher is done with it: nothing writes for it meanwhile,
        # and many jobs ending at once can wait longer than a lease. The sweep renews
        # its lease, and must not take it over as if nobody followed it.
        jobs.hold(followed.job.pk, self.owner)
        with self._lock:
            self._waiting += 1
        self._finishers.submit(self._finish_now, followed)

    def _finish_now(self, followed: Followed) -> None:
        _drop_broken_connections()  # kept from the job before

        def complete() -> dict[str, int]:
            transport = build_transport(followed.job, followed.options)
            runner = JobRunner(followed.job, transport, followed.options, self.owner)
            runner.writer = followed.writer
            return runner.complete_followed(followed.process, followed.splitters, followed.read)

        try:
            report_end(followed.job, self.on_end, complete, close=False)
        finally:
            jobs.let_go(followed.job.pk)
            with self._lock:
                self._waiting -= 1
                idle = self._waiting == 0
            # Many jobs ending at once share the finishers' connections; once none is
            # left to finish, the finishers hold none.
            if idle:
                connections.close_all()

    def stop(self) -> list[int]:
        held: list[int] = []
        with self._lock:
            for follower in self.followers.values():
                held += follower.stop()
            # Those waiting for a finisher go too: another worker finishes them.
            held += jobs.kept(self.owner)
        self._finishers.shutdown(wait=False, cancel_futures=True)
        return held

    def _active_followers(self) -> int:
        with self._lock:
            return max(1, sum(1 for follower in self.followers.values() if follower.count))

    @property
    def followed(self) -> int:
        with self._lock:
            return sum(follower.count for follower in self.followers.values())

    def follows(self, pk: int) -> bool:
        with self._lock:
            return pk in jobs.kept(self.owner) or any(
                follower.holds(pk) for follower in self.followers.values()
            )

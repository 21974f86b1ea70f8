"""From a program's output bytes to Log rows: lines, log policies, batches, the size cap."""

from __future__ import annotations

import datetime as dt
import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from itertools import accumulate, groupby, repeat
from operator import attrgetter
from typing import Any, NamedTuple, overload

from django.db import connections, router, transaction
from django.db.models import Func, IntegerField, Sum
from django.utils import timezone

from django_remote_submission.exceptions import LeaseLost
from django_remote_submission.models import Job, Log
from django_remote_submission.signals import send_logs_stored

logger = logging.getLogger(__name__)

STREAMS = ("stdout", "stderr")


class LogPolicy(enum.IntEnum):
    """How much of a job's output is stored (the 2.x values)."""

    LOG_NONE = 0  #: store nothing
    LOG_LIVE = 1  #: store lines while the program runs, in batches
    LOG_TOTAL = 2  #: store one row per stream when the program ends


class LineSplitter:
    """Turns one stream's bytes into whole lines of text, counting the bytes they used.

    Lines are split on ``\\n`` in the bytes, where a UTF-8 character can never be cut,
    and only then decoded: undecodable bytes become U+FFFD. A line keeps its ``\\n``.
    A carriage return works as on a terminal (``50%\\r100%\\n`` stores ``100%``), so
    progress bars stay one line. A line longer than ``max_length`` bytes is stored in
    pieces of at most that size. ``offset`` counts the bytes consumed by the lines
    returned so far, so a follower can resume exactly after them; ``ends`` says where
    each line of the last ``feed()`` or ``finish()`` ended, for ``LogWriter.add``.
    """

    def __init__(self, max_length: int, offset: int = 0) -> None:
        self.max_length = max_length
        self.offset = offset
        self.ends: list[int] = []
        self._pending = b""

    def feed(self, data: bytes) -> list[str]:
        buffer = self._pending + data
        lines: list[str] = []
        ends: list[int] = []
        end = buffer.rfind(b"\n") + 1
        if end:
            block = buffer[:end]
            raws = block.split(b"\n")
            raws.pop()
            if b"\r" not in block and max(map(len, raws)) <= self.max_length:
                # The common case, decoded in one go: splitting the text on "\n" splits
                # it exactly where the bytes split (a newline is never part of a
                # multi-byte character, nor of what "replace" replaces).
                lines = [line + "\n" for line in _decode(block).split("\n")[:-1]]
                ends = list(accumulate([len(raw) + 1 for raw in raws], initial=self.offset))
                del ends[0]
            else:
                start = self.offset
                for raw in raws:
                    stripped = raw.removesuffix(b"\r")
                    cut = stripped.rfind(b"\r") + 1
                    line = stripped[cut:]
                    while len(line) > self.max_length:
                        piece = _utf8_boundary(line, self.max_length)
                        lines.append(_decode(line[:piece]))
                        cut += piece
                        ends.append(start + cut)
                        line = line[piece:]
                    lines.append(_decode(line) + "\n")
                    start += len(raw) + 1
                    ends.append(start)
            self.offset += end
            buffer = buffer[end:]
        # What is left is an unfinished line: keep it bounded.
        cut = buffer.rfind(b"\r", 0, len(buffer) - 1)
        if cut >= 0:
            self.offset += cut + 1
            buffer = buffer[cut + 1 :]
        while len(buffer) > self.max_length:
            piece = _utf8_boundary(buffer, self.max_length)
            lines.append(_decode(buffer[:piece]))
            self.offset += piece
            ends.append(self.offset)
            buffer = buffer[piece:]
        self._pending = buffer
        self.ends = ends
        return lines

    def finish(self) -> list[str]:
        """The unfinished last line, if the program ended without a newline."""
        rest, self._pending = self._pending, b""
        if not rest:
            self.ends = []
            return []
        self.offset += len(rest)
        self.ends = [self.offset]
        return [_decode(_after_carriage_return(rest.removesuffix(b"\r")))]


def _after_carriage_return(raw: bytes) -> bytes:
    return raw[raw.rfind(b"\r") + 1 :]


def _utf8_boundary(data: bytes, limit: int) -> int:
    cut = limit
    while cut > 0 and (data[cut] & 0xC0) == 0x80:  # inside a multi-byte character
        cut -= 1
    return cut or limit


def _decode(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    # PostgreSQL text cannot hold NUL.
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


class LogRow(NamedTuple):
    """A stored Log row, without the cost of a model instance."""

    id: int | None
    job_id: int
    time: datetime
    content: str
    stream: str


class _Line(NamedTuple):
    stream: str
    time: datetime
    content: str
    size: int  # in bytes, as stored


def _line(stream: str, when: datetime, content: str) -> _Line:
    size = len(content) if content.isascii() else len(content.encode("utf-8"))
    return _Line(stream, when, content, size)


#: A _Line from a tuple of its fields, with no Python call per line.
_new_line = partial(tuple.__new__, _Line)


def _lines(stream: str, when: datetime, contents: Sequence[str]) -> list[_Line]:
    """``_line`` for many lines of one read: one object for each, made in C."""
    if "".join(contents).isascii():
        sizes: Iterable[int] = map(len, contents)
    else:
        sizes = [len(content.encode("utf-8")) for content in contents]
    return list(map(_new_line, zip(repeat(stream), repeat(when), contents, sizes, strict=False)))


class StoredRows(Sequence[LogRow]):
    """The rows a write stored, as columns: a LogRow is made only when one is asked
    for, so that a job nobody watches costs no object for each stored line."""

    __slots__ = ("ids", "job_ids", "lines")

    def __init__(self, ids: Sequence[int], job_ids: Sequence[int], lines: Sequence[_Line]) -> None:
        self.ids, self.job_ids, self.lines = ids, job_ids, lines

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> LogRow: ...

    @overload
    def __getitem__(self, index: slice) -> StoredRows: ...

    def __getitem__(self, index: int | slice) -> LogRow | StoredRows:
        if isinstance(index, slice):
            return StoredRows(self.ids[index], self.job_ids[index], self.lines[index])
        line = self.lines[index]
        return LogRow(self.ids[index], self.job_ids[index], line.time, line.content, line.stream)

    def __iter__(self) -> Iterator[LogRow]:
        for pk, job_id, line in zip(self.ids, self.job_ids, self.lines, strict=True):
            yield LogRow(pk, job_id, line.time, line.content, line.stream)

    def __add__(self, other: StoredRows) -> StoredRows:
        return StoredRows(
            [*self.ids, *other.ids], [*self.job_ids, *other.job_ids], [*self.lines, *other.lines]
        )

    def columns(self) -> tuple[Sequence[int], list[datetime], list[str], list[str]]:
        """ids, times, contents and streams, each in one list (what an event carries)."""
        if not self.lines:
            return self.ids, [], [], []
        streams, times, contents, _ = zip(*self.lines, strict=True)
        return self.ids, list(times), list(contents), list(streams)


_NO_ROWS = StoredRows((), (), ())


#: What LogWriter calls with each batch once it is committed: (the job's pk, the new
#: rows, the job's last log id before them). ``events.publish_logs`` is one.
Publish = Callable[[int, Sequence[LogRow], int | None], None]


@dataclass
class LogWriter:
    """Stores a job's lines by its LogPolicy, in batches, with the byte offsets.

    ``LOG_LIVE`` writes a batch once it holds ``batch_lines`` lines or ``batch_seconds``
    passed since the last write (so a line after a quiet spell goes at once); a batch
    holds whole reads, so that each write stores the offsets where its lines end. Each
    write puts the rows, the offsets and the heartbeat in one transaction, then, once it
    committed, calls ``publish`` and ``on_batch`` with the new rows.
    ``LOG_TOTAL`` writes one row per stream at the end. ``LOG_NONE`` writes no rows.
    Past ``max_bytes`` of stored output the first half is kept as it came, the last
    lines are kept in memory and written at the end, and one row says what was dropped.

    The offsets stored on the job never pass the last stored line: while lines are held
    in memory (the tail, ``LOG_TOTAL``'s rows) they stay where the stored ones end, so a
    worker that takes the job over reads the held lines again rather than skipping them.
    Such a worker starts its writer with ``resume()``.

    With an ``owner``, every write also renews that owner's lease on the job (for
    ``lease_seconds``), and at least every quarter of it while the program is silent;
    a write that finds the job leased to another worker is rolled back and raises
    ``LeaseLost``.
    """

    job: Job
    policy: LogPolicy
    batch_lines: int
    batch_seconds: float
    max_bytes: int | None
    on_batch: Callable[[Sequence[LogRow]], None] | None = None
    publish: Publish | None = None
    owner: str = ""
    lease_seconds: float = 20.0
    #: Where writes go instead of the database, for a follower that stores many jobs'
    #: writes in one transaction (``store_writes``); None writes at once.
    sink: Callable[[PendingWrite], None] | None = None
    offsets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))
    rows_written: int = 0
    _batch: list[_Line] = field(default_factory=list)
    _totals: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in STREAMS})
    _total_times: dict[str, datetime] = field(default_factory=dict)
    _stored_bytes: int = 0
    #: The offsets stored while lines are held in the tail: where the stored lines end.
    _frozen: dict[str, int] | None = None
    _tail: deque[_Line] = field(default_factory=deque)
    _tail_bytes: int = 0
    _dropped_lines: int = 0
    _dropped_bytes: int = 0
    _last_beat: float = field(default_factory=time.monotonic)
    _dirty_offsets: bool = False
    _last_log_id: int | None = None

    def resume(self) -> None:
        """Go on from the job's stored state, as a worker that takes the job over: from
        the offsets on its row, with its stored rows counted against ``max_bytes``."""
        stdout, stderr = (
            Job.objects.filter(pk=self.job.pk).values_list("stdout_offset", "stderr_offset").get()
        )
        self.job.stdout_offset, self.job.stderr_offset = stdout, stderr
        self.offsets.update(stdout=stdout, stderr=stderr)
        self._dirty_offsets = False
        self._frozen = None
        stored = Log.objects.filter(job_id=self.job.pk).aggregate(
            total=Sum(_OctetLength("content"))
        )["total"]
        self._stored_bytes = int(stored or 0)

    def add(
        self,
        stream: str,
        lines: Sequence[str],
        offset: int,
        when: datetime,
        ends: Sequence[int] | None = None,
    ) -> None:
        """Lines of one stream read at ``when``; ``offset`` is where that stream now
        stands, at the end of the last of them.

        ``ends`` (a LineSplitter's) says where each line ends: a batch that fills up, or
        the size cap, between two lines of one read then stores the exact offset where
        the stored lines end. Without it such a cut stores the offset where the read
        began: after a takeover those lines may be stored twice, never skipped.
        """
        if lines and self.policy != LogPolicy.LOG_NONE:
            began = self.offsets[stream]

            def end_of(count: int) -> int:  # where the first ``count`` lines end
                return ends[count - 1] if ends is not None and count else began

            kept = _lines(stream, when, lines)
            head = self._head_length(kept)
            if self.policy == LogPolicy.LOG_TOTAL:
                for line in kept[:head]:
                    self._totals[line.stream].append(line.content)
                    self._total_times[line.stream] = line.time
                    self._stored_bytes += line.size
            else:
                done = 0
                while done < head:
                    room = max(1, self.batch_lines - len(self._batch))
                    taken = kept[done : min(head, done + room)]
                    self._batch += taken
                    self._stored_bytes += sum(line.size for line in taken)
                    done += len(taken)
                    if len(self._batch) >= self.batch_lines and done < len(kept):
                        self.offsets[stream] = end_of(done)
                        self._dirty_offsets = True
                        self.flush()
            if head < len(kept):
                if self._frozen is None:
                    self._frozen = {**self.offsets, stream: end_of(head)}
                self._hold(kept[head:])
        self.offsets[stream] = offset
        self._dirty_offsets = True
        self.tick()

    def _head_length(self, lines: list[_Line]) -> int:
        """How many of these lines are stored as they come; the rest go to the tail."""
        if self._frozen is not None:
            return 0
        if self.max_bytes is None:
            return len(lines)
        room = self.max_bytes // 2 - self._stored_bytes
        if sum(line.size for line in lines) <= room:
            return len(lines)
        count = 0
        for line in lines:
            room -= line.size
            if room < 0:
                break
            count += 1
        return count

    def _hold(self, lines: list[_Line]) -> None:
        """Keep the last lines in memory, within what the cap leaves after the head."""
        assert self.max_bytes is not None
        self._tail += lines
        self._tail_bytes += sum(line.size for line in lines)
        while self._tail_bytes > self.max_bytes - self._stored_bytes and self._tail:
            dropped = self._tail.popleft()
            self._tail_bytes -= dropped.size
            self._dropped_lines += 1
            self._dropped_bytes += dropped.size

    def tick(self) -> None:
        """Flush what is due; call it also when nothing arrives, so lines never wait long.

        ``batch_seconds`` counts from the last write: a line after a quiet spell is
        written at once, and a chatty program is written at most that often.
        """
        since_last_write = time.monotonic() - self._last_beat
        if (
            self._batch
            and (len(self._batch) >= self.batch_lines or since_last_write >= self.batch_seconds)
        ) or since_last_write >= self.lease_seconds / 4:
            self.flush()

    def flush(self) -> None:
        """Write the batch now, with the offsets its lines reach."""
        lines, self._batch = self._batch, []
        if self.policy == LogPolicy.LOG_TOTAL:
            self._save([], offsets=None)  # offsets move only with the rows, at the end
        else:
            self._save(lines, offsets=self._frozen or self.offsets)

    def close(self) -> None:
        """Write everything still held: the batch, LOG_TOTAL's rows, the kept tail, and
        with them the offsets where the program's output ends."""
        rows = list(self._batch)
        self._batch = []
        if self.policy == LogPolicy.LOG_TOTAL:
            for stream in STREAMS:
                if self._totals[stream]:
                    rows.append(
                        _line(stream, self._total_times[stream], "".join(self._totals[stream]))
                    )
        if self._dropped_lines:
            rows.append(
                _line(
                    "stderr",
                    timezone.now(),
                    f"[django-remote-submission] {self._dropped_lines} lines "
                    f"({self._dropped_bytes} bytes) of output were not stored: the job "
                    f"passed REMOTE_SUBMISSION_LOG_MAX_BYTES ({self.max_bytes} bytes). "
                    "The first and the last lines are kept.\n",
                )
            )
        if self.policy == LogPolicy.LOG_TOTAL:
            rows += self._tail_as_totals()
        else:
            rows += list(self._tail)
        self._tail.clear()
        self._frozen = None
        self._save(rows, offsets=self.offsets)

    def _tail_as_totals(self) -> list[_Line]:
        rows: list[_Line] = []
        for stream in STREAMS:
            kept = [line for line in self._tail if line.stream == stream]
            if kept:
                rows.append(_line(stream, kept[-1].time, "".join(line.content for line in kept)))
        return rows

    def _save(self, lines: Sequence[_Line], *, offsets: dict[str, int] | None) -> None:
        self._last_beat = time.monotonic()
        now = timezone.now()
        values: dict[str, object] = {"heartbeat": now}
        if self.owner:
            values["lease_expires"] = now + dt.timedelta(seconds=self.lease_seconds)
        if offsets is not None and self._dirty_offsets:
            values["stdout_offset"] = offsets["stdout"]
            values["stderr_offset"] = offsets["stderr"]
            # Frozen offsets are written again each time, until the real ones can be.
            self._dirty_offsets = offsets is not self.offsets
        if self.sink is not None:
            self.sink(PendingWrite(self, list(lines), values))
            return
        job_row = Job.objects.filter(pk=self.job.pk)
        if self.owner:
            job_row = job_row.filter(lease_owner=self.owner)
        with transaction.atomic():
            _commit_later()
            # The job's row first: updating it locks it until the commit, so the job
            # cannot be deleted between here and there (see ``lock_deleted_job``).
            if not job_row.update(**values):
                if self.owner:
                    raise LeaseLost(f"Job {self.job.pk} was taken over by another worker.")
                raise LeaseLost(f"Job {self.job.pk} was deleted.")
            if lines and self._last_log_id is None:
                last = Log.objects.filter(job_id=self.job.pk).order_by("-id").first()
                self._last_log_id = last.pk if last else 0
            rows = insert_logs(self.job.pk, lines)
            if rows:
                after, job_pk = self._last_log_id, self.job.pk
                publish, callback = self.publish, self.on_batch
                self._last_log_id = rows[-1].id

                def committed() -> None:
                    send_logs_stored(job_pk, rows)
                    if publish is not None:
                        publish(job_pk, rows, after)
                    if callback is not None:
                        callback(rows)

                transaction.on_commit(committed)
        self.rows_written += len(rows)

    def note(self, stream: str, text: str) -> None:
        """A line from the app itself (e.g. a skipped result), stored whatever the policy."""
        self._save(
            [_line(stream, timezone.now(), f"[django-remote-submission] {text}\n")], offsets=None
        )


@dataclass
class PendingWrite:
    """One writer's write, held for ``store_writes``."""

    writer: LogWriter
    lines: list[_Line]
    values: dict[str, object]


def store_writes(
    writes: Sequence[PendingWrite],
    owner: str,
    publish_many: Callable[[Sequence[tuple[int, Sequence[LogRow], int | None]]], None]
    | None = None,
) -> set[int]:
    """Store many jobs' writes in one transaction: one INSERT for all their rows, one
    UPDATE for all their offsets and leases, only for the jobs ``owner`` still holds.
    Returns the jobs it holds no more (their writes are dropped). After the commit,
    ``publish_many`` gets every job's new rows at once (else each writer's ``publish``)."""
    if not writes:
        return set()
    pks = {write.writer.job.pk for write in writes}
    with transaction.atomic():
        _commit_later()
        # Locked until the commit: a takeover waits for these rows to be stored, and
        # deleting one of these jobs waits too (see ``lock_deleted_job``).
        locked = Job.objects.select_for_update().filter(pk__in=pks, lease_owner=owner)
        held = set(locked.values_list("pk", flat=True))
        kept = [write for write in writes if write.writer.job.pk in held]
        for write in kept:
            writer = write.writer
            if write.lines and writer._last_log_id is None:
                last = Log.objects.filter(job_id=writer.job.pk).order_by("-id").first()
                writer._last_log_id = last.pk if last else 0
        rows = insert_rows([(w.writer.job.pk, line) for w in kept for line in w.lines])
        # A job's later writes carry its newer values; one without offsets (a note, a
        # renewal) keeps those of the one before it.
        values: dict[int, dict[str, object]] = {}
        for write in kept:
            values.setdefault(write.writer.job.pk, {}).update(write.values)
        _update_jobs(values, owner)
        start = 0
        published: list[tuple[LogWriter, StoredRows, int | None]] = []
        for write in kept:
            mine = rows[start : start + len(write.lines)]
            start += len(write.lines)
            if mine:
                published.append((write.writer, mine, write.writer._last_log_id))
                write.writer._last_log_id = mine[-1].id
                write.writer.rows_written += len(mine)

        def committed() -> None:
            if publish_many is not None:
                publish_many([(writer.job.pk, mine, after) for writer, mine, after in published])
            for writer, mine, after in published:
                send_logs_stored(writer.job.pk, mine)
                if writer.publish is not None and publish_many is None:
                    writer.publish(writer.job.pk, mine, after)
                if writer.on_batch is not None:
                    writer.on_batch(mine)

        transaction.on_commit(committed)
    return pks - held


def _commit_later() -> None:
    """On PostgreSQL, let the transaction commit without waiting for its log records to
    reach the disk (``synchronous_commit`` off for this transaction only).

    Safe for a write of output: its rows and the offsets they reach go in one
    transaction, so a server crash that loses it loses both together, and the job's
    next follower reads those lines again from the server's control directory. Every
    later synchronous commit (a job's end among them) first makes all earlier ones
    durable, so a job never ends with its last lines lost.
    """
    connection = connections[router.db_for_write(Log)]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def lock_deleted_job(sender: type[Job], instance: Job, using: str, **kwargs: Any) -> None:
    """pre_delete receiver: lock a job's row before Django deletes its logs.

    ``Log.job`` has no foreign key in the database; this keeps what it would keep. A
    writer locks the job's row before it stores rows (``LogWriter._save``,
    ``store_writes``), so the deletion waits for a write in progress to commit, then
    deletes its rows too; a write after the deletion finds no job and stores nothing.
    """
    Job.objects.using(using).select_for_update().filter(pk=instance.pk).exists()


def _update_jobs(values: dict[int, dict[str, object]], owner: str) -> None:
    """One UPDATE for many jobs: heartbeat and lease alike, offsets each its own."""
    if not values:
        return
    connection = connections[router.db_for_write(Job)]
    quote = connection.ops.quote_name
    now = timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    # Every write of one pass renews for the same length of lease.
    lease = next((v["lease_expires"] for v in values.values() if "lease_expires" in v), None)
    sets = [f"{quote('heartbeat')} = %s", f"{quote('modified')} = %s"]
    params: list[Any] = [adapt(now), adapt(now)]
    if isinstance(lease, datetime):
        sets.append(f"{quote('lease_expires')} = %s")
        params.append(adapt(lease))
    if connection.vendor == "postgresql":
        _update_jobs_by_arrays(connection, values, owner, sets, params)
        return
    for column in ("stdout_offset", "stderr_offset"):
        cases = [(pk, v[column]) for pk, v in values.items() if column in v]
        if cases:
            whens = " ".join(["WHEN %s THEN %s"] * len(cases))
            sets.append(f"{quote(column)} = CASE {quote('id')} {whens} ELSE {quote(column)} END")
            for pk, offset in cases:
                params += [pk, offset]
    pks = list(values)
    params += [*pks, owner]
    table = quote(Job._meta.db_table)
    # Only quoted identifiers go into the text; every value is a parameter.
    sql = (
        f"UPDATE {table} SET {', '.join(sets)} "  # noqa: S608
        f"WHERE {quote('id')} IN ({', '.join(['%s'] * len(pks))}) AND {quote('lease_owner')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _update_jobs_by_arrays(
    connection: Any,
    values: dict[int, dict[str, object]],
    owner: str,
    sets: list[str],
    params: list[Any],
) -> None:
    """PostgreSQL: the jobs and their offsets as three arrays, so that the statement's
    text is the same for any number of jobs (a CASE arm per job made a new statement,
    and the driver parsed it again, at every pass). A job without new offsets keeps its
    own (NULL in the arrays)."""
    quote = connection.ops.quote_name
    table = quote(Job._meta.db_table)
    pks = list(values)
    offsets = {
        column: [values[pk].get(column) for pk in pks]
        for column in ("stdout_offset", "stderr_offset")
    }
    sets = [
        *sets,
        *(f"{quote(column)} = COALESCE(v.{column}, {table}.{quote(column)})" for column in offsets),
    ]
    # Only quoted identifiers go into the text; every value is a parameter.
    sql = (
        f"UPDATE {table} SET {', '.join(sets)} "  # noqa: S608
        "FROM unnest(%s::integer[], %s::bigint[], %s::bigint[]) "
        "AS v(id, stdout_offset, stderr_offset) "
        f"WHERE {table}.{quote('id')} = v.id AND {table}.{quote('lease_owner')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql, [*params, pks, offsets["stdout_offset"], offsets["stderr_offset"], owner]
        )


def insert_rows(items: Sequence[tuple[int, _Line]]) -> StoredRows:
    """Rows of many jobs (a follower's pass), ids returned in the order given."""
    if not items:
        return _NO_ROWS
    job_ids, lines = zip(*items, strict=True)
    return _insert(job_ids, lines)


def _insert_values(connection: Any, job_ids: Sequence[int], lines: Sequence[_Line]) -> StoredRows:
    """``lines`` (of the jobs ``job_ids``, one each) by one multi-row INSERT per few
    thousand rows, ids returned in order: the ORM's bulk_create spends most of its time
    preparing each field of each row, while a batch shares its few distinct times, so
    values are adapted once. Databases that cannot return ids from an INSERT go through
    bulk_create."""
    if not connection.features.can_return_rows_from_bulk_insert:
        objects = Log.objects.bulk_create(
            [
                Log(job_id=job_id, stream=li.stream, time=li.time, content=li.content)
                for job_id, li in zip(job_ids, lines, strict=True)
            ]
        )
        return StoredRows([o.pk for o in objects], job_ids, lines)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in ("job_id", "stream", "time", "content"))
    # Only quoted identifiers go into the text; every value is a parameter.
    head = f"INSERT INTO {quote(Log._meta.db_table)} ({columns}) VALUES "  # noqa: S608
    tail = f" RETURNING {quote('id')}"
    size = max(1, min(2000, _max_parameters(connection) // 4))
    adapted: dict[datetime, Any] = {}
    ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(lines), size):
            batch = lines[start : start + size]
            batch_jobs = job_ids[start : start + size]
            params: list[Any] = []
            for job_id, line in zip(batch_jobs, batch, strict=True):
                when = adapted.get(line.time)
                if when is None:
                    when = adapted[line.time] = connection.ops.adapt_datetimefield_value(line.time)
                params += (job_id, line.stream, when, line.content)
            cursor.execute(head + ", ".join(["(%s, %s, %s, %s)"] * len(batch)) + tail, params)
            # Ids grow in insertion order within one statement, whatever order RETURNING uses.
            ids += sorted(row[0] for row in cursor.fetchall())
    return StoredRows(ids, job_ids, lines)


class _OctetLength(Func):
    """A text's length in bytes, as LOG_MAX_BYTES counts it (``Length`` counts characters)."""

    function = "OCTET_LENGTH"
    output_field = IntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="LENGTH(CAST(%(expressions)s AS BLOB))", **extra_context
        )


def insert_logs(job_id: int, lines: Sequence[_Line]) -> StoredRows:
    """Insert rows for one job, fast, and return them with their ids, in order.

    PostgreSQL takes them by COPY; elsewhere they go by ``_insert_values``.
    """
    if not lines:
        return _NO_ROWS
    return _insert([job_id] * len(lines), lines)


def _insert(job_ids: Sequence[int], lines: Sequence[_Line]) -> StoredRows:
    """Rows (of the jobs ``job_ids``, one each): by COPY on PostgreSQL, elsewhere by
    ``_insert_values``."""
    connection = connections[router.db_for_write(Log)]
    if connection.vendor == "postgresql" and _is_psycopg3():
        return _copy_logs(connection, job_ids, lines)
    return _insert_values(connection, job_ids, lines)


#: Rows per COPY message: the server stores each while the next is made, and a large
#: batch (the tail) is never held as text all at once.
COPY_CHUNK = 1000


def _is_psycopg3() -> bool:
    # Imported here: it imports a PostgreSQL driver, which SQLite sites need not have.
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return bool(is_psycopg3)


def _copy_logs(connection: Any, job_ids: Sequence[int], lines: Sequence[_Line]) -> StoredRows:
    """PostgreSQL: ids are taken from the table's sequence first, as INSERT would take
    them, then the rows go with their ids by COPY, several times faster than INSERT."""
    quote = connection.ops.quote_name
    table = quote(Log._meta.db_table)
    columns = ", ".join(quote(name) for name in ("id", "job_id", "stream", "time", "content"))
    with connection.cursor() as cursor:
        ids = _take_ids(cursor, table, len(lines))
        # Only quoted identifiers go into the text; every value is escaped for COPY.
        with (
            connection.wrap_database_errors,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            for start in range(0, len(lines), COPY_CHUNK):
                end = start + COPY_CHUNK
                copy.write(_copy_text(ids[start:end], job_ids[start:end], lines[start:end]))
    return StoredRows(ids, job_ids, lines)


def _take_ids(cursor: Any, table: str, count: int) -> Sequence[int]:
    """``count`` new ids from the table's sequence, in increasing order.

    Unless another session took some meanwhile, they follow each other: then only the
    first and the last come back, rather than a row per id.
    """
    # MATERIALIZED: the sequence is looked up once, not once for each row.
    cursor.execute(
        "WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence(%s, %s)::regclass AS seq), "
        "v AS (SELECT nextval(seq) AS id FROM s, generate_series(1, %s)) "
        "SELECT min(id), max(id), "
        "CASE WHEN max(id) - min(id) + 1 <> count(*) THEN array_agg(id) END FROM v",
        [table, Log._meta.pk.column, count],
    )
    first, last, scattered = cursor.fetchone()
    if scattered is None:  # distinct values, as many as the integers from first to last
        return range(first, last + 1)
    return sorted(scattered)


_stream_and_time = attrgetter("stream", "time")


def _copy_text(ids: Sequence[int], job_ids: Sequence[int], lines: Sequence[_Line]) -> str:
    """Rows in COPY's text format: tab-separated columns, one row a line."""
    # The contents are escaped in one go, far cheaper than line by line, joined by NUL,
    # which text in PostgreSQL cannot hold (_decode replaced it).
    joined = "\x00".join([line.content for line in lines])
    if joined.count("\x00") != len(lines) - 1:
        raise ValueError("PostgreSQL cannot store NUL characters in log content.")
    contents = _copy_escape(joined).split("\x00")
    parts: list[str] = []
    start = 0
    # Each read of a batch is of one job's stream at one time: its lines share their
    # middle.
    keys = zip(job_ids, map(_stream_and_time, lines), strict=True)
    for (job_id, (stream, when)), run in groupby(keys):
        end = start + len(list(run))
        middle = f"\t{job_id:d}\t{_copy_escape(stream)}\t{when.isoformat()}\t"
        parts += [
            f"{pk:d}{middle}{content}\n"
            for pk, content in zip(ids[start:end], contents[start:end], strict=True)
        ]
        start = end
    return "".join(parts)


def _copy_escape(text: str) -> str:
    """Text as COPY's text format reads it back: ``\\``, newline, CR and tab escaped."""
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\n" in text:
        text = text.replace("\n", "\\n")
    if "\r" in text:
        text = text.replace("\r", "\\r")
    if "\t" in text:
        text = text.replace("\t", "\\t")
    return text


def _max_parameters(connection: Any) -> int:
    """How many parameters one statement may carry on this database."""
    limit = connection.features.max_query_params or 8000
    if connection.vendor == "sqlite":
        # Django assumes SQLite's old limit of 999; ask the library for the real one.
        connection.ensure_connection()
        getlimit = getattr(connection.connection, "getlimit", None)
        if getlimit is not None:
            import sqlite3

            limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return int(limit)

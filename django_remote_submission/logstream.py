"""From a program's output bytes to Log rows: lines, log policies, batches, the size cap."""

from __future__ import annotations

import enum
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connections, router, transaction
from django.utils import timezone

from django_remote_submission.events import publish_logs
from django_remote_submission.models import Job, Log

logger = logging.getLogger(__name__)

STREAMS = ("stdout", "stderr")
#: Seconds between heartbeats while a program says nothing.
HEARTBEAT_SECONDS = 30.0


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
    returned so far, so a follower can resume exactly after them.
    """

    def __init__(self, max_length: int, offset: int = 0) -> None:
        self.max_length = max_length
        self.offset = offset
        self._pending = b""

    def feed(self, data: bytes) -> list[str]:
        buffer = self._pending + data
        lines: list[str] = []
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
            else:
                for raw in raws:
                    line = _after_carriage_return(raw.removesuffix(b"\r"))
                    while len(line) > self.max_length:
                        piece = _utf8_boundary(line, self.max_length)
                        lines.append(_decode(line[:piece]))
                        line = line[piece:]
                    lines.append(_decode(line) + "\n")
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
            buffer = buffer[piece:]
        self._pending = buffer
        return lines

    def finish(self) -> list[str]:
        """The unfinished last line, if the program ended without a newline."""
        rest, self._pending = self._pending, b""
        if not rest:
            return []
        self.offset += len(rest)
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


@dataclass
class LogWriter:
    """Stores a job's lines by its LogPolicy, in batches, with the byte offsets.

    ``LOG_LIVE`` flushes a batch when it holds ``batch_lines`` lines or ``batch_seconds``
    passed since the last write (so a line after a quiet spell goes at once); each
    flush writes the rows, the offsets and the heartbeat in one transaction, then calls
    ``on_batch`` with the new rows once it committed.
    ``LOG_TOTAL`` writes one row per stream at the end. ``LOG_NONE`` writes no rows.
    Past ``max_bytes`` of stored output the first half is kept as it came, the last
    half is kept in memory and written at the end, and one row says what was dropped.
    """

    job: Job
    policy: LogPolicy
    batch_lines: int
    batch_seconds: float
    max_bytes: int | None
    on_batch: Callable[[Sequence[LogRow]], None] | None = None
    offsets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 0))
    rows_written: int = 0
    _batch: list[_Line] = field(default_factory=list)
    _totals: dict[str, list[str]] = field(default_factory=lambda: {s: [] for s in STREAMS})
    _total_times: dict[str, datetime] = field(default_factory=dict)
    _stored_bytes: int = 0
    _tail: deque[_Line] = field(default_factory=deque)
    _tail_bytes: int = 0
    _dropped_lines: int = 0
    _dropped_bytes: int = 0
    _last_beat: float = field(default_factory=time.monotonic)
    _dirty_offsets: bool = False
    _last_log_id: int | None = None

    def add(self, stream: str, lines: Sequence[str], offset: int, when: datetime) -> None:
        """Lines of one stream read at ``when``; ``offset`` is where that stream now stands."""
        self.offsets[stream] = offset
        self._dirty_offsets = True
        if self.policy == LogPolicy.LOG_NONE:
            self.tick()
            return
        for content in lines:
            self._keep(_line(stream, when, content))
            if len(self._batch) >= self.batch_lines:
                self.flush()
        self.tick()

    def _keep(self, line: _Line) -> None:
        if self.max_bytes is not None and self._stored_bytes + line.size > self.max_bytes // 2:
            self._tail.append(line)
            self._tail_bytes += line.size
            while self._tail_bytes > self.max_bytes - self.max_bytes // 2 and self._tail:
                dropped = self._tail.popleft()
                self._tail_bytes -= dropped.size
                self._dropped_lines += 1
                self._dropped_bytes += dropped.size
            return
        self._stored_bytes += line.size
        if self.policy == LogPolicy.LOG_TOTAL:
            self._totals[line.stream].append(line.content)
            self._total_times[line.stream] = line.time
            return
        self._batch.append(line)

    def tick(self) -> None:
        """Flush what is due; call it also when nothing arrives, so lines never wait long.

        ``batch_seconds`` counts from the last write: a line after a quiet spell is
        written at once, and a chatty program is written at most that often.
        """
        since_last_write = time.monotonic() - self._last_beat
        if (
            self._batch
            and (len(self._batch) >= self.batch_lines or since_last_write >= self.batch_seconds)
        ) or since_last_write >= HEARTBEAT_SECONDS:
            self.flush()

    def flush(self) -> None:
        lines, self._batch = self._batch, []
        if self.policy == LogPolicy.LOG_TOTAL:
            self._save([], offsets=False)  # offsets move only with the rows, at the end
        else:
            self._save(lines, offsets=True)

    def close(self) -> None:
        """Write everything still held: the batch, LOG_TOTAL's rows, the kept tail."""
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
        self._save(rows, offsets=True)

    def _tail_as_totals(self) -> list[_Line]:
        rows: list[_Line] = []
        for stream in STREAMS:
            kept = [line for line in self._tail if line.stream == stream]
            if kept:
                rows.append(_line(stream, kept[-1].time, "".join(line.content for line in kept)))
        return rows

    def _save(self, lines: Sequence[_Line], *, offsets: bool) -> None:
        self._last_beat = time.monotonic()
        values: dict[str, object] = {"heartbeat": timezone.now()}
        if offsets and self._dirty_offsets:
            values["stdout_offset"] = self.offsets["stdout"]
            values["stderr_offset"] = self.offsets["stderr"]
            self._dirty_offsets = False
        with transaction.atomic():
            if lines and self._last_log_id is None:
                last = Log.objects.filter(job_id=self.job.pk).order_by("-id").first()
                self._last_log_id = last.pk if last else 0
            rows = insert_logs(self.job.pk, lines)
            Job.objects.filter(pk=self.job.pk).update(**values)
            if rows:
                after, job_pk, callback = self._last_log_id, self.job.pk, self.on_batch
                self._last_log_id = rows[-1].id if rows[-1].id is not None else None

                def committed() -> None:
                    publish_logs(job_pk, rows, after_id=after)
                    if callback is not None:
                        callback(rows)

                transaction.on_commit(committed)
        self.rows_written += len(rows)

    def note(self, stream: str, text: str) -> None:
        """A line from the app itself (e.g. a skipped result), stored whatever the policy."""
        self._save(
            [_line(stream, timezone.now(), f"[django-remote-submission] {text}\n")], offsets=False
        )


def insert_logs(job_id: int, lines: Sequence[_Line]) -> list[LogRow]:
    """Insert rows for one job, fast: one multi-row INSERT per batch, ids returned.

    The ORM's bulk_create spends most of its time preparing each field of each row;
    here a batch shares its job id and its few distinct times, so values are adapted
    once. Databases that cannot return ids from an INSERT go through bulk_create.
    """
    if not lines:
        return []
    connection = connections[router.db_for_write(Log)]
    if not connection.features.can_return_rows_from_bulk_insert:
        objects = Log.objects.bulk_create(
            [Log(job_id=job_id, stream=li.stream, time=li.time, content=li.content) for li in lines]
        )
        return [LogRow(o.pk, job_id, o.time, o.content, o.stream) for o in objects]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in ("job_id", "stream", "time", "content"))
    # Only quoted identifiers go into the text; every value is a parameter.
    head = f"INSERT INTO {quote(Log._meta.db_table)} ({columns}) VALUES "  # noqa: S608
    tail = f" RETURNING {quote('id')}"
    size = max(1, min(2000, _max_parameters(connection) // 4))
    adapted: dict[datetime, Any] = {}
    rows: list[LogRow] = []
    with connection.cursor() as cursor:
        for start in range(0, len(lines), size):
            batch = lines[start : start + size]
            params: list[Any] = []
            for line in batch:
                when = adapted.get(line.time)
                if when is None:
                    when = adapted[line.time] = connection.ops.adapt_datetimefield_value(line.time)
                params += (job_id, line.stream, when, line.content)
            cursor.execute(head + ", ".join(["(%s, %s, %s, %s)"] * len(batch)) + tail, params)
            # Ids grow in insertion order within one statement, whatever order RETURNING uses.
            ids = sorted(row[0] for row in cursor.fetchall())
            rows += [
                LogRow(pk, job_id, line.time, line.content, line.stream)
                for pk, line in zip(ids, batch, strict=True)
            ]
    return rows


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

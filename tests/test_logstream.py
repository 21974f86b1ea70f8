import datetime as dt
import threading

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_remote_submission import events, logstream
from django_remote_submission.exceptions import LeaseLost
from django_remote_submission.logstream import (
    LineSplitter,
    LogPolicy,
    LogRow,
    LogWriter,
    PendingWrite,
    _line,
    insert_logs,
    store_writes,
)
from django_remote_submission.models import Job, Log
from tests.factories import make_job, make_log

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def feed_all(splitter, *chunks):
    lines = []
    for chunk in chunks:
        lines += splitter.feed(chunk)
    return lines


def test_lines_keep_their_newline_and_offsets_count_only_whole_lines():
    splitter = LineSplitter(100)
    assert splitter.feed(b"one\ntw") == ["one\n"]
    assert splitter.offset == 4
    assert splitter.feed(b"o\nthree") == ["two\n"]
    assert splitter.offset == 8
    assert splitter.finish() == ["three"]
    assert splitter.offset == 13


@pytest.mark.parametrize("cut", range(1, 3))
def test_a_character_split_across_reads_stays_whole(cut):
    euro = "€".encode()
    splitter = LineSplitter(100)
    assert feed_all(splitter, b"a" + euro[:cut], euro[cut:] + b"\n") == ["a€\n"]


def test_undecodable_bytes_and_nul_are_replaced():
    assert LineSplitter(100).feed(b"\xff ok \x00\n") == ["\ufffd ok \ufffd\n"]


def test_windows_line_endings_and_progress_bars():
    splitter = LineSplitter(100)
    assert splitter.feed(b"dos\r\n") == ["dos\n"]
    assert feed_all(splitter, b"10%\r", b"20%\r", b"30%") == []
    assert splitter.feed(b"\r100%\n") == ["100%\n"]
    assert splitter.offset == len(b"dos\r\n10%\r20%\r30%\r100%\n")


def test_progress_output_without_newlines_stays_bounded():
    splitter = LineSplitter(100)
    for i in range(100_000):
        splitter.feed(f"\r{i}%".encode())
    assert len(splitter._pending) < 20
    assert splitter.finish() == ["99999%"]


def test_long_lines_are_split_on_character_boundaries():
    splitter = LineSplitter(10)
    text = "é" * 12  # 24 bytes
    pieces = splitter.feed(text.encode() + b"\n")
    assert "".join(pieces) == text + "\n"
    assert all(len(piece.rstrip("\n").encode()) <= 10 for piece in pieces)
    assert pieces[-1].endswith("\n")
    assert feed_all(LineSplitter(4), b"abcdefghij") == ["abcd", "efgh"]


def writer(job, policy=LogPolicy.LOG_LIVE, **kwargs):
    values = {"batch_lines": 3, "batch_seconds": 3600.0, "max_bytes": None}
    values.update(kwargs)
    return LogWriter(job, policy, **values)


@pytest.mark.django_db
def test_live_batches_flush_at_n_lines_with_offsets_in_the_same_write():
    job = make_job()
    w = writer(job)
    w.add("stdout", ["a\n", "b\n"], 4, NOW)
    assert Log.objects.count() == 0
    w.add("stdout", ["c\n"], 6, NOW)
    assert list(Log.objects.values_list("content", flat=True)) == ["a\n", "b\n", "c\n"]
    job.refresh_from_db()
    assert job.stdout_offset == 6
    assert job.heartbeat is not None
    w.add("stderr", ["e\n"], 2, NOW)
    w.close()
    job.refresh_from_db()
    assert (job.stdout_offset, job.stderr_offset) == (6, 2)
    assert Log.objects.count() == 4
    assert w.rows_written == 4


@pytest.mark.django_db
def test_live_batches_flush_after_t_seconds():
    job = make_job()
    w = writer(job, batch_lines=1000, batch_seconds=0.0)
    w.add("stdout", ["a\n"], 2, NOW)
    assert Log.objects.count() == 1


@pytest.mark.django_db
def test_log_total_and_log_none():
    job = make_job()
    total = writer(job, LogPolicy.LOG_TOTAL)
    total.add("stdout", ["a\n", "b\n", "c\n", "d\n"], 8, NOW)
    total.add("stderr", ["x\n"], 2, NOW)
    assert Log.objects.count() == 0
    total.close()
    assert list(Log.objects.values_list("stream", "content")) == [
        ("stdout", "a\nb\nc\nd\n"),
        ("stderr", "x\n"),
    ]
    other = make_job(server=job.server, owner=job.owner)
    none = writer(other, LogPolicy.LOG_NONE)
    none.add("stdout", ["a\n"] * 10, 20, NOW)
    none.close()
    other.refresh_from_db()
    assert (other.logs.count(), other.stdout_offset) == (0, 20)


@pytest.mark.django_db
def test_the_cap_keeps_head_and_tail_and_says_what_it_dropped():
    job = make_job()
    w = writer(job, batch_lines=1000, max_bytes=40)
    lines = [f"line {i:02d}\n" for i in range(20)]  # 8 bytes each
    for i, line in enumerate(lines):
        w.add("stdout", [line], 8 * (i + 1), NOW)
    w.close()
    contents = list(job.logs.values_list("content", flat=True))
    assert contents[:2] == lines[:2]
    assert contents[-2:] == lines[-2:]
    [marker] = [c for c in contents if "not stored" in c]
    stored = [c for c in contents if c.startswith("line")]
    assert f"{20 - len(stored)} lines" in marker
    assert sum(len(c) for c in stored) <= 40


@pytest.mark.django_db
@override_settings(REMOTE_SUBMISSION_LOG_BATCH_LINES=2)
def test_on_batch_gets_the_stored_rows_after_commit(django_capture_on_commit_callbacks):
    job = make_job()
    seen = []
    w = writer(job, batch_lines=2, on_batch=seen.append)
    with django_capture_on_commit_callbacks(execute=True):
        w.add("stdout", ["a\n", "b\n"], 4, NOW)
        w.add("stdout", ["c\n"], 6, NOW)
        w.close()
    assert [[log.content for log in batch] for batch in seen] == [["a\n", "b\n"], ["c\n"]]
    assert all(log.id for batch in seen for log in batch)


HOSTILE = [
    "tab\there\n",
    "back\\slash \\N \\. \\\\ \\t\n",
    "\\.\n",
    "\\N",
    "",
    "carriage\rreturn and\nnewline inside\n",
    "ünïcödé € 漢字 🎉\n",
    "\x01\x08\x0b\x0c\x1b[31mred\x1b[0m\x7f\n",
    "'; DROP TABLE django_remote_submission_log; --\n",
    "\ufffd\u2028\u2029\n",
]


@pytest.mark.django_db
def test_insert_logs_stores_any_content_and_returns_the_real_ids_in_order():
    job = make_job()
    before = make_log(job=job)
    lines = [_line(("stdout", "stderr")[i % 2], NOW, text) for i, text in enumerate(HOSTILE * 3)]
    rows = insert_logs(job.pk, lines)
    after = make_log(job=job)
    stored = list(job.logs.exclude(pk__in=[before.pk, after.pk]).order_by("id"))
    assert [(r.id, r.job_id, r.time, r.content, r.stream) for r in stored] == [
        tuple(row) for row in rows
    ]
    assert [row.content for row in rows] == HOSTILE * 3
    assert all(isinstance(row, LogRow) for row in rows)
    assert before.pk < rows[0].id < rows[-1].id < after.pk  # the sequence moved past them


@pytest.mark.django_db
def test_on_postgresql_logs_go_in_by_copy():
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    job = make_job()
    with CaptureQueriesContext(connection) as queries:
        rows = insert_logs(job.pk, [_line("stdout", NOW, f"{i}\t\\\n") for i in range(5000)])
    statements = [query["sql"] for query in queries]
    assert any(sql.startswith("COPY ") for sql in statements)
    assert not any("INSERT" in sql for sql in statements)
    assert [(row.id, row.content) for row in rows] == list(job.logs.values_list("id", "content"))


@pytest.mark.django_db
def test_on_postgresql_ids_that_do_not_follow_each_other_are_returned_as_taken():
    if connection.vendor != "postgresql":
        pytest.skip("the sequence is PostgreSQL's")
    job = make_job()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [Log._meta.db_table])
        [sequence] = cursor.fetchone()
        # As if other sessions took every other id while these were taken.
        cursor.execute(f"ALTER SEQUENCE {sequence} INCREMENT BY 2")
    rows = insert_logs(job.pk, [_line("stdout", NOW, f"{i}\n") for i in range(5)])
    assert [(row.id, row.content) for row in rows] == list(job.logs.values_list("id", "content"))
    assert [row.id - rows[0].id for row in rows] == [0, 2, 4, 6, 8]


@pytest.mark.django_db
def test_publish_is_called_after_commit_with_the_rows_and_the_last_id_before(
    django_capture_on_commit_callbacks,
):
    job = make_job()
    old = make_log(job=job)
    seen = []
    w = writer(job, batch_lines=2, publish=lambda *args: seen.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        w.add("stdout", ["a\n", "b\n"], 4, NOW)
        w.add("stdout", ["c\n"], 6, NOW)
        w.close()
    [(pk1, rows1, after1), (pk2, rows2, after2)] = seen
    assert (pk1, pk2) == (job.pk, job.pk)
    assert [row.content for row in rows1 + rows2] == ["a\n", "b\n", "c\n"]
    assert (after1, after2) == (old.pk, rows1[-1].id)


@pytest.mark.django_db
def test_without_a_publisher_nothing_is_published(django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr(events.publisher, "send", lambda *args: sent.append(args))
    job = make_job()
    with django_capture_on_commit_callbacks(execute=True):
        w = writer(job, batch_lines=1)
        w.add("stdout", ["quiet\n"], 6, NOW)
        w.close()
    assert job.logs.count() == 1
    assert sent == []
    with django_capture_on_commit_callbacks(execute=True):
        w = writer(job, batch_lines=1, publish=events.publish_logs)
        w.add("stdout", ["heard\n"], 12, NOW)
    [(group, message)] = sent
    assert group == events.job_group(job.pk)
    assert message["contents"] == ["heard\n"]


SPLITTER_INPUTS = [
    b"one\ntwo\nthree",
    b"dos\r\nline\r\n10%\r20%\r\n",
    b"x" * 25 + b"\n" + "é".encode() * 9 + b"\nend",
    b"\r\r\n\n\n",
    b"\xff\xfe\n\x00\n",
]


@pytest.mark.parametrize("data", SPLITTER_INPUTS)
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_the_splitter_says_where_each_line_ends(data, chunk):
    splitter = LineSplitter(10)
    lines, ends = [], []
    for start in range(0, len(data), chunk):
        lines += splitter.feed(data[start : start + chunk])
        ends += splitter.ends
    lines += splitter.finish()
    ends += splitter.ends
    assert len(ends) == len(lines)
    assert ends == sorted(ends)
    assert ends[-1] == len(data)
    for i, end in enumerate(ends):  # resuming after any line gives exactly the lines after it
        rest = LineSplitter(10, end)
        assert rest.feed(data[end:]) + rest.finish() == lines[i + 1 :]


def stored_offsets(job):
    return tuple(Job.objects.filter(pk=job.pk).values_list("stdout_offset", "stderr_offset").get())


def feed(w, splitter, stream, data):
    lines = splitter.feed(data)
    w.add(stream, lines, splitter.offset, NOW, ends=splitter.ends)


@pytest.mark.django_db
def test_a_batch_cut_inside_a_read_stores_the_offset_where_its_lines_end():
    job = make_job()
    w = writer(job, batch_lines=2)
    feed(w, LineSplitter(100), "stdout", b"a\nb\nc\n")
    assert list(job.logs.values_list("content", flat=True)) == ["a\n", "b\n"]
    assert stored_offsets(job) == (4, 0)  # not 6: "c" is still in memory

    # This worker dies; another goes on from the stored offsets: every line once.
    other = writer(job, batch_lines=2)
    other.resume()
    assert other.offsets == {"stdout": 4, "stderr": 0}
    feed(other, LineSplitter(100, 4), "stdout", b"c\n")
    other.close()
    assert list(job.logs.values_list("content", flat=True)) == ["a\n", "b\n", "c\n"]
    assert stored_offsets(job) == (6, 0)


@pytest.mark.django_db
def test_without_line_ends_a_cut_inside_a_read_stores_where_the_read_began():
    job = make_job()
    w = writer(job, batch_lines=3)
    w.add("stdout", ["x\n"], 2, NOW)
    w.add("stdout", ["a\n", "b\n", "c\n"], 8, NOW)
    assert job.logs.count() == 3
    assert stored_offsets(job)[0] == 2  # behind the stored "a": re-read, never skipped


@pytest.mark.django_db
def test_offsets_stay_at_the_stored_lines_while_the_tail_is_held():
    job = make_job()
    w = writer(job, batch_lines=1, max_bytes=40)
    splitters = {"stdout": LineSplitter(100), "stderr": LineSplitter(100)}
    lines = [f"line {i:02d}\n".encode() for i in range(10)]  # 8 bytes each
    for i, line in enumerate(lines):
        stream = "stdout" if i % 3 else "stderr"
        feed(w, splitters[stream], stream, line)
    w.add("stderr", [], 99, NOW)  # a later read of the other stream moves nothing either
    w.flush()
    stored = list(job.logs.values_list("content", flat=True))
    assert stored == ["line 00\n", "line 01\n"]
    assert stored_offsets(job) == (8, 8)  # where the stored lines end, not (56, 99)
    w.close()
    assert stored_offsets(job) == (splitters["stdout"].offset, 99)
    assert job.logs.last().content == "line 09\n"


@pytest.mark.django_db
def test_a_resumed_writer_counts_the_bytes_already_stored_against_the_cap():
    job = make_job()
    line = "ééé\n"  # 7 bytes, 4 characters
    data = line.encode() * 12
    w = writer(job, batch_lines=1, max_bytes=40)
    splitter = LineSplitter(100)
    feed(w, splitter, "stdout", data[:35])  # five lines: two stored, three held
    assert job.logs.count() == 2
    assert stored_offsets(job) == (14, 0)

    # This worker dies with its tail; another takes the job over.
    other = writer(job, batch_lines=1, max_bytes=40)
    other.resume()
    resumed = LineSplitter(100, other.offsets["stdout"])
    for start in range(14, len(data), 7):
        feed(other, resumed, "stdout", data[start : start + 7])
    other.close()
    contents = list(job.logs.values_list("content", flat=True))
    kept = [content for content in contents if content == line]
    assert contents[:2] == [line, line]  # the head is not stored again nor grown
    assert contents[-1] == line
    assert sum(len(content.encode()) for content in kept) <= 40
    [marker] = [content for content in contents if "not stored" in content]
    assert f"{12 - len(kept)} lines" in marker
    assert stored_offsets(job) == (len(data), 0)


@pytest.mark.django_db
def test_a_write_for_a_lost_lease_rolls_back_and_raises():
    job = make_job()
    Job.objects.filter(pk=job.pk).update(lease_owner="worker-b")
    w = writer(job, batch_lines=1, owner="worker-a")
    with pytest.raises(LeaseLost):
        w.add("stdout", ["mine\n"], 5, NOW)
    assert job.logs.count() == 0
    assert stored_offsets(job) == (0, 0)


@pytest.mark.django_db
def test_a_write_for_a_deleted_job_stores_nothing_and_raises():
    job = make_job()
    w = writer(job, batch_lines=1)
    Job.objects.filter(pk=job.pk).delete()
    with pytest.raises(LeaseLost, match="deleted"):
        w.add("stdout", ["too late\n"], 9, NOW)
    assert Log.objects.filter(job_id=job.pk).count() == 0


def test_deleting_a_job_waits_for_a_write_in_progress_and_leaves_no_rows(transactional_db):
    # Log.job has no foreign key in the database: the job's row lock keeps what it kept.
    job = make_job()
    w = writer(job, batch_lines=1000)
    w.add("stdout", [f"line {i}\n" for i in range(500)], 5000, NOW)
    inside, release, deleted = threading.Event(), threading.Event(), threading.Event()
    real_insert = logstream.insert_logs

    def slow_insert(job_id, lines):
        rows = real_insert(job_id, lines)
        inside.set()  # the job's row is locked, the rows are in, nothing committed yet
        release.wait(10)
        return rows

    def delete():
        try:
            Job.objects.get(pk=job.pk).delete()
            deleted.set()
        finally:
            connection.close()

    def write():
        try:
            w.flush()
        finally:
            connection.close()

    logstream.insert_logs = slow_insert
    try:
        writing = threading.Thread(target=write)
        writing.start()
        assert inside.wait(10)
        deleting = threading.Thread(target=delete)
        deleting.start()
        # The deletion waits for the write's lock (SQLite: for its write transaction).
        assert not deleted.wait(0.5)
        release.set()
        writing.join(10)
        deleting.join(10)
    finally:
        logstream.insert_logs = real_insert
        release.set()
    assert deleted.is_set()
    assert not Job.objects.filter(pk=job.pk).exists()
    assert Log.objects.filter(job_id=job.pk).count() == 0


@pytest.mark.django_db
def test_store_writes_stores_many_jobs_in_one_go_and_drops_jobs_held_by_others():
    jobs = [make_job() for _ in range(3)]
    Job.objects.filter(pk__in=[j.pk for j in jobs[:2]]).update(lease_owner="me")
    Job.objects.filter(pk=jobs[2].pk).update(lease_owner="someone else")
    writes: list[PendingWrite] = []
    writers = [writer(job, batch_lines=2, owner="me", sink=writes.append) for job in jobs]
    for n, w in enumerate(writers):
        w.add("stdout", [f"job {n} line {i}\t\\\n" for i in range(5)], 100 + n, NOW)
        w.add("stderr", [f"job {n} error\n"], 10 + n, NOW)
        w.flush()
    with CaptureQueriesContext(connection) as queries:
        lost = store_writes(writes, "me")
    assert lost == {jobs[2].pk}
    for n, job in enumerate(jobs[:2]):
        stored = list(job.logs.order_by("id").values_list("stream", "content"))
        assert stored == [("stdout", f"job {n} line {i}\t\\\n") for i in range(5)] + [
            ("stderr", f"job {n} error\n")
        ]
        assert stored_offsets(job) == (100 + n, 10 + n)
        assert writers[n].rows_written == 6
    assert jobs[2].logs.count() == 0
    assert stored_offsets(jobs[2]) == (0, 0)
    if connection.vendor == "postgresql":
        statements = [query["sql"] for query in queries]
        assert any(sql.startswith("COPY ") for sql in statements)
        assert not any(sql.startswith("INSERT") for sql in statements)

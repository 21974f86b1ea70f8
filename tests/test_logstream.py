import datetime as dt

import pytest
from django.test import override_settings

from django_remote_submission.logstream import LineSplitter, LogPolicy, LogWriter
from django_remote_submission.models import Log
from tests.factories import make_job

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
        w.add("stdout", ["a\n", "b\n", "c\n"], 6, NOW)
        w.close()
    assert [[log.content for log in batch] for batch in seen] == [["a\n", "b\n"], ["c\n"]]
    assert all(log.id for batch in seen for log in batch)

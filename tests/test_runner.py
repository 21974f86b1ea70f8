"""The runner against real servers: this host (remote=False), OpenSSH, embedded (, .env)."""

import os
import socket
import textwrap
import threading
import time
from pathlib import Path

import pytest
from django.test import override_settings

from django_remote_submission.exceptions import RemoteSubmissionError
from django_remote_submission.logstream import LogPolicy
from django_remote_submission.models import Job, Result
from django_remote_submission.tasks import cancel_job, copy_job_to_server, submit_job_to_server

pytestmark = pytest.mark.ssh

FIVE_LINES = """
    import time
    for i in range(5):
        print("line: {}".format(i))
        time.sleep(0.1)
"""


def submit(target, job, **kwargs):
    return submit_job_to_server(job_pk=job.pk, **{**target.submit_kwargs, **kwargs})


def rows(job, stream=None):
    logs = job.logs.order_by("id")
    if stream:
        logs = logs.filter(stream=stream)
    return list(logs)


def test_five_lines_give_five_rows_in_order(target):
    job = target.job(FIVE_LINES)
    assert submit(target, job) == {}
    job.refresh_from_db()
    logs = rows(job)
    assert [log.content for log in logs] == [f"line: {i}\n" for i in range(5)]
    assert {log.stream for log in logs} == {"stdout"}
    times = [log.time for log in logs]
    assert times == sorted(times)
    assert (job.status, job.exit_code, job.error) == ("success", 0, "")
    assert job.started_at <= job.finished_at
    assert job.stdout_offset == sum(len(log.content) for log in logs)
    assert job.remote_pgid is not None
    assert job.heartbeat is not None


def test_streams_keep_their_lines_and_order(target):
    job = target.job(
        """
        import sys, time
        for i in range(6):
            stream = sys.stdout if i % 2 == 0 else sys.stderr
            stream.write("line: {}\\n".format(i))
            stream.flush()
            time.sleep(0.1)
        """
    )
    submit(target, job)
    logs = rows(job)
    assert [(log.stream, log.content) for log in logs] == [
        ("stdout" if i % 2 == 0 else "stderr", f"line: {i}\n") for i in range(6)
    ]


def test_exit_code_one_is_a_failure(target):
    job = target.job("import sys\nprint('bye')\nsys.stderr.write('it broke\\n')\nsys.exit(1)")
    submit(target, job)
    job.refresh_from_db()
    assert (job.status, job.exit_code) == ("failure", 1)
    assert job.error == "The program exited with code 1: it broke"
    assert [log.content for log in rows(job, "stdout")] == ["bye\n"]
    assert [log.content for log in rows(job, "stderr")] == ["it broke\n"]


def test_log_total_writes_one_row_per_stream(target):
    job = target.job(textwrap.dedent(FIVE_LINES) + "import sys; sys.stderr.write('e1\\ne2\\n')\n")
    submit(target, job, log_policy=LogPolicy.LOG_TOTAL)
    assert [(log.stream, log.content) for log in rows(job)] == [
        ("stdout", "".join(f"line: {i}\n" for i in range(5))),
        ("stderr", "e1\ne2\n"),
    ]


def test_log_none_writes_no_row_but_keeps_the_offsets(target):
    job = target.job(FIVE_LINES)
    submit(target, job, log_policy=LogPolicy.LOG_NONE)
    job.refresh_from_db()
    assert rows(job) == []
    assert job.status == "success"
    assert job.stdout_offset == len("".join(f"line: {i}\n" for i in range(5)))


def test_a_timeout_stops_the_program_and_leaves_nothing_behind(target):
    job = target.job(
        """
        import subprocess, time
        child = subprocess.Popen(["sleep", "60"])
        print("started", flush=True)
        time.sleep(10)
        print("never")
        """
    )
    with override_settings(REMOTE_SUBMISSION_KILL_GRACE=1):
        submit(target, job, timeout=1)
    job.refresh_from_db()
    assert job.status == "failure"
    assert job.error.startswith("Timed out: the program ran longer than 1 s")
    assert [log.content for log in rows(job)] == ["started\n"]
    assert target.live_processes(job.remote_pgid) == []


def test_timeout_as_a_timedelta_works_as_in_2x(target):
    import datetime as dt

    job = target.job("import time\ntime.sleep(10)")
    with override_settings(REMOTE_SUBMISSION_KILL_GRACE=1):
        submit(target, job, timeout=dt.timedelta(seconds=1))
    job.refresh_from_db()
    assert job.error.startswith("Timed out")


def test_cancel_stops_the_job_and_its_children(target, transactional_db):
    job = target.job(
        """
        import subprocess, time
        subprocess.Popen(["sleep", "60"])
        for i in range(600):
            print("tick", i, flush=True)
            time.sleep(0.1)
        """
    )
    errors = []

    def run():
        try:
            submit(target, job)
        except Exception as exc:  # the runner's own failure is asserted below
            errors.append(exc)
        finally:
            from django.db import connection

            connection.close()

    with override_settings(REMOTE_SUBMISSION_KILL_GRACE=2):
        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 60
        while not job.logs.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.logs.exists()
        assert cancel_job(job.pk) is True
        thread.join(60)
    assert not thread.is_alive()
    assert errors == []
    job.refresh_from_db()
    assert job.status == "failure"
    assert job.error == "Canceled at the request of a user."
    assert target.live_processes(job.remote_pgid) == []
    assert cancel_job(job.pk) is False  # already ended


def test_cancel_before_the_start(target):
    job = target.job("print('never')")
    assert cancel_job(job.pk) is True
    job.refresh_from_db()
    assert (job.status, job.error) == ("failure", "Canceled before it started.")
    with pytest.raises(RemoteSubmissionError, match="Canceled before it started"):
        run_again_before_start(target, job)


def run_again_before_start(target, job):
    from django_remote_submission.runner import run_job

    job.refresh_from_db()
    return run_job(job, target.options())


WRITE_FIVE_FILES = """
    for i in range(5):
        with open("{}.txt".format(i), "w") as f:
            f.write("line: {}\\n".format(i))
"""


def result_names(results):
    return sorted(results)


def test_modified_files_come_back(target):
    job = target.job(WRITE_FIVE_FILES)
    results = submit(target, job)
    assert result_names(results) == [f"{i}.txt" for i in range(5)]
    for name, pk in results.items():
        result = Result.objects.get(pk=pk)
        assert result.job_id == job.pk
        assert result.remote_filename == name
        assert result.local_file.name == f"results/{job.uuid}/{name}"
        with result.local_file.open("rb") as stream:
            data = stream.read()
        assert data == f"line: {name[0]}\n".encode()
        assert result.size == len(data)
        assert len(result.checksum) == 64


@pytest.mark.parametrize(
    "patterns", [["0.txt", "[12].txt"], ["*", "![34].txt"]], ids=["positive", "negative"]
)
def test_the_2x_pattern_examples(target, patterns):
    job = target.job(WRITE_FIVE_FILES)
    assert result_names(submit(target, job, store_results=patterns)) == ["0.txt", "1.txt", "2.txt"]


def test_outputs_in_subdirectories_keep_their_relative_paths(target):
    job = target.job(
        """
        import os
        os.makedirs("out/deep", exist_ok=True)
        open("out/a.csv", "w").write("a")
        open("out/deep/b.csv", "w").write("b")
        """
    )
    results = submit(target, job, store_results=["*.csv"])
    assert result_names(results) == ["out/a.csv", "out/deep/b.csv"]
    result = Result.objects.get(pk=results["out/deep/b.csv"])
    assert result.local_file.name == f"results/{job.uuid}/out/deep/b.csv"


def test_untouched_old_files_do_not_come_back(target):
    target.transport.mkdir_p(target.directory)
    target.transport.put_text("old", f"{target.directory}/old.txt")
    target.transport.put_text("changed", f"{target.directory}/changed.txt")
    job = target.job("open('changed.txt', 'w').write('changed by the job')\nopen('new.txt', 'w')")
    results = submit(target, job)
    assert result_names(results) == ["changed.txt", "new.txt"]


HOLD_FOR_THE_TEST = """
    import os, socket
    open("mine.txt", "w").write("mine")
    # Tells the test that the job runs (after the snapshot), and as whom; ends once the
    # test has written its files (or gone away).
    with socket.create_connection(("127.0.0.1", {port}), timeout=60) as test:
        test.sendall(b"%d\\n" % os.getuid())
        test.recv(1)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="making another user's file needs root")
def test_another_users_file_changed_during_the_job_is_not_a_result(target):
    """A shared directory such as /tmp holds other users' files: not this job's results.

    Two files are written while the job runs, after its snapshot, one owned by the login
    and one by another user: only the owner tells them apart, so only the filter on
    owners can keep the second out.
    """
    directory = Path(target.directory)
    errors = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(60)
        job = target.job(HOLD_FOR_THE_TEST.format(port=listener.getsockname()[1]))

        def write_while_the_job_runs() -> None:
            try:
                held, _ = listener.accept()
                with held:
                    held.settimeout(60)
                    login = int(held.makefile("rb").readline())
                    other = 65534 if login != 65534 else 65533  # nobody, or another
                    for name, owner in (("theirs.txt", other), ("ours.txt", login)):
                        (directory / name).write_text("written during the job")
                        os.chown(directory / name, owner, -1)
                    held.sendall(b"go")
            except Exception as exc:  # asserted below, once the job has ended
                errors.append(exc)

        writer = threading.Thread(target=write_while_the_job_runs)
        writer.start()
        try:
            results = submit(target, job)
        finally:
            writer.join()
    assert errors == []
    assert (directory / "theirs.txt").stat().st_uid != (directory / "ours.txt").stat().st_uid
    assert result_names(results) == ["mine.txt", "ours.txt"]


def test_the_program_of_a_job_sharing_the_directory_is_not_a_result(target):
    # The other job's upload is made by this job's program, after the snapshot, as a
    # job launched meanwhile into the same directory would make it.
    target.job("print('the other job')\n", remote_filename="other.py")
    job = target.job(
        "open('other.py', 'w').write('print(1)')\nopen('mine.txt', 'w').write('mine')\n"
    )
    results = submit(target, job)
    assert result_names(results) == ["mine.txt"]


def test_an_oversized_file_is_skipped_and_reported(target):
    job = target.job("open('small.txt', 'w').write('x')\nopen('big.bin', 'w').write('x' * 1000)")
    with override_settings(REMOTE_SUBMISSION_RESULT_MAX_FILE_SIZE=100):
        results = submit(target, job)
    assert result_names(results) == ["small.txt"]
    [note] = [log for log in rows(job) if "big.bin" in log.content]
    assert note.stream == "stderr"
    assert "1000 bytes, over REMOTE_SUBMISSION_RESULT_MAX_FILE_SIZE (100)" in note.content


def test_running_a_job_again_does_not_duplicate_results(target):
    job = target.job("import random\nopen('r.txt', 'w').write(str(random.random()))")
    first = submit(target, job)
    second = submit(target, job)
    assert first == second
    assert job.results.count() == 1
    with Result.objects.get().local_file.open() as stream:
        assert stream.read().decode().startswith("0.")


def test_split_utf8_invalid_bytes_progress_bars_and_a_huge_line(target):
    job = target.job(
        """
        import sys, time
        out = sys.stdout.buffer
        euro = "€".encode()
        out.write(b"price: " + euro[:2]); out.flush(); time.sleep(0.3)
        out.write(euro[2:] + b"\\n"); out.flush()
        out.write(b"bad \\xff\\xfe bytes\\n")
        for i in range(0, 101, 10):
            out.write("\\r{}%".format(i).encode()); out.flush()
        out.write(b"\\n")
        out.write(b"x" * (10 * 1024 * 1024) + b"\\n")
        out.write(b"no newline at the end")
        """
    )
    submit(target, job)
    contents = [log.content for log in rows(job)]
    assert contents[0] == "price: €\n"
    assert contents[1] == "bad \ufffd\ufffd bytes\n"
    assert contents[2] == "100%\n"
    huge = contents[3:-1]
    assert len(huge) == 10 * 1024 * 1024 // (64 * 1024)  # 64 KiB pieces, the last with "\n"
    assert "".join(huge) == "x" * (10 * 1024 * 1024) + "\n"
    assert contents[-1] == "no newline at the end"


@override_settings(REMOTE_SUBMISSION_LOG_MAX_BYTES=1000)
def test_the_log_cap_keeps_head_and_tail(target):
    job = target.job("for i in range(1000):\n    print('line {:04d}'.format(i))")
    submit(target, job)
    contents = [log.content for log in rows(job)]
    assert contents[0] == "line 0000\n"
    assert contents[-1] == "line 0999\n"
    [marker] = [c for c in contents if "were not stored" in c]
    stored = [c for c in contents if c.startswith("line")]
    assert f"{1000 - len(stored)} lines" in marker
    assert sum(len(c) for c in stored) <= 1000


def test_a_program_named_like_an_option(target):
    job = target.job("print('dash')", remote_filename="-v.py")
    submit(target, job)
    assert [log.content for log in rows(job)] == ["dash\n"]


def test_copy_job_uploads_without_running(target):
    job = target.job("open('ran.txt', 'w')")
    assert copy_job_to_server(job_pk=job.pk, **target.submit_kwargs) == {}
    job.refresh_from_db()
    assert job.status == "success"
    [log] = rows(job)
    assert log.content == f"File program.py successfully copied to {target.directory}."
    assert target.transport.read_file(f"{target.directory}/program.py") == b"open('ran.txt', 'w')"
    assert not target.transport.exists(f"{target.directory}/ran.txt")


def test_missing_interpreter(target):
    job = target.job("print(1)")
    job.interpreter.path = "/no/such/python"
    job.interpreter.save()
    submit(target, job)
    job.refresh_from_db()
    assert job.status == "failure"
    assert job.exit_code == 127
    assert "could not be started" in job.error
    assert "/no/such/python" in job.error


def test_unwritable_directory(target):
    job = target.job("print(1)", remote_directory="/proc/drs-cannot-write-here")
    with pytest.raises(RemoteSubmissionError):
        submit(target, job)
    job.refresh_from_db()
    assert job.status == "failure"
    assert "/proc/drs-cannot-write-here" in job.error


def test_jobs_never_stay_submitted_when_the_program_file_cannot_be_written(target):
    target.transport.mkdir_p(f"{target.directory}/program.py")  # a directory in the way
    job = target.job("print(1)")
    with pytest.raises(RemoteSubmissionError):
        submit(target, job)
    job.refresh_from_db()
    assert job.status == "failure"
    assert "program.py" in job.error


def test_on_batch_is_called_once_per_batch_after_commit(target, django_capture_on_commit_callbacks):
    from django_remote_submission.runner import run_job

    batches = []
    job = target.job("for i in range(2500):\n    print(i)")
    with (
        override_settings(REMOTE_SUBMISSION_LOG_BATCH_LINES=1000),
        django_capture_on_commit_callbacks(execute=True),
    ):
        run_job(job, target.options(on_batch=batches.append))
    assert sum(len(batch) for batch in batches) == 2500
    assert all(len(batch) <= 1000 for batch in batches)
    assert len(batches) < 2500 / 10
    assert [log.content for batch in batches for log in batch] == [f"{i}\n" for i in range(2500)]
    assert all(log.id for batch in batches for log in batch)


def test_job_statuses_move_initial_submitted_final(target):
    seen = []
    from django.db.models.signals import post_save

    def record(sender, instance, **kwargs):
        seen.append(instance.status)

    post_save.connect(record, sender=Job)
    try:
        submit(target, target.job("print(1)"))
    finally:
        post_save.disconnect(record, sender=Job)
    assert seen[-2:] == ["submitted", "success"]

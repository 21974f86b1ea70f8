"""Jobs of a server that launches through Slurm, from submission to their end, on the
suite's one-node Slurm over the private sshd as an ordinary user: the runner alone, and
real worker processes (a worker killed while its job waits and while it runs)."""

import datetime as dt
import re
import time

import pytest
from django.db import connection, connections

from django_remote_submission import jobs, scheduling
from django_remote_submission.exceptions import RemoteSubmissionError
from django_remote_submission.models import Job, Log
from django_remote_submission.runner import control_directory, resume_job, run_job
from django_remote_submission.schedulers import slurm
from django_remote_submission.schedulers.base import job_name
from django_remote_submission.signals import job_status_changed
from django_remote_submission.tasks import cancel_job
from tests.live import LiveStack
from tests.test_live import submit as send
from tests.test_reattach import FOREVER, numbers, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.ssh, pytest.mark.django_db(transaction=True)]

#: Short leases, so that a dead worker's jobs are taken over within seconds.
WORKER_ENV = {"DRS_SWEEP": "1", "DRS_LEASE_SECONDS": "4"}

COUNT = """
import sys
for i in range(1, 1001):
    print("n", i, flush=True)
    if i % 100 == 0:
        print("e", i, file=sys.stderr, flush=True)
sys.exit(3)
"""


@pytest.fixture
def slurm_target(slurm_cluster, openssh_target):
    """The private sshd's account, on a server that launches through the test Slurm."""
    server = openssh_target.server
    server.scheduler = "slurm"
    server.scheduler_partition = slurm_cluster.partition
    server.scheduler_poll_interval = 1.0
    server.scheduler_allowed_options = "--begin --exclusive --dependency"
    server.max_time_limit = 60
    server.save()
    yield openssh_target
    openssh_target.transport.run(["scancel", "-u", openssh_target.account.username])


def slurm_jobs(target, name):
    """Ids of the login's Slurm jobs with this name, in any state Slurm remembers."""
    result = target.transport.check(slurm.squeue_command(), what="squeue")
    entries = slurm.parse_squeue(result.stdout.decode())
    return sorted(entry.job_id for entry in entries.values() if entry.name == name)


#: The login's processes working in a directory, or naming it: "pid cwd-or-command".
JOB_PROCESSES = r"""
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  [ "$pid" = "$$" ] && continue
  cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
  args=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)
  case "$cwd/ $args" in *"$1"*) echo "$pid $cwd $args";; esac
done
"""


def job_processes(target, job):
    """The job's processes: those of its login working in its directory or naming it."""
    found = target.transport.run(["sh", "-c", JOB_PROCESSES, "sh", job.remote_directory])
    assert found.ok, found.reason()
    return found.stdout.decode().splitlines()


def no_process_left(target, job):
    """True once the job has no process left (the program, its monitor, the batch
    script and its stop, which Slurm's KillWait may let run a few seconds on)."""
    wait_for(lambda: not job_processes(target, job), timeout=30, what="the job's processes to end")
    return True


def states_of(job):
    """The states a job goes through, as job_status_changed tells them."""
    seen: list[str] = []

    def receiver(sender, job, state, **kwargs):
        if job.pk == watched.pk:
            seen.append(state)

    watched = job

    job_status_changed.connect(receiver, weak=False)
    return seen, lambda: job_status_changed.disconnect(receiver)


def stderr_numbers(job):
    return [
        int(m.group(1))
        for c in Log.objects.filter(job=job, stream="stderr").values_list("content", flat=True)
        if (m := re.fullmatch(r"e (\d+)\n", c))
    ]


# The runner alone (no worker host to hand the job to) -------------------------------------


def test_a_job_runs_through_slurm_with_its_output_exact_and_its_exit_code(slurm_target):
    job = slurm_target.job(COUNT)
    seen, stop = states_of(job)
    try:
        run_job(job, slurm_target.options())
    finally:
        stop()
    job.refresh_from_db()
    assert (job.state, job.status, job.exit_code) == ("failure", "failure", 3)
    assert job.error == "The program exited with code 3: e 1000"
    assert numbers(job) == list(range(1, 1001))
    assert stderr_numbers(job) == list(range(100, 1001, 100))
    assert seen == ["starting", "pending", "running", "finishing", "failure"]
    # One Slurm job, named for the app's job, and its control directory cleaned up.
    assert slurm_jobs(slurm_target, job_name(job.uuid)) == [job.scheduler_job_id]
    assert job.pending_since is not None
    assert job.started_at >= job.pending_since
    assert not slurm_target.transport.exists(control_directory(job))


def test_a_job_that_succeeds_under_slurm_collects_its_results(slurm_target):
    job = slurm_target.job(
        """
        with open("made.txt", "w") as out:
            out.write("made\\n")
        print("done")
        """
    )
    results = run_job(job, slurm_target.options(store_results=["*.txt"]))
    job.refresh_from_db()
    assert (job.state, job.status, job.exit_code, job.error) == ("success", "success", 0, "")
    assert list(job.logs.values_list("content", flat=True)) == ["done\n"]
    assert list(results) == ["made.txt"]


@pytest.mark.slow
def test_the_job_s_timeout_is_slurm_s_time_limit(slurm_target):
    job = slurm_target.job(FOREVER)
    run_job(job, slurm_target.options(timeout=30))
    job.refresh_from_db()
    assert (job.state, job.status) == ("failure", "failure")
    limit = "Slurm ended the job: its time limit (00:01:00) was reached."
    # As for a cancel, the monitor may still write the program's end (143), or not.
    if job.exit_code is None:
        assert job.error == limit
    else:
        assert job.exit_code == 143
        assert job.error == f"{limit} The program was killed (exit code 143)."
    printed = numbers(job)
    # Every line it printed, in order, and nothing after Slurm stopped it.
    assert printed == list(range(1, len(printed) + 1))
    assert len(printed) > 300  # it ran for most of the minute
    assert no_process_left(slurm_target, job)


def test_a_job_an_administrator_scancels_ends_saying_so(slurm_target, slurm_cluster):
    import threading

    job = slurm_target.job(FOREVER)

    def run():
        try:
            run_job(job, slurm_target.options())
        finally:
            connections.close_all()  # this thread's own

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_for(lambda: Log.objects.filter(job=job).count() >= 10, what="the first lines")
        slurm_cluster.command("scancel", Job.objects.get(pk=job.pk).scheduler_job_id)
    finally:
        thread.join(120)
    assert not thread.is_alive()
    job.refresh_from_db()
    assert (job.state, job.status) == ("failure", "failure")
    # Slurm's TERM reaches the program and its monitor in turn: the monitor may still
    # write the program's end (143), or not. Either way the job says who stopped it.
    if job.exit_code is None:
        assert job.error == "Slurm ended the job: it was canceled (scancel)."
    else:
        assert job.exit_code == 143
        assert job.error == (
            "Slurm ended the job: it was canceled (scancel). "
            "The program was killed (exit code 143)."
        )
    printed = numbers(job)
    assert printed == list(range(1, len(printed) + 1))
    # The batch script passed Slurm's stop on to the program, in a session of its own.
    assert no_process_left(slurm_target, job)


def test_a_job_over_its_memory_is_ended_by_slurm_saying_so(slurm_target):
    # The test cluster enforces memory by its accounting (OverMemoryKill, no cgroups):
    # Slurm kills the whole job, and only its own message says why.
    job = slurm_target.job(
        """
        import time
        print("n", 1, flush=True)
        hog = b"x" * (300 * 1024 * 1024)
        print("n", 2, flush=True)
        time.sleep(60)
        """,
        resources={"memory_mb": 50},
    )
    run_job(job, slurm_target.options())
    job.refresh_from_db()
    assert (job.state, job.status) == ("failure", "failure")
    assert job.error.startswith(
        "Slurm ended the job: it used more memory than it asked for (50 MB)."
    ), job.error
    assert numbers(job)[:1] == [1]


def test_a_retry_adopts_the_job_slurm_already_has_instead_of_submitting_it_again(slurm_target):
    # A worker died after sbatch and before it stored the id: the job is left starting,
    # its lease expired. Its Slurm job is there, by name.
    job = slurm_target.job("print('once')")
    owner = jobs.new_owner()
    assert jobs.claim(job, owner, slurm_target.options().to_row())
    from django_remote_submission.runner import JobRunner

    runner = JobRunner(job, slurm_target.transport, slurm_target.options(), owner)
    runner.stage()
    first = runner.submit()  # sbatch ran ...
    assert first.control_directory
    # ... and the row forgets it, as if the worker had died before writing it.
    Job.objects.filter(pk=job.pk).update(
        state="starting", scheduler_job_id="", lease_expires=None, lease_owner=""
    )
    submitted = slurm_jobs(slurm_target, job_name(job.uuid))
    assert len(submitted) == 1

    job.refresh_from_db()
    other = jobs.new_owner()
    assert jobs.take_over(job, other)
    resume_job(job, other)
    job.refresh_from_db()
    assert (job.state, job.exit_code, job.scheduler_job_id) == ("success", 0, submitted[0])
    assert slurm_jobs(slurm_target, job_name(job.uuid)) == submitted
    assert list(
        job.logs.exclude(content__contains="took it over").values_list("content", flat=True)
    ) == ["once\n"]


def test_a_job_over_the_server_s_limits_is_refused_before_submission(slurm_target):
    job = slurm_target.job("print('never')", resources={"cpus": 2})
    slurm_target.server.max_cpus = 1
    slurm_target.server.save()
    problems = scheduling.resource_problems(slurm_target.server, job.resources)
    assert problems == ["2 CPUs asked, this server allows at most 1."]
    mail = {"directives": ["--mail-type=END"]}
    assert scheduling.resource_problems(slurm_target.server, mail) == [
        "The directive '--mail-type=END' sets --mail-type, which this server does not "
        "allow (allowed: --begin, --dependency, --exclusive)."
    ]
    # Nor may a job change what the app sets itself, whatever the allowlist says.
    memory = {"directives": ["--mem-per-cpu=1"]}
    assert scheduling.resource_problems(slurm_target.server, memory) == [
        "The directive '--mem-per-cpu=1' sets --mem-per-cpu, which this app sets itself "
        "(name, partition, account, QOS, time, CPUs, memory, GPUs, nodes, output, requeue)."
    ]


# Real workers ---------------------------------------------------------------------------


@pytest.fixture
def stack(redis_url, tmp_path):
    live = LiveStack(redis_url, tmp_path / "stack")
    yield live
    live.stop()


def wait_state(job, *states, timeout=120.0):
    return wait_for(
        lambda: Job.objects.get(pk=job.pk).state in states,
        timeout=timeout,
        what=f"job {job.pk} to be {' or '.join(states)}",
    )


@pytest.mark.worker
@pytest.mark.redis
def test_a_job_waiting_at_slurm_says_why_and_is_canceled_there(stack, slurm_target):
    # One worker slot: a job waiting at Slurm must not hold it.
    stack.start_worker("only", pool="threads", concurrency=1, **WORKER_ENV)
    job = slurm_target.job(FOREVER, resources={"directives": ["--begin=now+3600"]})
    send(stack, slurm_target, job)
    wait_for(
        lambda: Job.objects.get(pk=job.pk).scheduler_reason,
        what="the reason Slurm holds the job",
    )
    job.refresh_from_db()
    assert job.state == "pending"
    assert job.status == "submitted"
    assert job.scheduler_reason == slurm.reason_in_words("BeginTime")
    # Pending, the job holds no worker slot: another job runs meanwhile.
    other = slurm_target.job("print('meanwhile')")
    send(stack, slurm_target, other)
    wait_state(other, "success")
    assert Job.objects.get(pk=job.pk).state == "pending"
    assert cancel_job(job.pk)
    wait_state(job, "canceled")
    job.refresh_from_db()
    assert job.error == "Canceled at the request of a user."
    assert job.logs.count() == 0
    assert slurm_jobs(slurm_target, job_name(job.uuid)) in ([], [job.scheduler_job_id])
    entries = slurm.parse_squeue(
        slurm_target.transport.check(slurm.squeue_command(), what="squeue").stdout.decode()
    )
    assert (
        entries.get(job.scheduler_job_id) is None or entries[job.scheduler_job_id].state == "ended"
    )


@pytest.mark.worker
@pytest.mark.redis
def test_a_running_job_canceled_is_scancelled_with_its_whole_tree(stack, slurm_target):
    stack.start_worker("only", pool="threads", concurrency=2, **WORKER_ENV)
    job = slurm_target.job(FOREVER)
    send(stack, slurm_target, job)
    wait_for(lambda: Log.objects.filter(job=job).count() >= 20, what="the first lines")
    assert any("program.py" in line for line in job_processes(slurm_target, job))
    assert cancel_job(job.pk)
    wait_state(job, "canceled")
    job.refresh_from_db()
    assert job.error == "Canceled at the request of a user."
    printed = numbers(job)
    assert printed == list(range(1, len(printed) + 1))
    time.sleep(1)
    assert no_process_left(slurm_target, job)


@pytest.mark.worker
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("when", ["pending", "running"])
def test_a_worker_killed_while_its_job_is_at_slurm_loses_nothing(stack, slurm_target, when):
    stack.start_worker("first", pool="threads", concurrency=2, **WORKER_ENV)
    lines = 300
    program = f"""
    import time
    for i in range(1, {lines + 1}):
        print("n", i, flush=True)
        time.sleep(0.05)
    raise SystemExit(3)
    """
    resources = {"directives": ["--begin=now+15"]} if when == "pending" else {}
    job = slurm_target.job(program, resources=resources)
    task = send(stack, slurm_target, job)
    if when == "pending":
        wait_state(job, "pending")
    else:
        wait_for(lambda: Log.objects.filter(job=job).count() >= 40, what="the first lines")
    stack.start_worker("second", pool="threads", concurrency=2, **WORKER_ENV)
    stack.kill("first")
    assert Job.objects.get(pk=job.pk).state == when
    del task
    wait_state(job, "failure", "success", "canceled", timeout=180)
    job.refresh_from_db()
    assert (job.state, job.exit_code) == ("failure", 3)
    assert job.error == "The program exited with code 3."
    assert numbers(job) == list(range(1, lines + 1))
    assert slurm_jobs(slurm_target, job_name(job.uuid)) == [job.scheduler_job_id]
    connection.close()


@pytest.mark.worker
@pytest.mark.redis
def test_a_job_waits_behind_another_and_says_so_then_runs(stack, slurm_target):
    stack.start_worker("only", pool="threads", concurrency=2, **WORKER_ENV)
    first = slurm_target.job(
        """
        import time
        for i in range(1, 41):
            print("n", i, flush=True)
            time.sleep(0.1)
        """
    )
    send(stack, slurm_target, first)
    wait_state(first, "running")
    first_id = Job.objects.get(pk=first.pk).scheduler_job_id
    second = slurm_target.job(
        "print('n', 1)", resources={"directives": [f"--dependency=afterany:{first_id}"]}
    )
    send(stack, slurm_target, second)
    wait_for(lambda: Job.objects.get(pk=second.pk).scheduler_reason, what="the second job's reason")
    waiting = Job.objects.get(pk=second.pk)
    assert (waiting.state, waiting.status) == ("pending", "submitted")
    assert waiting.scheduler_reason == "waiting for the jobs it depends on"
    wait_state(second, "success", "failure")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == ("success", "success")
    assert (numbers(first), numbers(second)) == (list(range(1, 41)), [1])
    # It started once the first had ended, and its reason is gone.
    assert second.started_at >= first.finished_at - dt.timedelta(seconds=2)
    assert second.scheduler_reason == ""


@pytest.mark.worker
@pytest.mark.redis
@pytest.mark.slow
def test_a_hundred_thousand_lines_reach_the_database_live_and_exactly_once(stack, slurm_target):
    stack.start_worker("only", pool="threads", concurrency=2, **WORKER_ENV)
    lines = 100_000
    job = slurm_target.job(
        f"""
        import time
        for i in range(1, {lines + 1}):
            print("n", i, flush=True)
            if i % 20000 == 0:
                time.sleep(1)
        """
    )
    send(stack, slurm_target, job)
    # Lines are stored while it runs, not only at its end.
    wait_for(
        lambda: (
            Job.objects.get(pk=job.pk).state == "running" and Log.objects.filter(job=job).exists()
        ),
        what="lines stored while the job runs",
    )
    wait_state(job, "success", "failure", timeout=300)
    job.refresh_from_db()
    assert (job.state, job.exit_code) == ("success", 0)
    assert numbers(job) == list(range(1, lines + 1))


def test_a_partition_slurm_refuses_fails_the_job_with_slurm_s_words(slurm_target):
    slurm_target.server.scheduler_partition = "nosuchpartition"
    slurm_target.server.save()
    job = slurm_target.job("print('never')")
    with pytest.raises(RemoteSubmissionError):
        run_job(job, slurm_target.options())
    job.refresh_from_db()
    assert (job.state, job.status, job.scheduler_job_id) == ("failure", "failure", "")
    assert job.error.startswith("Could not submit the program in ")
    assert job.error.endswith(
        "sbatch: error: Batch job submission failed: Invalid partition name specified"
    )
    assert slurm_jobs(slurm_target, job_name(job.uuid)) == []


def test_hostile_names_are_names_under_slurm_too(slurm_target):
    directory = f"{slurm_target.directory}/-x $(touch pwned) 'q';\"d\nline"
    job = slurm_target.job(
        "print('n', 1)", remote_directory=directory, remote_filename="-delete $(id).py"
    )
    run_job(job, slurm_target.options())
    job.refresh_from_db()
    assert (job.state, job.exit_code) == ("success", 0)
    assert numbers(job) == [1]
    found = slurm_target.transport.run(["find", slurm_target.directory, "-name", "pwned"])
    assert found.stdout == b""
    assert slurm_target.transport.exists(f"{directory}/-delete $(id).py")

"""Cancel and timeout stop the program's whole tree: children in other process groups and
sessions too, found from the processes recorded while it ran; nothing else."""

import os
import textwrap
import threading
import time
import uuid

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from django_remote_submission.models import Job
from django_remote_submission.runner import run_job
from django_remote_submission.transport.detached import DetachedProcess
from django_remote_submission.transport.local import LocalTransport
from tests.test_pbs_queue import stand_in_transport
from tests.test_slurm_cluster import wait_for
from tests.test_transport import live_processes

pytestmark = pytest.mark.ssh

#: A program whose children leave its process group and session in every way a user's
#: program can without root: a plain child, a child that calls setsid(), one that calls
#: setpgid(0, 0), and a grandchild under a setsid() child. Each carries MARK in its
#: arguments, and makes a file when it runs; the program says so when all of them do.
TREE = """
    import os, subprocess, sys, time

    MARK = {mark!r}
    SLEEP = "import sys, time; open(sys.argv[1] + '.ready', 'w').close(); time.sleep(1000)"
    MIDDLE = (
        "import subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-c', sys.argv[2], sys.argv[1] + '-grandchild']); "
        "time.sleep(1000)"
    )

    def start(code, tag, *extra, **options):
        subprocess.Popen([sys.executable, "-c", code, MARK + "-" + tag, *extra], **options)

    start(SLEEP, "plain")
    start(SLEEP, "setsid", start_new_session=True)
    start(SLEEP, "setpgid", preexec_fn=lambda: os.setpgid(0, 0))
    start(MIDDLE, "middle", SLEEP, start_new_session=True)
    tags = ["plain", "setsid", "setpgid", "middle-grandchild"]
    while not all(os.path.exists(MARK + "-" + tag + ".ready") for tag in tags):
        time.sleep(0.05)
    print("1 all started", flush=True)
    time.sleep(1000)
"""


def marked(target, mark):
    """The live processes (zombies aside) on the target with ``mark`` in their arguments."""
    result = target.transport.run(["ps", "-e", "-ww", "-o", "pid=,stat=,args="])
    lines = [line.strip() for line in result.stdout.decode().splitlines()]
    return [line for line in lines if mark in line and not line.split()[1].startswith("Z")]


def none_left(target, mark):
    # A process killed on the server may take a moment to be gone from the table.
    deadline = time.monotonic() + 10
    while marked(target, mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    return marked(target, mark)


def kill_marked(target, mark):
    """Ends what a failing test left behind, by pid."""
    pids = [line.split()[0] for line in marked(target, mark)]
    if pids:
        target.transport.run(["kill", "-KILL", *pids])


def run_in_thread(target, job, **options):
    errors = []

    def run():
        try:
            run_job(job, target.options(**options))
        except Exception as exc:  # the job's own failure is asserted by the caller
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def wait_for_logs(job):
    deadline = time.monotonic() + 60
    while not job.logs.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.logs.exists(), "the program's children did not start (or were not recorded)"


def test_cancel_stops_children_in_other_groups_and_sessions(target, transactional_db):
    mark = f"drs-tree-{uuid.uuid4().hex[:12]}"
    job = target.job(TREE.format(mark=mark))
    try:
        with override_settings(REMOTE_SUBMISSION_KILL_GRACE=2):
            thread, errors = run_in_thread(target, job)
            wait_for_logs(job)
            assert len(marked(target, mark)) == 5  # the children are running
            Job.objects.filter(pk=job.pk).update(cancel_requested_at=timezone.now())
            thread.join(60)
        assert not thread.is_alive()
        assert errors == []
        job.refresh_from_db()
        assert (job.status, job.error) == ("failure", "Canceled at the request of a user.")
        assert none_left(target, mark) == []
    finally:
        kill_marked(target, mark)


def test_a_timeout_stops_children_in_other_groups_and_sessions(target):
    mark = f"drs-tree-{uuid.uuid4().hex[:12]}"
    job = target.job(TREE.format(mark=mark))
    try:
        with override_settings(REMOTE_SUBMISSION_KILL_GRACE=1):
            run_job(job, target.options(timeout=5))
        job.refresh_from_db()
        assert job.status == "failure"
        assert job.error.startswith("Timed out: the program ran longer than 5 s"), job.error
        assert "survived" not in job.error
        assert [log.content for log in job.logs.all()] == ["1 all started\n"]
        assert none_left(target, mark) == []
    finally:
        kill_marked(target, mark)


#: A double fork: the middle process starts a child in a session of its own and exits,
#: once the job's record has the child; the child is then no descendant of the program,
#: and in none of its groups or sessions.
ORPHAN = """
    import glob, subprocess, sys, time

    MARK = {mark!r}
    SLEEP = "import time; time.sleep(1000)"
    MIDDLE = (
        "import subprocess, sys; "
        "child = subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]], "
        "start_new_session=True); "
        "print(child.pid, flush=True); sys.stdin.read()"
    )
    middle = subprocess.Popen(
        [sys.executable, "-c", MIDDLE, SLEEP, MARK + "-orphan"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    pid = middle.stdout.readline().decode().strip()

    def recorded():
        for name in glob.glob(".drs-*/tree"):
            with open(name) as tree:
                if any(line.split()[0] == pid for line in tree if line.strip()):
                    return True
        return False

    while not recorded():
        time.sleep(0.1)
    middle.stdin.close()
    middle.wait()
    print("1 orphaned", pid, flush=True)
    time.sleep(1000)
"""


def test_cancel_stops_a_recorded_child_whose_parent_exited(target, transactional_db):
    mark = f"drs-tree-{uuid.uuid4().hex[:12]}"
    job = target.job(ORPHAN.format(mark=mark))
    try:
        with override_settings(REMOTE_SUBMISSION_KILL_GRACE=2):
            thread, errors = run_in_thread(target, job)
            wait_for_logs(job)
            [orphan] = marked(target, mark)
            assert orphan.split()[0] == job.logs.get().content.split()[2]
            Job.objects.filter(pk=job.pk).update(cancel_requested_at=timezone.now())
            thread.join(60)
        assert not thread.is_alive()
        assert errors == []
        job.refresh_from_db()
        assert (job.status, job.error) == ("failure", "Canceled at the request of a user.")
        assert none_left(target, mark) == []
    finally:
        kill_marked(target, mark)


def stat_fields(transport, pid):
    """The fields of /proc/PID/stat after the process's name (field 3 on: its state,
    parent, group, session...)."""
    text = transport.read_file(f"/proc/{pid}/stat").decode()
    return text[text.rindex(")") + 2 :].split()


def start_time(transport, pid):
    """Field 22 of /proc/PID/stat: when the process started, in clock ticks after boot."""
    return int(stat_fields(transport, pid)[19])


def record(transport, process, pid, start):
    line = f"{pid} {start}\n"
    transport.run(["sh", "-c", 'printf %s "$1" >> "$2"', "sh", line, process.tree_path])


def test_a_recorded_pid_is_signalled_only_while_its_start_time_matches(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    job = t.start_detached(["sleep", "1000"], cwd=workdir, control_directory=f"{workdir}/.job")
    # A process of the same user that is no part of the job: its own session, no parent
    # in common with the job but the login.
    other = t.start_detached(["sleep", "1000"], cwd=workdir, control_directory=f"{workdir}/.o")
    try:
        start = start_time(t, other.pgid)
        # The job's record says "this pid, started then": a process that has the pid now
        # but started at another time is another process, which reused the pid.
        record(t, job, other.pgid, start + 1)
        assert t.stop(job, grace=1) == []
        assert t.wait_for_exit_code(job) == 128 + 15
        assert t.is_group_alive(other.pgid)
        assert t.read_exit_code(other) is None
        # The same pid with its own start time is the job's (it was recorded as one of its
        # processes, say before its parent exited), and is stopped.
        record(t, job, other.pgid, start)
        assert t.stop(job, grace=1) == []
        assert t.wait_for_exit_code(other) == 128 + 15
    finally:
        t.terminate_group(job.pgid, grace=0.5)
        t.terminate_group(other.pgid, grace=0.5)


#: Records, as if they were the job's, a process in the stop's own session and group (as
#: the login's shell and sshd are) and the shell that runs the stop (its ancestor), then
#: stops the job, and says which of the two lived through it. In a session of its own:
#: should the guard fail, only this session is stopped, not the test's.
NEIGHBOURS = r"""
ctl=$1
echo $$ > "$ctl/neighbours"
started() { awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$1/stat"; }
sleep 1000 &
neighbour=$!
echo "$neighbour $(started "$neighbour")" >> "$ctl/tree"
echo "$$ $(started $$)" >> "$ctl/tree"
/bin/sh "$ctl/tree.sh" stop "$ctl" "$2" 1 >/dev/null
kill -0 "$neighbour" && echo neighbour lives
echo shell lives
kill -KILL "$neighbour"
"""


def test_the_stop_never_signals_its_own_session_or_ancestors(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    job = t.start_detached(["sleep", "1000"], cwd=workdir, control_directory=f"{workdir}/.job")
    try:
        result = t.run(
            ["setsid", "-w", "sh", "-c", NEIGHBOURS, "sh", job.control_directory, str(job.pgid)],
            timeout=60,
        )
        assert result.stdout.decode().split("\n") == ["neighbour lives", "shell lives", ""]
        assert t.wait_for_exit_code(job) == 128 + 15
    finally:
        t.terminate_group(job.pgid, grace=0.5)
        if t.exists(f"{job.control_directory}/neighbours"):
            # Had the stop stopped its own session, nothing would end it but this.
            session = int(t.read_file(f"{job.control_directory}/neighbours"))
            t.signal_group(session, "KILL")


def test_a_job_that_left_no_record_is_still_stopped_by_its_group(any_transport):
    # A stop from the job's row alone (the runner's when following failed): the group
    # and session still name the program's processes.
    t, workdir = any_transport.transport, any_transport.workdir
    program = "sleep 1000 & echo ready; wait"
    process = t.start_detached(
        ["sh", "-c", program], cwd=workdir, control_directory=f"{workdir}/.c"
    )
    try:
        for item in t.follow([(process.stdout_path, 0)], process=process):
            if item is not None:
                break
        t.remove(f"{process.control_directory}/tree")
        row = DetachedProcess(process.pgid, 0, f"{workdir}/.c")
        assert t.stop(row, grace=1) == []
        assert t.wait_for_exit_code(process) == 128 + 15
        assert live_processes(t, process.pgid) == []
    finally:
        t.terminate_group(process.pgid, grace=0.5)


@pytest.fixture
def local_target(tmp_path, db):
    from tests.conftest import job_target

    yield from job_target(None, tmp_path)


def test_processes_that_survive_kill_are_named_in_the_reason(local_target, transactional_db):
    # Only a process of the login's own user is signalled; one that runs as another user
    # (here: a child that root's job turned into "nobody", in a session of its own) is
    # left alone, and the job says that it survived, and which it is.
    if os.geteuid() != 0:
        pytest.skip("needs root, to start a child that runs as another user")
    target = local_target
    mark = f"drs-tree-{uuid.uuid4().hex[:12]}"
    program = textwrap.dedent(
        f"""
        import os, subprocess, sys, time

        def become_nobody():
            os.setsid()
            os.chdir("/")
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)

        code = "import time; time.sleep(1000)"
        subprocess.Popen([sys.executable, "-c", code, {mark!r}], preexec_fn=become_nobody)
        print("started", flush=True)
        time.sleep(1000)
        """
    )
    job = target.job(program)
    try:
        with override_settings(REMOTE_SUBMISSION_KILL_GRACE=1):
            thread, errors = run_in_thread(target, job)
            wait_for_logs(job)
            Job.objects.filter(pk=job.pk).update(cancel_requested_at=timezone.now())
            thread.join(60)
        assert errors == []
        job.refresh_from_db()
        [survivor] = marked(target, mark)
        pid = survivor.split()[0]
        assert job.status == "failure"
        assert job.error.startswith(
            f"Canceled at the request of a user. 1 process survived KILL: {pid} "
        ), job.error
        assert mark in job.error
    finally:
        kill_marked(target, mark)


#: A program whose child leaves its tree: a middle process starts a child in a session of
#: its own, writes the child's pid to the file named by $1, and exits 3 s later (a look
#: of the tracker, once a second, must have recorded the child by then). The child is
#: then no descendant of the program, and in none of its groups or sessions.
ESCAPE = r"""
sh -c 'setsid sleep 1000 </dev/null >/dev/null 2>&1 &
  echo $! > "$1.tmp" && mv "$1.tmp" "$1"; sleep 3' sh "$1" &
wait
echo middle gone
exec sleep 1000
"""
#: The login's trackers: those of its own $HOME (another test run's jobs of the same
#: user, root's local jobs say, have a tracker of their own HOME). Not the subshell a
#: tracker forks for each look, which has its command line: one whose parent is one.
TRACKERS = r"""pids=" $(pgrep -d ' ' -u "$(id -u)" -f "[t]ree[.]sh tracker $HOME/[.]drs-tracker") "
for pid in $pids; do
    parent=$(ps -o ppid= -p "$pid" | tr -d ' ')
    case $pids in *" $parent "*) ;; *) [ -z "$parent" ] || echo "$pid" ;; esac
done"""


def escaped_child(t, workdir, name, process):
    """The pid of the job's escaped child, once its middle process has exited."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = t.read_file(process.stdout_path) if t.exists(process.stdout_path) else b""
        if out == b"middle gone\n":
            return t.read_file(f"{workdir}/{name}").decode().strip()
        time.sleep(0.1)
    raise AssertionError(f"the job's middle process did not exit: {out!r}")


def recorded_pids(t, process):
    text = t.read_file(process.tree_path).decode()
    return {line.split()[0] for line in text.splitlines() if line.strip()}


def alive(t, pid):
    """Whether the process runs (a zombie that nobody reaps has ended)."""
    state = t.run(["ps", "-o", "stat=", "-p", pid]).stdout.decode().strip()
    return bool(state) and not state.startswith("Z")


def trackers(t):
    return t.run_shell(TRACKERS).stdout.split()


def test_one_tracker_records_the_escaped_children_of_all_the_logins_jobs(any_transport):
    t, workdir = any_transport.transport, any_transport.workdir
    processes = [
        t.start_detached(
            ["sh", "-c", ESCAPE, "sh", f"escaped-{i}"],
            cwd=workdir,
            control_directory=f"{workdir}/.c{i}",
        )
        for i in range(3)
    ]
    children = []
    try:
        children = [escaped_child(t, workdir, f"escaped-{i}", p) for i, p in enumerate(processes)]
        # Each job's record holds its own escaped child, and none of the others'.
        for process, child in zip(processes, children, strict=True):
            recorded = recorded_pids(t, process)
            assert child in recorded
            assert recorded.isdisjoint(set(children) - {child})
        # One tracker follows them all (the login's, in ~/.drs-tracker).
        assert len(trackers(t)) == 1
        for process, child in zip(processes, children, strict=True):
            assert t.stop(process, grace=1) == []
            assert t.wait_for_exit_code(process) == 128 + 15
            assert not alive(t, child)
        # With no job left to follow, the tracker ends, and lets go of their links.
        deadline = time.monotonic() + 15
        while trackers(t) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert trackers(t) == []
        links = t.run_shell('ls -A "$HOME/.drs-tracker/jobs"').stdout.decode().split()
        assert not {str(p.pgid) for p in processes} & set(links)
    finally:
        for process in processes:
            t.terminate_group(process.pgid, grace=0.5)
        if children:
            t.run(["kill", "-KILL", *children])


def test_a_login_without_a_tracker_directory_has_each_job_tracked_alone(any_transport):
    # ~/.drs-tracker cannot be made (here: a file has its name): each job's monitor
    # records its program's tree itself, as before there was a tracker of the login.
    t, workdir = any_transport.transport, any_transport.workdir
    if any_transport.name == "local":
        # A HOME of its own: this user's real one serves the other tests' jobs.
        t.mkdir_p(f"{workdir}/home")
        t = LocalTransport(workdir, environment={**os.environ, "HOME": f"{workdir}/home"})
    t.run_shell('rm -rf "$HOME/.drs-tracker" && : > "$HOME/.drs-tracker"')
    process = t.start_detached(
        ["sh", "-c", ESCAPE, "sh", "escaped"], cwd=workdir, control_directory=f"{workdir}/.c"
    )
    child = None
    try:
        child = escaped_child(t, workdir, "escaped", process)
        assert child in recorded_pids(t, process)
        assert trackers(t) == []
        assert t.stop(process, grace=1) == []
        assert not alive(t, child)
    finally:
        t.run_shell('rm -f "$HOME/.drs-tracker"')
        t.terminate_group(process.pgid, grace=0.5)
        if child:
            t.run(["kill", "-KILL", child])


def test_the_programs_monitor_is_never_stopped_with_it(any_transport):
    # The program's monitor (its parent) writes its exit code once it ends: even recorded
    # as one of the job's processes (as a look made before the program's setsid() once
    # recorded it), it is not stopped, nor is anything in its group or session.
    t, workdir = any_transport.transport, any_transport.workdir
    job = t.start_detached(["sleep", "1000"], cwd=workdir, control_directory=f"{workdir}/.job")
    try:
        record(t, job, job.monitor_pid, start_time(t, job.monitor_pid))
        assert t.stop(job, grace=1) == []
        assert t.wait_for_exit_code(job) == 128 + 15
    finally:
        t.terminate_group(job.pgid, grace=0.5)


#: A ``setsid`` that waits a second before it starts the real one: the program stays that
#: long in its monitor's group and session, as it does for a moment on a busy host.
SLOW_SETSID = """#!/bin/sh
sleep 1
exec /usr/bin/setsid "$@"
"""


def test_the_record_of_a_program_starts_once_it_leads_its_own_session(tmp_path):
    t = stand_in_transport(tmp_path, tmp_path, {"setsid": SLOW_SETSID})
    # A job already running keeps the login's tracker looking every second, as the
    # jobs of a busy login do: it would look while the next program is still in its
    # monitor's session.
    other = t.start_detached(["sleep", "1000"], cwd=tmp_path, control_directory=f"{tmp_path}/.o")
    job = None
    try:
        job = t.start_detached(
            ["sh", "-c", "sleep 1000 & wait"], cwd=tmp_path, control_directory=f"{tmp_path}/.job"
        )
        # Its launch returns once the program leads its own session.
        assert stat_fields(t, job.pgid)[3] == str(job.pgid)
        # The tracker's look that records the program's child also finds whatever else
        # it takes for the job's: not the monitor.
        wait_for(lambda: len(recorded_pids(t, job)) >= 2, timeout=30, what="the child's record")
        assert len(recorded_pids(t, job)) == 2
        assert str(job.monitor_pid) not in recorded_pids(t, job)
        assert t.stop(job, grace=1) == []
        assert t.wait_for_exit_code(job) == 128 + 15
    finally:
        for process in (job, other):
            if process is not None:
                t.terminate_group(process.pgid, grace=0.5)


#: A program whose child (the program of a made-up job in ``$1``) takes two seconds to
#: call setsid(): it is handed to the login's tracker while still in this program's
#: group and session.
LATE_SETSID = r"""
sh -c 'sleep 2; exec setsid sh -c "sleep 1000 & wait"' &
p=$!
echo "$p $(awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$p/stat")" >> "$1/tree"
echo "$p" > "$1/program"
/bin/sh "$1/tree.sh" share "$1" "$p"
exec sleep 1000
"""


def test_the_tracker_never_takes_a_programs_parent_for_the_job(any_transport):
    from django_remote_submission.transport.scripts import TREE_SCRIPT

    t, workdir = any_transport.transport, any_transport.workdir
    ctl = f"{workdir}/.late"
    t.mkdir_p(ctl)
    t.put_text(TREE_SCRIPT, f"{ctl}/tree.sh")
    parent = t.start_detached(
        ["sh", "-c", LATE_SETSID, "sh", ctl], cwd=workdir, control_directory=f"{workdir}/.p"
    )
    late = None
    try:
        wait_for(lambda: t.exists(f"{ctl}/program"), timeout=30, what="the made-up job")
        late = DetachedProcess(int(t.read_file(f"{ctl}/program")), 0, ctl)
        # Once it leads its own session, the tracker records its child; before, it
        # recorded nothing of the parent's group and session, the parent least of all.
        wait_for(lambda: len(recorded_pids(t, late)) >= 2, timeout=30, what="the child's record")
        recorded = recorded_pids(t, late)
        assert len(recorded) == 2
        assert str(parent.pgid) not in recorded
        assert t.stop(late, grace=1) == []
        assert t.is_group_alive(parent.pgid)
    finally:
        if late is not None:
            t.terminate_group(late.pgid, grace=0.5)
        t.terminate_group(parent.pgid, grace=0.5)

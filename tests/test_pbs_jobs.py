"""Jobs of a server that launches through PBS, from submission to their end, over a real
transport on this host. No PBS server is packaged for Debian: ``qsub``, ``qstat`` and
``qdel`` are played by small scripts. qsub starts the batch script at once, in the
background, from / with ``PBS_O_WORKDIR`` set, as PBS starts it on a node; qstat answers
in ``qstat -f -F json -x``'s shape (see tests/schedulers/pbs/README.rst); qdel stops it.
What the engine sends them and how it reads them back is what these tests check."""

import threading
import time

import pytest
from django.db import connections

from django_remote_submission import jobs
from django_remote_submission.models import Job, Log
from django_remote_submission.runner import run_job
from tests.factories import make_interpreter, make_server, make_user
from tests.test_pbs_queue import stand_in_transport
from tests.test_reattach import FOREVER, numbers
from tests.test_slurm_jobs import COUNT, stderr_numbers

pytestmark = pytest.mark.django_db(transaction=True)

QSUB = """#!/bin/sh
printf '%s\\n' "qsub $*" >> "$DRS_PBS_LOG"
n=$(cat "$DRS_PBS_DIR/next" 2>/dev/null || echo 1000)
echo $((n + 1)) > "$DRS_PBS_DIR/next"
id="$n.pbs-head"
sed -n 's/^#PBS -N //p' "$1" > "$DRS_PBS_DIR/$id.name"
cp "$1" "$DRS_PBS_DIR/$id.script"
here=$PWD
cd / && PBS_O_WORKDIR=$here setsid /bin/sh "$here/$1" </dev/null >/dev/null 2>&1 &
echo $! > "$DRS_PBS_DIR/$id.pid"
echo "$id"
"""
QSTAT = """#!/bin/sh
printf '%s\\n' "qstat $*" >> "$DRS_PBS_LOG"
shift 4
printf '{"timestamp":1,"pbs_version":"23.06.06","pbs_server":"pbs-head","Jobs":{'
sep=
for id in "$@"; do
  [ -e "$DRS_PBS_DIR/$id.pid" ] || continue
  name=$(cat "$DRS_PBS_DIR/$id.name")
  if kill -0 "$(cat "$DRS_PBS_DIR/$id.pid")" 2>/dev/null; then
    printf '%s"%s":{"Job_Name":"%s","job_state":"R","stime":1}' "$sep" "$id" "$name"
  else
    status=0; [ -e "$DRS_PBS_DIR/$id.deleted" ] && status=271
    printf '%s"%s":{"Job_Name":"%s","job_state":"F","stime":1,"Exit_status":%s}' \\
      "$sep" "$id" "$name" "$status"
  fi
  sep=,
done
printf '}}\\n'
"""
QDEL = """#!/bin/sh
printf '%s\\n' "qdel $*" >> "$DRS_PBS_LOG"
touch "$DRS_PBS_DIR/$1.deleted"
kill -TERM "-$(cat "$DRS_PBS_DIR/$1.pid")"
"""


class PBS:
    def __init__(self, directory):
        self.directory = directory
        self.log = directory / "calls.log"
        (directory / "home").mkdir()
        self.transport = stand_in_transport(
            directory, directory / "home", {"qsub": QSUB, "qstat": QSTAT, "qdel": QDEL}
        )
        interpreter = make_interpreter(name="python3", path="/usr/bin/python3", arguments=["-u"])
        self.server = make_server(
            interpreters=[interpreter],
            title="pbs",
            hostname="localhost",
            scheduler="pbs",
            scheduler_partition="workq",
            scheduler_poll_interval=1.0,
        )
        self.interpreter = interpreter
        self.owner = make_user("pbs-user@example.com")

    def job(self, program):
        return Job.objects.create(
            title="pbs job",
            program=program.lstrip("\n"),
            remote_directory="work",
            remote_filename="program.py",
            server=self.server,
            interpreter=self.interpreter,
            owner=self.owner,
        )

    def calls(self):
        return [line.split()[0] for line in self.log.read_text().splitlines()]

    def script(self, job):
        return (self.directory / f"{job.scheduler_job_id}.script").read_text()


@pytest.fixture
def pbs(tmp_path):
    return PBS(tmp_path)


def test_a_job_runs_through_pbs_with_its_output_exact_and_its_exit_code(pbs):
    from django_remote_submission.runner import RunOptions

    job = pbs.job(COUNT)
    run_job(job, RunOptions(remote=False), transport=pbs.transport)
    job.refresh_from_db()
    assert (job.state, job.status, job.exit_code) == ("failure", "failure", 3)
    assert job.error == "The program exited with code 3: e 1000"
    assert numbers(job) == list(range(1, 1001))
    assert stderr_numbers(job) == list(range(100, 1001, 100))
    assert job.scheduler_job_id == "1000.pbs-head"
    assert pbs.calls()[0] == "qsub"
    assert set(pbs.calls()[1:]) <= {"qstat"}
    script = pbs.script(job)
    assert f"#PBS -N drs-{job.uuid}\n" in script
    assert "#PBS -q workq\n" in script
    assert "#PBS -r n\n" in script


def test_a_running_pbs_job_is_canceled_with_qdel(pbs):
    from django_remote_submission.runner import RunOptions

    job = pbs.job(FOREVER)
    ended = threading.Event()

    def run():
        try:
            run_job(job, RunOptions(remote=False), transport=pbs.transport)
        finally:
            connections.close_all()  # this thread's own
            ended.set()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while Log.objects.filter(job=job).count() < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert jobs.request_cancel(Job.objects.get(pk=job.pk))
    assert ended.wait(60)
    thread.join()
    job.refresh_from_db()
    assert (job.state, job.status) == ("canceled", "failure")
    assert job.error == "Canceled at the request of a user."
    printed = numbers(job)
    assert printed == list(range(1, len(printed) + 1))
    assert pbs.calls().count("qdel") == 1

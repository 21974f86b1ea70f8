"""The suite's one-node Slurm cluster, used as an ordinary user over the private OpenSSH sshd."""

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import ROOT, ssh_transport
from tests.slurm import job_fields

pytestmark = [pytest.mark.slurm, pytest.mark.ssh]

RECORDED = Path(__file__).parent / "schedulers" / "slurm"
#: squeue's %T of a job Slurm still holds (it prints nothing for a job that has ended).
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "STOPPED"}


def wait_for(predicate, *, timeout=60.0, what="it"):
    """Poll until ``predicate()`` returns something true, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


class Login:
    """The test account's shell on the login node: Slurm commands through SSHTransport."""

    def __init__(self, transport, directory):
        self.transport = transport
        self.directory = directory
        self.jobs = []

    def run(self, *argv):
        result = self.transport.check(list(argv), what=argv[0], cwd=self.directory)
        return result.stdout.decode()

    def sbatch(self, *options, wrap, output="/dev/null"):
        name = f"drs-{uuid.uuid4()}"
        argv = ["sbatch", "--parsable", "--job-name", name, f"--output={output}", *options]
        job_id = self.run(*argv, "--wrap", wrap).strip()
        assert job_id.isdigit(), job_id
        self.jobs.append(job_id)
        return job_id

    def state(self, job_id):
        """squeue's state of the job, "" once it has ended."""
        return self.run("squeue", "-h", "-j", job_id, "-o", "%T").strip()

    def show(self, job_id):
        return job_fields(self.run("scontrol", "show", "job", "-o", job_id).strip())

    def wait_state(self, job_id, *states, timeout=60.0):
        return wait_for(
            lambda: self.state(job_id) in states,
            timeout=timeout,
            what=f"job {job_id} to be {' or '.join(s or 'gone' for s in states)}",
        )

    def queue(self):
        """{job id: (state, reason)} of every job squeue lists, everyone's."""
        lines = self.run("squeue", "-h", "-o", "%i|%T|%r").splitlines()
        return {i: (state, reason) for i, state, reason in (line.split("|") for line in lines)}


@pytest.fixture
def login(slurm_cluster, openssh_account):
    directory = f"{openssh_account.remote_directory}/slurm-{uuid.uuid4().hex[:10]}"
    with ssh_transport(openssh_account) as transport:
        transport.mkdir_p(directory)
        shell = Login(transport, directory)
        try:
            yield shell
        finally:
            if shell.jobs:
                transport.run(["scancel", *shell.jobs])
            transport.remove(directory, recursive=True)


def recorded_keys(name):
    """The keys of a recorded ``scontrol show job -o`` line (tests/schedulers/slurm/)."""
    lines = (RECORDED / name).read_text().splitlines()
    return set(job_fields(next(line for line in lines if not line.startswith("# "))))


def test_an_ordinary_user_submits_over_ssh_and_the_output_is_written(login, openssh_account):
    assert login.run("id", "-u").strip() != "0"
    output = f"{login.directory}/out.txt"

    job_id = login.sbatch(wrap="for i in $(seq 1 5); do echo line $i; done", output=output)
    login.wait_state(job_id, "")

    assert login.transport.read_file(output) == b"".join(
        f"line {i}\n".encode() for i in range(1, 6)
    )
    fields = login.show(job_id)
    assert fields["JobState"] == "COMPLETED"
    assert fields["ExitCode"] == "0:0"
    assert fields["UserId"].startswith(f"{openssh_account.username}(")
    assert fields["StdOut"] == output
    # The recorded fixtures that parsers are written against still show what Slurm says;
    # its memory shows per CPU or per node as the cluster's default is set (ending_of
    # reads either).
    memory = {"MinMemoryCPU", "MinMemoryNode"}
    recorded = recorded_keys("scontrol-show-job-completed.txt")
    assert set(fields) - memory == recorded - memory
    assert len(set(fields) & memory) == 1


def test_a_failing_job_ends_failed_with_its_exit_code(login):
    job_id = login.sbatch(wrap="echo failing; exit 3")
    login.wait_state(job_id, "")

    fields = login.show(job_id)
    assert fields["JobState"] == "FAILED"
    assert fields["ExitCode"] == "3:0"
    assert fields["Reason"] == "NonZeroExitCode"


def test_a_job_waits_while_jobs_fill_the_node_and_scancel_removes_them(login, slurm_cluster):
    # Each CPU takes jobs_per_cpu jobs at once: jobs asking for every CPU fill the node
    # after jobs_per_cpu of them, fewer when other test runs have jobs there too.
    whole_node = ("-c", str(slurm_cluster.cpus))
    waiting = None
    for _ in range(slurm_cluster.jobs_per_cpu + 1):
        job_id = login.sbatch(*whole_node, wrap="sleep 300")

        def settled(job_id=job_id):
            state, reason = login.queue().get(job_id, ("", ""))
            return state == "RUNNING" or (state == "PENDING" and reason != "None")

        wait_for(settled, what=f"job {job_id} to run or to wait for a reason")
        if login.queue()[job_id][0] == "PENDING":
            waiting = job_id
            break
    assert waiting is not None, f"every job ran at once: {login.queue()}"
    state, reason = login.queue()[waiting]
    assert (state, reason) in {("PENDING", "Resources"), ("PENDING", "Priority")}
    assert login.show(waiting)["Reason"] == reason

    login.run("scancel", *login.jobs)

    wait_for(
        lambda: not set(login.jobs) & set(login.queue()),
        what=f"jobs {login.jobs} to leave the queue",
    )
    assert login.show(waiting)["JobState"] == "CANCELLED"


def test_scancel_of_a_running_job_leaves_it_cancelled(login):
    job_id = login.sbatch(wrap="sleep 300")
    login.wait_state(job_id, "RUNNING")
    assert login.show(job_id)["JobState"] == "RUNNING"

    login.run("scancel", job_id)

    # MinJobAge (300 s by default) keeps an ended job visible to scontrol.
    wait_for(
        lambda: login.show(job_id)["JobState"] == "CANCELLED",
        what=f"job {job_id} to be CANCELLED",
    )
    login.wait_state(job_id, "")
    assert login.show(job_id)["JobState"] == "CANCELLED"


def test_another_process_joins_the_running_cluster_and_leaving_keeps_it_up(slurm_cluster):
    daemons = slurm_cluster.daemon_pids()
    assert None not in daemons
    program = (
        "from tests.slurm import SlurmCluster\n"
        "with SlurmCluster() as cluster:\n"
        "    print(cluster.started, cluster.node_state())\n"
    )

    joined = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    )

    started, state = joined.stdout.split()
    assert started == "False"
    assert state in {"idle", "mix", "alloc", "comp"}
    assert slurm_cluster.daemon_pids() == daemons
    slurm_cluster.wait_ready(idle=False)

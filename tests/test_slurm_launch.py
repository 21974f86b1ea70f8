"""A job's program launched through the suite's one-node Slurm (transport.detached.submit):
its output and exit code land in its control directory as a direct job's do."""

import uuid

import pytest

from django_remote_submission.exceptions import TransportError
from django_remote_submission.schedulers import slurm
from django_remote_submission.schedulers.base import Resources, SchedulerDefaults, Submission
from django_remote_submission.transport import detached
from tests.conftest import ssh_transport
from tests.slurm import job_fields
from tests.test_slurm_cluster import wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.ssh]

#: 1,000 numbered lines on stdout and every hundredth also on stderr, then exit 3.
PROGRAM = (
    "import sys\n"
    "for i in range(1, 1001):\n"
    "    print(f'out {i}', flush=True)\n"
    "    if i % 100 == 0:\n"
    "        print(f'err {i}', file=sys.stderr, flush=True)\n"
    "sys.exit(3)\n"
)


@pytest.fixture
def place(slurm_cluster, openssh_account):
    """A job directory of the test account (an ordinary user) and an open transport."""
    directory = f"{openssh_account.remote_directory}/slurm-launch-{uuid.uuid4().hex[:8]}"
    with ssh_transport(openssh_account) as transport:
        transport.mkdir_p(directory)
        try:
            yield transport, directory
        finally:
            transport.run(["scancel", "-u", openssh_account.username])
            transport.remove(directory, recursive=True)


def submit(transport, directory, argv, *, job_uuid=None, defaults=None, cwd=None, resources=None):
    job_uuid = job_uuid or uuid.uuid4()
    control = f"{directory}/.drs-{job_uuid}"
    header = slurm.batch_header(
        Submission(
            job_uuid=job_uuid,
            control_directory=control,
            script_path=f"{control}/batch.sh",
            defaults=defaults or SchedulerDefaults(partition="debug"),
            resources=resources or Resources(),
        )
    )
    answer = detached.submit(
        transport,
        argv,
        cwd=cwd or directory,
        control_directory=control,
        header=header,
        submit_command=slurm.SUBMIT_SHELL,
        time_limit=None,
        grace=5,
    )
    return slurm.parse_sbatch(answer), control


def exit_code(transport, control):
    """The program's exit code once its monitor wrote it, else None."""
    result = transport.run(["cat", f"{control}/exit_code"])
    return int(result.stdout) if result.ok else None


def test_the_program_runs_under_slurm_and_its_output_lands_in_the_control_directory(
    place, openssh_account
):
    transport, directory = place
    transport.put_bytes(PROGRAM.encode(), f"{directory}/count.py")
    job_uuid = uuid.uuid4()

    job_id, control = submit(
        transport, directory, [openssh_account.python, "count.py"], job_uuid=job_uuid
    )

    code = wait_for(
        lambda: (value := exit_code(transport, control)) is not None and (value,),
        what="the program's exit code",
    )
    assert code == (3,)
    stdout = transport.read_file(f"{control}/stdout").decode().splitlines()
    stderr = transport.read_file(f"{control}/stderr").decode().splitlines()
    assert stdout == [f"out {i}" for i in range(1, 1001)]
    assert stderr == [f"err {i}" for i in range(100, 1001, 100)]
    # Slurm ran it as the job the app named, as the test account, from the job's directory.
    shown = transport.check(slurm.scontrol_show_job_command(job_id), what="scontrol")
    fields = job_fields(shown.stdout.decode())
    assert fields["JobName"] == f"drs-{job_uuid}"
    assert fields["UserId"].startswith(f"{openssh_account.username}(")
    # Slurm's working directory is the control directory (its messages file is there);
    # the program ran in the job's directory, which the script entered itself.
    assert fields["WorkDir"].rstrip("/").endswith(f".drs-{job_uuid}")


def test_a_hostile_directory_name_is_a_place_not_code(place, openssh_account):
    transport, directory = place
    hostile = f"{directory}/-x $(touch pwned) 'q';\"d"
    transport.mkdir_p(hostile)

    _job_id, control = submit(
        transport, directory, ["/bin/sh", "-c", "pwd; echo done"], cwd=hostile
    )

    wait_for(lambda: exit_code(transport, control) is not None, what="the exit code")
    assert transport.read_file(f"{control}/stdout").decode().splitlines()[1] == "done"
    assert (
        transport.read_file(f"{control}/stdout")
        .decode()
        .splitlines()[0]
        .endswith("-x $(touch pwned) 'q';\"d")
    )
    assert not transport.run(["test", "-e", f"{directory}/pwned"]).ok
    assert not transport.run(["test", "-e", f"{hostile}/pwned"]).ok


def test_a_refused_submission_says_what_the_scheduler_said(place):
    transport, directory = place

    with pytest.raises(TransportError) as caught:
        submit(
            transport,
            directory,
            ["/bin/true"],
            defaults=SchedulerDefaults(partition="no-such-partition"),
        )

    message = str(caught.value)
    assert message.startswith(f"Could not submit the program in '{directory}'")
    assert message.endswith("Batch job submission failed: Invalid partition name specified")


def test_a_header_that_would_end_the_batch_script_early_is_refused_before_any_command():
    with pytest.raises(ValueError, match="here-document"):
        detached.submit(
            None,  # nothing is run: the header is refused first
            ["/bin/true"],
            cwd="/tmp",
            control_directory="/tmp/ctl",
            header="#SBATCH --partition=debug\nDRS_BATCH_SCRIPT_END\nrm -rf ~\n",
            submit_command=slurm.SUBMIT_SHELL,
            time_limit=None,
            grace=5,
        )

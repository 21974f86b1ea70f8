"""The detached-program protocol: a start on a server that lacks a tool it needs."""

import shutil

import pytest

from django_remote_submission.exceptions import TransportError
from django_remote_submission.transport import LocalTransport

#: What the launch checks for, in order, with the package each comes with; and ``cat``,
#: with which a failing launch reads the rest of its input.
TOOLS = {
    "setsid": "util-linux",
    "awk": "gawk or mawk",
    "find": "findutils",
    "ps": "procps",
}


@pytest.mark.parametrize("missing", list(TOOLS))
def test_a_missing_tool_fails_the_start_naming_it_and_its_package(missing, tmp_path, monkeypatch):
    # A server whose PATH has every checked tool but one.
    bin_directory = tmp_path / "bin"
    bin_directory.mkdir()
    for tool in [*TOOLS, "cat"]:
        if tool != missing:
            (bin_directory / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bin_directory))
    transport = LocalTransport(tmp_path)
    with pytest.raises(TransportError) as caught:
        transport.start_detached(["true"], cwd=".", control_directory="ctl")
    message = str(caught.value)
    assert f"{missing} is not installed on the server (it comes with {TOOLS[missing]})" in message
    assert not (tmp_path / "ctl").exists(), "nothing is prepared before the tools are checked"


def test_a_missing_job_directory_fails_the_start_with_the_shells_reason(tmp_path):
    transport = LocalTransport(tmp_path)
    with pytest.raises(TransportError) as caught:
        transport.start_detached(["true"], cwd="no-such-directory", control_directory="ctl")
    message = str(caught.value)
    assert "Entering the job's directory failed: " in message
    assert "no-such-directory" in message.split("Entering the job's directory failed: ")[1]


@pytest.mark.ssh
def test_an_unwritable_control_directory_fails_the_start_with_the_systems_reason(any_transport):
    # As a login that cannot write there (root can): the reason is the system's own.
    t, workdir = any_transport.transport, any_transport.workdir
    if t.run(["id", "-u"]).stdout == b"0\n":
        pytest.skip("this login is root, which writes anywhere")
    t.mkdir_p(f"{workdir}/ctl")
    t.run(["chmod", "500", f"{workdir}/ctl"])
    try:
        with pytest.raises(TransportError) as caught:
            t.start_detached(["true"], cwd=workdir, control_directory=f"{workdir}/ctl")
        message = str(caught.value)
        assert "Creating the output files in " in message
        assert "Permission denied" in message
    finally:
        t.run(["chmod", "700", f"{workdir}/ctl"])

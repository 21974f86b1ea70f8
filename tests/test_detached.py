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

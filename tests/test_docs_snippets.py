"""Every code block of README.rst and docs/quickstart.rst, run as written.

Each block carries a comment just above it that says how it runs (the comment does not
show in the rendered page)::

    .. snippet: console [cwd=parent] [input="y"]   each "$ " line, in a shell
    .. snippet: background ready="text" | port=N   a long-running command, left running
    .. snippet: append FILE | write FILE            Python added to, or written as, FILE
    .. snippet: shell [expect="text" ...]           Python in `manage.py shell`
    .. snippet: covered-by PATH                     run by PATH (make demo, make test)

The quickstart builds a new project, `django-admin startproject mysite`, and runs it
against an embedded SSH server and an embedded Redis. The only changes made to the text
are the addresses: the docs' example.com, port 22, localhost:6379 and port 8000 become
those of the servers the test started; and `pip install ./django-remote-submission`, the
checkout, takes the app this suite runs (installed from this checkout already; CI's
.ci/check-wheel installs a checkout and a wheel into new virtualenvs). Then the README's
Python runs in that project, and a real Chromium opens its admin and its pages.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from django_remote_submission.testing import EmbeddedSSHServer, RedisServer, free_port
from tests.conftest import REQUIRE_SERVICES

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.example
DOCUMENTS = [ROOT / "README.rst", ROOT / "docs" / "quickstart.rst"]
ANNOTATION = re.compile(r"^\s*\.\. snippet: (?P<action>\S+)(?P<arguments>.*)$")
CODE_BLOCK = re.compile(r"^(?P<indent>\s*)\.\. code-block:: (?P<language>\S+)\s*$")
#: The quickstart's SSH login and password (the test server accepts exactly these).
USERNAME = "alice"
PASSWORD = "alice's password"


@dataclass
class Snippet:
    document: Path
    line: int
    language: str
    code: str
    action: str = ""
    argument: str = ""
    options: dict[str, list[str]] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.document.name}:{self.line}"

    def commands(self) -> list[str]:
        lines = [line for line in self.code.splitlines() if line.startswith("$ ")]
        return [line[2:] for line in lines]


def snippets(document: Path) -> list[Snippet]:
    """The code blocks of a document, with the annotation above each (if any)."""
    lines = document.read_text().splitlines()
    found: list[Snippet] = []
    pending: tuple[str, str] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        annotation = ANNOTATION.match(line)
        block = CODE_BLOCK.match(line)
        literal = line.rstrip().endswith("::") and not line.lstrip().startswith("..")
        if annotation:
            pending = (annotation["action"], annotation["arguments"].strip())
        elif block or literal:
            indent = len(block["indent"]) if block else len(line) - len(line.lstrip())
            body = []
            index += 1
            while index < len(lines) and (
                not lines[index].strip() or len(lines[index]) - len(lines[index].lstrip()) > indent
            ):
                body.append(lines[index])
                index += 1
            snippet = Snippet(
                document, index, block["language"] if block else "literal",
                textwrap.dedent("\n".join(body)).strip() + "\n",
            )  # fmt: skip
            if pending:
                snippet.action = pending[0]
                words = shlex.split(pending[1])
                plain = [word for word in words if "=" not in word]
                snippet.argument = plain[0] if plain else ""
                for word in words:
                    if "=" in word:
                        key, value = word.split("=", 1)
                        snippet.options.setdefault(key, []).append(value)
            found.append(snippet)
            pending = None
            continue
        elif line.strip() and not line.startswith(" "):
            pending = None if not annotation else pending
        index += 1
    return found


def test_every_code_block_says_how_it_runs() -> None:
    actions = {"console", "background", "append", "write", "shell", "covered-by"}
    for document in DOCUMENTS:
        blocks = snippets(document)
        assert blocks, f"no code blocks found in {document}"
        for snippet in blocks:
            assert snippet.action in actions, (
                f"{snippet.where}: a {snippet.language} block without a `.. snippet:` line"
            )


def test_commands_covered_elsewhere_are_run_there() -> None:
    """`make demo` is run by the demo check, `make test` by CI: word for word."""
    covered = [s for d in DOCUMENTS for s in snippets(d) if s.action == "covered-by"]
    assert covered
    for snippet in covered:
        runner = (ROOT / snippet.argument).read_text()
        for command in snippet.commands():
            command = command.split("#")[0].strip()
            assert command
            assert re.search(rf"[\"'\s]{re.escape(command)}[\"'\s]", runner), (
                f"{snippet.where}: {command!r} is not what {snippet.argument} runs"
            )


# The quickstart, run -------------------------------------------------------------------


class Project:
    """A new Django project built by following the quickstart."""

    def __init__(self, directory: Path, redis: RedisServer, ssh: EmbeddedSSHServer) -> None:
        self.parent = directory
        self.root = directory / "mysite"
        self.redis = redis
        self.ssh = ssh
        self.web_port = free_port()
        self.background: list[subprocess.Popen[bytes]] = []
        self.outputs: dict[str, Path] = {}
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "DRS_", "REMOTE_SUBMISSION_", "PYTEST_"))
        }
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env['PATH']}"
        self.env["PYTHONDONTWRITEBYTECODE"] = "1"

    def localise(self, text: str) -> str:
        """The docs' addresses become those of the servers the test started."""
        replacements = {
            '"redis://localhost:6379"': f'"redis://127.0.0.1:{self.redis.port}"',
            'hostname="example.com", port=22': f'hostname="127.0.0.1", port={self.ssh.port}',
            "-p 8000 ": f"-p {self.web_port} ",
            "runserver 8000": f"runserver {self.web_port}",
            "pip install ./django-remote-submission ": "pip install django-remote-submission ",
        }
        for old, new in replacements.items():
            text = text.replace(old, new)
        return text

    def run(self, snippet: Snippet) -> str:
        code = self.localise(snippet.code)
        if snippet.action == "console":
            return self._console(snippet, code)
        if snippet.action == "background":
            self._background(snippet, code)
            return ""
        if snippet.action in ("append", "write"):
            path = self.root / snippet.argument
            assert path.parent.is_dir(), f"{snippet.where}: no directory for {path}"
            if snippet.action == "append":
                assert path.exists(), f"{snippet.where}: {snippet.argument} does not exist"
                code = path.read_text() + "\n\n" + code
            path.write_text(code)
            return ""
        if snippet.action == "shell":
            done = self.shell(code)
            output = done.stdout
            assert done.returncode == 0, f"{snippet.where}: {output[-2000:]}{done.stderr[-3000:]}"
            for expected in snippet.options.get("expect", []):
                assert expected in output, f"{snippet.where}: {expected!r} not in {output!r}"
            return done.stdout
        raise AssertionError(f"{snippet.where}: cannot run a {snippet.action!r} snippet here")

    def shell(self, code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip

    def _console(self, snippet: Snippet, code: str) -> str:
        cwd = self.parent if snippet.options.get("cwd") == ["parent"] else self.root
        output = []
        for command in Snippet(snippet.document, snippet.line, "console", code).commands():
            if command.startswith("pip install"):
                # Offline: the packages named must be the ones installed here already.
                command += f" --no-index --find-links {self.parent / 'no-packages'}"
            answer = "".join(f"{value}\n" for value in snippet.options.get("input", []))
            done = subprocess.run(
                ["bash", "-c", command], cwd=cwd, env=self.env, input=answer,
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, (
                f"{snippet.where}: `{command}` failed: {done.stdout[-2000:]}{done.stderr[-3000:]}"
            )
            output.append(done.stdout)
        for expected in snippet.options.get("expect", []):
            assert expected in "".join(output), f"{snippet.where}: {expected!r} not in {output!r}"
        return "".join(output)

    def _background(self, snippet: Snippet, code: str) -> None:
        (command,) = Snippet(snippet.document, snippet.line, "console", code).commands()
        log = self.parent / f"background-{len(self.background)}.log"
        self.outputs[command] = log
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "-c", f"exec {command}"], cwd=self.root, env=self.env,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.background.append(process)
        ready = snippet.options.get("ready", [])
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"{snippet.where}: `{command}` exited: {log.read_text()}"
            if ready and all(text in log.read_text() for text in ready):
                return
            if snippet.options.get("port") and _answers(f"http://127.0.0.1:{self.web_port}/"):
                return
            assert time.monotonic() < deadline, f"{snippet.where}: `{command}`: {log.read_text()}"
            time.sleep(0.2)

    def stop(self) -> None:
        for process in self.background:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.background:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()  # noqa: S310
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The quickstart, followed from the first command to the last."""
    directory = tmp_path_factory.mktemp("quickstart")
    (directory / "no-packages").mkdir()
    with (
        RedisServer() as redis,
        EmbeddedSSHServer(username=USERNAME, password=PASSWORD) as ssh,
    ):
        project = Project(directory, redis, ssh)
        try:
            project.outputs_by_snippet = [  # type: ignore[attr-defined]
                (snippet, project.run(snippet))
                for snippet in snippets(ROOT / "docs" / "quickstart.rst")
            ]
            yield project
        finally:
            project.stop()


def test_quickstart_runs_as_written(project: Project) -> None:
    ran = project.outputs_by_snippet  # type: ignore[attr-defined]
    assert [s.action for s, _ in ran].count("shell") >= 2
    # The pin command showed the fingerprint and saved the key it showed.
    pin = next(out for s, out in ran if "remote_pin_host_key" in s.code)
    assert "SHA256:" in pin
    # The job ran on the SSH server and brought its file back.
    job_output = next(out for s, out in ran if "submit_job_to_server" in s.code)
    assert "{'answer.txt': " in job_output
    assert "stdout hello from the cluster" in job_output
    assert "b'42'" in job_output
    # The version check found 3.0, and collectstatic gathered the app's scripts.
    version = next(out for s, out in ran if "pip show" in s.code)
    assert re.search(r"^Version: 3\.", version, re.MULTILINE)
    static = project.root / "staticfiles"
    for name in ("job-log.js", "job-status.js", "remote-submission.css"):
        assert (static / "django_remote_submission" / name).is_file()
    assert (static / "admin" / "css" / "base.css").is_file()


#: A job that prints while the browser watches: numbered lines, a second apart.
LIVE_JOB = """
from django.contrib.auth import get_user_model
from django_remote_submission.models import Interpreter, Job, Server
from django_remote_submission.tasks import submit_job_to_server

job = Job.objects.create(
    title="Ticks",
    program="import time\\nfor i in range(1, 7):\\n    print('tick', i, flush=True)\\n"
    "    time.sleep(1)\\n",
    remote_directory="jobs/ticks/",
    remote_filename="ticks.py",
    owner=get_user_model().objects.create_superuser("admin", "a@example.com", "admin password"),
    server=Server.objects.get(title="Analysis cluster"),
    interpreter=Interpreter.objects.get(name="python3"),
)
submit_job_to_server.delay(job_pk=job.pk, username="alice", password=PASSWORD)
print("JOB", job.pk)
"""


def test_quickstart_pages_load_their_scripts_and_the_log_is_live(project: Project) -> None:
    """The admin (with its styles), the job's admin page (whose live log the app's script
    runs) and the job-user-status page, in Chromium, under the quickstart's runserver."""
    from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.skip(f"no {CHROMIUM}") if not REQUIRE_SERVICES else pytest.fail(f"no {CHROMIUM}")
    from playwright.sync_api import expect, sync_playwright

    done = project.shell(LIVE_JOB.replace("PASSWORD", repr(PASSWORD)))
    assert done.returncode == 0, done.stderr[-3000:]
    job_pk = int(done.stdout.split("JOB ")[1].split()[0])
    url = f"http://127.0.0.1:{project.web_port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            statics: dict[str, int] = {}
            page.on(
                "response",
                lambda r: statics.__setitem__(r.url, r.status) if "/static/" in r.url else None,
            )
            page.goto(f"{url}/admin/django_remote_submission/job/{job_pk}/change/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", "admin password")
            page.click("input[type=submit]")
            page.wait_for_url(f"**/job/{job_pk}/change/")
            # The lines arrive over the websocket while the job runs, then its end.
            box = page.locator("[data-drs-log]")
            expect(box).to_have_attribute("data-drs-following", "yes")
            expect(box.locator("[data-drs-lines]")).to_contain_text("tick 6", timeout=60_000)
            expect(box.locator("[data-drs-state]")).to_contain_text("success", timeout=60_000)
            lines = box.locator(".drs-line").all_inner_texts()
            assert [line.strip() for line in lines] == [f"tick {i}" for i in range(1, 7)]

            page.goto(f"{url}/api/job-user-status/")
            expect(page.locator("[data-drs-status]")).to_contain_text("Ticks")
            expect(page.locator("[data-drs-status]")).to_contain_text("success")
        finally:
            browser.close()
    loaded = {address.split("/static/", 1)[1]: status for address, status in statics.items()}
    assert loaded.get("admin/css/base.css") == 200
    assert loaded.get("django_remote_submission/job-log.js") == 200
    assert loaded.get("django_remote_submission/job-status.js") == 200
    assert loaded.get("django_remote_submission/remote-submission.css") == 200
    assert all(status == 200 for status in loaded.values()), loaded


def test_quickstart_site_serves_the_api_and_guards_the_websockets(project: Project) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = f"http://127.0.0.1:{project.web_port}"
    with urllib.request.urlopen(f"{url}/api/", timeout=10) as response:  # noqa: S310
        assert response.status == 200
        assert b'"jobs"' in response.read()
    # A websocket without a logged-in user is closed with 4401 by the app's consumer.
    with (
        connect(
            f"ws://127.0.0.1:{project.web_port}/ws/job-user/",
            additional_headers={"Origin": url},
        ) as socket,
        pytest.raises(ConnectionClosed) as closed,
    ):
        socket.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


def test_readme_python_runs_in_the_quickstart_project(project: Project) -> None:
    blocks = [s for s in snippets(ROOT / "README.rst") if s.action in ("shell", "console")]
    assert [s.action for s in blocks].count("shell") >= 2, "README.rst has no Python to run"
    for snippet in blocks:
        project.run(snippet)

"""The scripted check of `make demo`: start it, log in, run the sample job, stop it, and
find nothing left running.

Run from a fresh clone, it is the whole check (CI does this: `python3 tests/demo_check.py`);
tests/test_demo.py runs the same steps in the test suite. It needs only the standard
library, since on a fresh clone `make demo` is what creates the virtualenv.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: Variables that would point the demo somewhere other than its embedded defaults.
FOREIGN = ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DEMO_PORT", "PYTEST_")
#: The README's first command.
COMMAND = "make demo"
#: `make demo` on a fresh clone installs everything first.
START_TIMEOUT = 900


class DemoCheckError(AssertionError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def processes_with(marker: str) -> list[str]:
    """Live processes (zombies aside) whose environment carries the marker."""
    found = []
    needle = f"DEMO_CHECK_MARKER={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.append(f"{entry.name}: {command.strip()}")
    return found


class DemoRun:
    """`make demo` in its own process group, as a terminal would run it."""

    def __init__(
        self,
        *,
        var_dir: Path,
        port: int | None = None,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.var_dir = var_dir
        self.args = args or []
        self.port = port or _free_port()
        self.marker = uuid.uuid4().hex
        self.output_path = var_dir.parent / f"{var_dir.name}-make-demo.out"
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.username = ""
        self.password = ""
        self.redis_port: int | None = None
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def environment(self) -> dict[str, str]:
        """The caller's environment without what would point the demo elsewhere."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
        env = {k: v for k, v in env.items() if not k.startswith("EXAMPLE_")}
        env.update(
            EXAMPLE_VAR_DIR=str(self.var_dir),
            DEMO_CHECK_MARKER=self.marker,
            PYTHONDONTWRITEBYTECODE="1",
            **self.extra_env,
        )
        return env

    def manage(self, *arguments: str) -> str:
        """`python manage.py ...` in example/, on the demo's database and settings."""
        done = subprocess.run(
            [sys.executable, "manage.py", *arguments],
            cwd=ROOT / "example",
            env=self.environment(),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise DemoCheckError(f"manage.py {' '.join(arguments)}: {done.stderr[-2000:]}")
        return done.stdout

    def start(self, timeout: float = START_TIMEOUT) -> DemoRun:
        env = self.environment()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        with self.output_path.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    *shlex.split(COMMAND),
                    f"DEMO_ARGS={' '.join(['--port', str(self.port), *self.args])}",
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while "Press Ctrl-C to stop." not in self.output():
            if self.process.poll() is not None:
                code = self.process.returncode
                raise DemoCheckError(f"make demo exited ({code}):\n{self.output()}")
            if time.monotonic() > deadline:
                raise DemoCheckError(f"make demo did not come up:\n{self.output()}")
            time.sleep(0.2)
        text = self.output()
        site = re.search(r"Site:\s+(http://\S+)/example/", text)
        login = re.search(r"Log in as:\s+(\S+) / (\S+)", text)
        redis = re.search(r"Redis:\s+embedded, redis://127\.0\.0\.1:(\d+)/", text)
        if not site or not login:
            raise DemoCheckError(f"make demo printed no URL or credentials:\n{text}")
        self.url, (self.username, self.password) = site.group(1), login.groups()
        self.redis_port = int(redis.group(1)) if redis else None
        return self

    # -- talking to the site like a browser without JavaScript ----------------------------

    def _csrf(self) -> str:
        for cookie in self.cookies:
            if cookie.name == "csrftoken":
                return str(cookie.value)
        raise DemoCheckError("the site set no CSRF cookie")

    def request(self, path: str, data: dict[str, str] | None = None) -> tuple[int, str, str]:
        body = None
        headers = {"Accept": "application/json, text/html"}
        if data is not None:
            body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": self._csrf()}).encode()
            headers["Referer"] = self.url + path
        request = urllib.request.Request(self.url + path, data=body, headers=headers)  # noqa: S310
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.geturl(), response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.geturl(), exc.read().decode(errors="replace")

    def get_json(self, path: str) -> Any:
        status, _, body = self.request(path)
        if status != 200:
            raise DemoCheckError(f"GET {path}: HTTP {status}: {body[:500]}")
        return json.loads(body)

    def log_in(self) -> None:
        self.request("/accounts/login/")
        status, url, body = self.request(
            "/accounts/login/", {"username": self.username, "password": self.password}
        )
        if status != 200 or not url.endswith("/example/"):
            raise DemoCheckError(f"logging in failed: HTTP {status} at {url}: {body[:500]}")

    def run_sample_job(self, timeout: float = 120) -> dict[str, Any]:
        status, url, body = self.request("/example/", {})
        if status != 200 or "was submitted" not in body or "/logs/" not in url:
            raise DemoCheckError(f"creating the test job failed: HTTP {status}: {body[:500]}")
        # The button leads to the new job's page, /logs/<id>/.
        job = self.get_json(f"/api/jobs/{int(url.rstrip('/').rsplit('/', 1)[1])}/")
        deadline = time.monotonic() + timeout
        while job["status"] not in ("success", "failure"):
            if time.monotonic() > deadline:
                raise DemoCheckError(f"the sample job did not finish: {job}")
            time.sleep(0.5)
            job = self.get_json(f"/api/jobs/{job['id']}/")
        return dict(job)

    # -- stopping ------------------------------------------------------------------

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, as a terminal sends it: SIGINT to the whole foreground process group."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DemoCheckError(f"make demo did not stop on Ctrl-C:\n{self.output()}") from None

    def kill(self) -> None:
        """Clean up after a failed check: nothing of this run may outlive it."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for line in processes_with(self.marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split(":")[0]), signal.SIGKILL)

    def leftovers(self) -> list[str]:
        """Processes and ports of this run still alive a few seconds after it stopped."""
        deadline = time.monotonic() + 10
        while True:
            left = processes_with(self.marker)
            ports = [p for p in (self.port, self.redis_port) if p and _listening(p)]
            left += [f"port {port} still listening" for port in ports]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)


def check(var_dir: Path) -> dict[str, Any]:
    """The whole check; raises DemoCheckError with the demo's output when a step fails."""
    demo = DemoRun(var_dir=var_dir)
    try:
        demo.start()
        demo.log_in()
        job = demo.run_sample_job()
        if job["status"] != "success":
            raise DemoCheckError(f"the sample job failed: {job}\n{demo.output()}")
        results = demo.get_json(f"/api/results/?job={job['id']}")
        code = demo.interrupt()
        left = demo.leftovers()
        if left:
            raise DemoCheckError(f"left running after Ctrl-C: {left}")
        if "Stopped." not in demo.output():
            raise DemoCheckError(f"the demo did not say it stopped:\n{demo.output()}")
        return {"job": job, "results": results["count"], "exit_code": code, "url": demo.url}
    finally:
        demo.kill()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="drs-demo-check-") as directory:
        try:
            outcome = check(Path(directory) / "var")
        except DemoCheckError as exc:
            print(f"demo check FAILED: {exc}", file=sys.stderr)
            return 1
    job = outcome["job"]
    print(
        f"demo check passed: {outcome['url']} ran job {job['id']} to {job['status']} "
        f"with {outcome['results']} result files; Ctrl-C stopped everything."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

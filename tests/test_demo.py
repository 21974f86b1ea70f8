"""`make demo`, run as a newcomer runs it: start, log in, run the sample job, Ctrl-C."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.demo_check import DemoRun

pytestmark = pytest.mark.example


def test_make_demo_runs_the_sample_job_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    # VIRTUAL_ENV: make demo uses the suite's virtualenv instead of creating .venv.
    demo = DemoRun(var_dir=tmp_path / "var", env={"VIRTUAL_ENV": sys.prefix})
    try:
        demo.start()
        output = demo.output()
        # Embedded defaults: its own Redis, its own SSH server, a demo user.
        assert "Redis:      embedded, redis://127.0.0.1:" in output
        assert "SSH server: embedded, 127.0.0.1:" in output
        assert demo.username == "demo"
        assert demo.redis_port not in (None, 6379)

        demo.log_in()
        job = demo.run_sample_job()
        assert job["status"] == "success", job
        assert job["exit_code"] == 0
        logs = demo.get_json(f"/api/jobs/{job['id']}/logs/")["results"]
        lines = [row["content"].rstrip("\n") for row in logs]
        assert lines[:2] == ["Line 1 of 10", "Line 2 of 10"]
        assert lines[-1] == "Done: wrote 10 text files and summary.csv"
        assert {row["stream"] for row in logs} == {"stdout", "stderr"}
        results = demo.get_json(f"/api/results/?job={job['id']}")
        assert results["count"] == 11
        summary = demo.get_json(f"/api/results/?job={job['id']}&remote_filename=summary.csv")
        summary = summary["results"][0]
        status, _, body = demo.request(summary["local_file"].removeprefix(demo.url))
        assert status == 200
        assert body.splitlines()[:3] == ["line,square", "1,1", "2,4"]

        demo.interrupt()
        assert demo.leftovers() == []
        assert "Stopped." in demo.output()
    finally:
        demo.kill()


def test_make_demo_starts_again_on_the_same_data(tmp_path: Path) -> None:
    """A second start keeps the database, the user's password and the jobs."""
    var = tmp_path / "var"
    first = DemoRun(var_dir=var, env={"VIRTUAL_ENV": sys.prefix})
    try:
        first.start()
        first.log_in()
        job = first.run_sample_job()
        first.interrupt()
    finally:
        first.kill()
    second = DemoRun(var_dir=var, env={"VIRTUAL_ENV": sys.prefix})
    try:
        second.start()
        assert second.password == first.password
        # The first run's session is still good: no need to log in again.
        second.cookies, second.opener = first.cookies, first.opener
        again = second.get_json(f"/api/jobs/{job['id']}/")
        assert again["status"] == "success"
        second.interrupt()
        assert second.leftovers() == []
    finally:
        second.kill()
    third = DemoRun(var_dir=var, env={"VIRTUAL_ENV": sys.prefix}, args=["--reset-password"])
    try:
        third.start()
        assert third.password != first.password
        third.cookies, third.opener = first.cookies, first.opener
        status, _, _ = third.request(f"/api/jobs/{job['id']}/")
        assert status == 403  # the old session is gone with the old password
        third.log_in()
        assert third.get_json(f"/api/jobs/{job['id']}/")["status"] == "success"
        third.interrupt()
        assert third.leftovers() == []
    finally:
        third.kill()


def test_ctrl_c_while_a_job_runs_ends_the_job_and_its_program(tmp_path: Path) -> None:
    var = tmp_path / "var"
    demo = DemoRun(var_dir=var, env={"VIRTUAL_ENV": sys.prefix})
    jobs = var / "ssh-home" / "jobs"
    try:
        demo.start()
        demo.log_in()
        status, url, body = demo.request(
            "/jobs/new/",
            {
                "title": "Runs for ten minutes",
                "server": "1",
                "interpreter": "1",
                "program": "import os, time\n"
                "open('pid', 'w').write(str(os.getpid()))\n"
                "print('started', flush=True)\n"
                "time.sleep(600)\n",
                "remote_directory": f"{jobs}/",
                "remote_filename": "long.py",
                "username": "",
                "password": "",
            },
        )
        assert status == 200, body[:500]
        job_id = int(url.rstrip("/").rsplit("/", 1)[1])
        deadline = time.monotonic() + 60
        while not demo.get_json(f"/api/jobs/{job_id}/logs/")["results"]:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.2)
        pid = int((jobs / "pid").read_text())

        demo.interrupt()
        assert demo.leftovers() == []
        # The program is gone (a zombie the sandbox's init has not reaped yet aside)...
        stat = Path(f"/proc/{pid}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
        # ...and the job says why it ended.
        shown = demo.manage(
            "shell",
            "-c",
            "from django_remote_submission.models import Job; "
            f"job = Job.objects.get(pk={job_id}); print(job.status, '|', job.error)",
        )
        assert shown.strip().endswith("failure | The demo was stopped while this job ran.")
        # The processes stopped without a crash: no traceback in their logs.
        for name in ("worker", "web"):
            log = (var / "logs" / f"{name}.log").read_text(errors="replace")
            assert "Traceback" not in log, log[-3000:]
            assert "NotImplementedError" not in log
    finally:
        demo.kill()


def test_a_demo_killed_outright_leaves_nothing_running(tmp_path: Path) -> None:
    demo = DemoRun(var_dir=tmp_path / "var", env={"VIRTUAL_ENV": sys.prefix})
    try:
        demo.start()
        assert demo.redis_port is not None

        # SIGKILL to `make demo` and the demo itself (their process group): no Ctrl-C,
        # no clean-up of its own. Its web server, worker, SSH server and Redis, each in a
        # session of its own, must go too: Redis as well, which no environment marker
        # finds once it has rewritten its process title.
        demo.kill()

        assert demo.leftovers() == []
    finally:
        demo.kill()

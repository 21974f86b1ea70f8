"""`make demo`, run as a newcomer runs it: start, log in, run the sample job, Ctrl-C."""

from __future__ import annotations

import sys
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
        second.log_in()
        again = second.get_json(f"/api/jobs/{job['id']}/")
        assert again["status"] == "success"
        second.interrupt()
        assert second.leftovers() == []
    finally:
        second.kill()

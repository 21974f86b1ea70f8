"""A job of a server that launches through Slurm, in a real headless Chromium: its page
says it waits at Slurm, why and for how long, live; a cancel ends it there. The site is
test_browser's (the example project on the private sshd), its server switched to the
suite's one-node Slurm for this test and back after it. Screenshot: state-pending.png."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests import test_browser
from tests.demo_check import DemoRun
from tests.test_browser import JOB_TIMEOUT_MS, assert_not_reloaded, log_in, mark_loaded, screenshot

site = test_browser.site
browser = test_browser.browser

pytestmark = [pytest.mark.example, pytest.mark.slurm, pytest.mark.timeout(900)]

#: The example's server through Slurm, and a job of it that Slurm holds for an hour.
PENDING_JOB = """
from django.conf import settings
from django.contrib.auth import get_user_model
from django_remote_submission.models import Job
from django_remote_submission.tasks import enqueue_submission
from server.views import example_server, run_options

server, interpreter = example_server()
server.scheduler = "slurm"
server.scheduler_partition = PARTITION
server.scheduler_poll_interval = 1.0
server.scheduler_allowed_options = "--begin"
server.save()
job = Job.objects.create(
    title="Waiting at Slurm", program="print('never runs')\\n",
    remote_directory=settings.EXAMPLE_REMOTE_DIRECTORY, remote_filename="pending.py",
    server=server, interpreter=interpreter,
    owner=get_user_model().objects.get(username=USERNAME),
    resources={"directives": ["--begin=now+3600"]},
)
enqueue_submission(job.pk, **run_options())
print("JOB", job.pk)
"""
DIRECT_AGAIN = """
from server.views import example_server

server, _ = example_server()
server.scheduler = "direct"
server.save()
"""


@pytest.fixture
def slurm_site(site: DemoRun, slurm_cluster: Any) -> Iterator[tuple[DemoRun, Any]]:
    yield site, slurm_cluster
    site.manage("shell", "-c", DIRECT_AGAIN)


def test_a_job_waiting_at_slurm_says_why_and_for_how_long_until_canceled(
    browser: Any, slurm_site: tuple[DemoRun, Any]
) -> None:
    from playwright.sync_api import expect

    site, cluster = slurm_site
    script = PENDING_JOB.replace("USERNAME", repr(site.username)).replace(
        "PARTITION", repr(cluster.partition)
    )
    job_id = site.manage("shell", "-c", script).split("JOB ")[1].split()[0]
    context = log_in(browser, site, site.username, site.password)
    page = context.pages[0]
    page.goto(f"{site.url}/logs/{job_id}/")
    mark_loaded(page)
    line = page.locator("[data-drs-log] [data-drs-where]")
    # Live, from the status frames: submitted, then Slurm's reason in words.
    expect(line).to_contain_text(
        re.compile(r"^Waiting at Slurm for (\d+ min )?\d+ s: waiting for its start time$"),
        timeout=JOB_TIMEOUT_MS,
    )
    clock = line.locator("time")
    shown = clock.inner_text()
    expect(clock).not_to_have_text(shown)  # it ticks, without a reload
    assert_not_reloaded(page)
    screenshot(page, "state-pending")

    # The list says the same.
    page.goto(f"{site.url}/example/")
    row = page.locator(f'#jobs tr[data-job="{job_id}"] [data-drs-where]')
    expect(row).to_contain_text("Waiting at Slurm for ")
    expect(row).to_contain_text(": waiting for its start time")

    page.goto(f"{site.url}/logs/{job_id}/")
    mark_loaded(page)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel-job")
    expect(line).to_contain_text(re.compile(r"^Canceled after "), timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-status")).to_have_text("canceled")
    assert page.locator("body").inner_text().count("Canceled at the request of a user") == 1
    context.close()

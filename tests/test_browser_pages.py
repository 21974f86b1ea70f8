"""Where a job is, the earlier lines of a long log, and the pages' layout, in a real headless
Chromium: each state of a job on its page, with a screenshot each (test-artifacts/
screenshots/state-*.png, log-100k.png, jobs-list-1280.png, nav-phone.png).

The site is test_browser's: the example project as `make demo` runs it, its jobs running
on the private OpenSSH sshd.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests import test_browser
from tests.demo_check import DemoRun
from tests.test_browser import (
    JOB_TIMEOUT_MS,
    assert_not_reloaded,
    create_test_job,
    log_in,
    mark_loaded,
    screenshot,
)

# test_browser's module-scoped fixtures: this module gets a site and a browser of its own.
site = test_browser.site
browser = test_browser.browser

pytestmark = [pytest.mark.example, pytest.mark.timeout(900)]

#: A job that never reaches a worker: queued, as if every worker were busy.
QUEUED_JOB = """
import datetime as dt
from django.contrib.auth import get_user_model
from django.conf import settings
from django.utils import timezone
from django_remote_submission.models import Job
from server.views import example_server

server, interpreter = example_server()
job = Job.objects.create(
    title="Waiting for a worker", program="print('never runs')\\n",
    remote_directory=settings.EXAMPLE_REMOTE_DIRECTORY, remote_filename="queued.py",
    server=server, interpreter=interpreter,
    owner=get_user_model().objects.get(username=USERNAME),
    state=Job.State.QUEUED, queued_at=timezone.now() - dt.timedelta(minutes=2),
)
print("JOB", job.pk)
"""


def submit_program(page: Any, site: DemoRun, title: str, program: str) -> str:
    """Run a program through the /jobs/new/ form: the page goes to the job's page. Its id."""
    page.goto(f"{site.url}/jobs/new/")
    page.fill("#id_title", title)
    page.fill("#id_program", program)
    page.click("#new-job-form button[type=submit]")
    page.wait_for_url(re.compile(rf"{re.escape(site.url)}/logs/\d+/$"))
    return str(page.url.rstrip("/").rsplit("/", 1)[1])


def where(page: Any) -> Any:
    """The line above the log that says where the job is."""
    return page.locator("[data-drs-log] [data-drs-where]")


def no_horizontal_scroll(page: Any) -> bool:
    return bool(
        page.evaluate(
            "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    )


def test_a_queued_job_says_for_how_long_it_waits(browser: Any, site: DemoRun) -> None:
    from playwright.sync_api import expect

    output = site.manage("shell", "-c", QUEUED_JOB.replace("USERNAME", repr(site.username)))
    job_id = output.split("JOB ")[1].split()[0]
    context = log_in(browser, site, site.username, site.password)
    page = context.pages[0]
    row = page.locator(f'#jobs tr[data-job="{job_id}"] [data-drs-where]')
    expect(row).to_contain_text("Queued for 2 min")
    expect(row).to_contain_text("waiting for a free worker")

    page.goto(f"{site.url}/logs/{job_id}/")
    mark_loaded(page)
    line = where(page)
    expect(line).to_contain_text(re.compile(r"^Queued for 2 min \d+ s: waiting for a free worker$"))
    clock = line.locator("time")
    shown = clock.inner_text()
    expect(clock).not_to_have_text(shown)  # it ticks, without a reload
    assert_not_reloaded(page)
    assert clock.get_attribute("datetime").startswith("PT")
    screenshot(page, "state-queued")
    context.close()


def test_a_running_job_ticks_and_a_canceled_one_says_so(browser: Any, site: DemoRun) -> None:
    from playwright.sync_api import expect

    context = log_in(browser, site, site.username, site.password)
    page = context.pages[0]
    submit_program(
        page,
        site,
        "Ticks until canceled",
        "import time\nfor i in range(600):\n    print('tick', i, flush=True)\n    time.sleep(1)\n",
    )
    mark_loaded(page)
    line = where(page)
    expect(line).to_contain_text("Running for ", timeout=JOB_TIMEOUT_MS)
    expect(line).to_contain_text("; last output ", timeout=JOB_TIMEOUT_MS)
    elapsed = line.locator("time").first
    shown = elapsed.inner_text()
    expect(elapsed).not_to_have_text(shown)  # the elapsed time goes on without a reload
    expect(line).to_contain_text("Running for ")
    assert_not_reloaded(page)
    # The list says the same, in its Where column.
    job_id = page.url.rstrip("/").rsplit("/", 1)[1]
    listing = context.new_page()
    listing.goto(f"{site.url}/example/")
    listed = listing.locator(f'#jobs tr[data-job="{job_id}"]')
    expect(listed.locator("[data-drs-where]")).to_contain_text("; last output ")
    screenshot(page, "state-running")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#cancel-job")
    expect(line).to_contain_text(re.compile(r"^Canceled after "), timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-status")).to_have_text("canceled")
    expect(page.locator("[data-drs-state]")).to_have_text("canceled")
    assert page.locator("body").inner_text().count("Canceled at the request of a user") == 1
    screenshot(page, "state-canceled")
    # The list, open all along, shows it canceled too (its 2.x status stays "failure"),
    # live and after a reload.
    expect(listed.locator("td").nth(2)).to_have_text("canceled", timeout=JOB_TIMEOUT_MS)
    expect(listed.locator("[data-drs-where]")).to_contain_text("Canceled after ")
    listing.reload()
    expect(listed.locator("td").nth(2)).to_have_text("canceled")
    context.close()


def test_a_failed_job_says_why_once_and_no_success_above_it(browser: Any, site: DemoRun) -> None:
    from playwright.sync_api import expect

    context = log_in(browser, site, site.username, site.password)
    page = context.pages[0]
    submit_program(
        page, site, "Exits 3", "import sys\nprint('about to fail', flush=True)\nsys.exit(3)\n"
    )
    mark_loaded(page)
    line = where(page)
    expect(line).to_contain_text(re.compile(r"^Failed after \d+ s$"), timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-error")).to_have_text("The program exited with code 3.")
    expect(page.locator("[data-drs-state]")).to_have_text("failure")
    expect(page.locator("[data-drs-lines]")).to_contain_text("about to fail")
    assert page.locator("body").inner_text().count("exited with code 3") == 1
    expect(page.locator(".message.submitted")).to_be_hidden()
    expect(page.locator(".message.success")).to_have_count(0)
    assert_not_reloaded(page)
    screenshot(page, "state-failed")
    # The same at first paint.
    page.reload()
    expect(line).to_have_text(re.compile(r"^Failed after \d+ s$"))
    assert page.locator("body").inner_text().count("exited with code 3") == 1
    # The admin's page has no #job-error: its log's state line gives the reason.
    page.goto(f"{site.url}/admin/django_remote_submission/job/{page.url.split('/')[-2]}/change/")
    expect(page.locator("[data-drs-state]")).to_have_text(
        "failure: The program exited with code 3."
    )
    context.close()


def test_a_successful_job_says_how_long_it_ran(browser: Any, site: DemoRun) -> None:
    from playwright.sync_api import expect

    context = log_in(browser, site, site.username, site.password)
    page = context.pages[0]
    create_test_job(page, site)
    expect(page.locator(".message.submitted")).to_contain_text("was submitted")
    line = where(page)
    expect(line).to_contain_text(
        re.compile(r"^Succeeded after (\d+ s|\d+ min \d+ s)$"), timeout=JOB_TIMEOUT_MS
    )
    duration = line.locator("time")
    assert re.fullmatch(r"PT\d+S", duration.get_attribute("datetime") or "")
    expect(page.locator(".message.submitted")).to_be_visible()  # still true, and no failure
    screenshot(page, "state-success")
    context.close()


def test_a_100k_line_log_shows_its_end_then_earlier_lines_and_downloads_whole(
    browser: Any, site: DemoRun
) -> None:
    from playwright.sync_api import expect

    context = log_in(browser, site, site.username, site.password)
    page = context.pages[0]
    job_id = submit_program(
        page, site, "One hundred thousand lines", "for i in range(100000):\n    print(i)\n"
    )
    # Wait on the list, not on the job page that would take every line live.
    page.goto(f"{site.url}/example/")
    expect(page.locator(f'#jobs tr[data-job="{job_id}"] td').nth(2)).to_have_text(
        "success", timeout=JOB_TIMEOUT_MS * 2
    )
    page.goto(f"{site.url}/logs/{job_id}/")
    lines = page.locator("[data-drs-lines] .drs-line")

    def numbers() -> list[int]:
        return [int(text) for text in lines.all_inner_texts()]

    expect(lines).to_have_count(200)
    assert numbers() == list(range(99_800, 100_000))
    expect(page.locator("[data-drs-omitted]")).to_have_text("99800 earlier lines are not shown.")

    box = page.locator("[data-drs-lines]")
    box.evaluate("e => { e.scrollTop = e.scrollHeight; }")
    last_line = lines.last
    bottom_before = last_line.evaluate("e => e.getBoundingClientRect().top")
    earlier = page.locator("[data-drs-earlier]")
    expect(earlier).to_be_visible()
    earlier.click()
    expect(lines).to_have_count(1200)
    assert numbers() == list(range(98_800, 100_000))  # contiguous, nothing twice
    # The reader still looks at the same lines: the earlier ones came in above them.
    assert abs(last_line.evaluate("e => e.getBoundingClientRect().top") - bottom_before) <= 1
    expect(page.locator("[data-drs-omitted]")).to_have_text("98800 earlier lines are not shown.")
    expect(earlier).to_be_visible()
    screenshot(page, "log-100k")

    with page.expect_download() as download_info:
        page.locator("a", has_text="Download the whole log").click()
    text = Path(download_info.value.path()).read_text()
    assert text.splitlines() == [str(i) for i in range(100_000)]
    context.close()


def test_the_earlier_lines_button_goes_when_none_are_left(browser: Any, site: DemoRun) -> None:
    from playwright.sync_api import expect

    context = log_in(browser, site, site.username, site.password)
    page = context.pages[0]
    job_id = submit_program(page, site, "1,250 lines", "for i in range(1250):\n    print(i)\n")
    expect(where(page)).to_contain_text("Succeeded after", timeout=JOB_TIMEOUT_MS)
    page.goto(f"{site.url}/logs/{job_id}/")
    lines = page.locator("[data-drs-lines] .drs-line")
    expect(lines).to_have_count(200)
    page.click("[data-drs-earlier]")
    expect(lines).to_have_count(1200)
    page.click("[data-drs-earlier]")
    expect(lines).to_have_count(1250)
    assert [int(text) for text in lines.all_inner_texts()] == list(range(1250))
    expect(page.locator("[data-drs-earlier]")).to_be_hidden()
    expect(page.locator("[data-drs-omitted]")).to_be_hidden()
    context.close()


def test_the_list_fits_1280_with_a_long_title_and_the_nav_fits_a_phone(
    browser: Any, site: DemoRun
) -> None:
    from playwright.sync_api import expect

    context = log_in(browser, site, site.username, site.password)
    page = context.pages[0]
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{site.url}/example/")
    assert no_horizontal_scroll(page)
    screenshot(page, "jobs-list")  # the jobs of the tests above, each in its state
    title = "A" * 120 + "-" + "b" * 79  # 200 characters, no space to wrap at
    job_id = submit_program(page, site, title, "print('short')\n")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{site.url}/example/")
    expect(page.locator(f'#jobs tr[data-job="{job_id}"] a')).to_have_text(title)
    assert no_horizontal_scroll(page)
    screenshot(page, "jobs-list-1280")

    page.set_viewport_size({"width": 375, "height": 700})
    page.goto(f"{site.url}/example/")
    nav = page.locator(".bar nav")
    expect(nav.locator("a", has_text="New job")).to_be_visible()
    assert no_horizontal_scroll(page)
    box = nav.bounding_box()
    assert box is not None
    assert box["x"] + box["width"] <= 375
    screenshot(page, "nav-phone")
    page.goto(f"{site.url}/logs/{job_id}/")
    assert no_horizontal_scroll(page)
    context.close()

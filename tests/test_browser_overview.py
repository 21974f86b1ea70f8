"""The operators' page and the admin's job page in a real headless Chromium.

The site is the demo, as in test_browser (its fixtures are imported here), with its jobs
on the private OpenSSH sshd. Screenshots: overview.png, admin-job.png.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests import test_browser as shared
from tests.demo_check import DemoRun
from tests.test_browser import JOB_TIMEOUT_MS, run_admin_action, screenshot

# test_browser's fixtures, here a module's own: this module runs a demo site of its own.
site = shared.site
browser = shared.browser

pytestmark = [pytest.mark.example, pytest.mark.timeout(600)]

#: About two minutes of output, a line every 0.2 s: it runs until it is canceled.
LONG = (
    "import time\\nfor i in range(600):\\n    print('tick', i, flush=True)\\n    time.sleep(0.2)\\n"
)

NEW_JOB = """
from django.contrib.auth import get_user_model
from django.conf import settings
from django_remote_submission.models import Job
from server.views import example_server

server, interpreter = example_server()
job = Job.objects.create(
    title=TITLE, program=PROGRAM,
    remote_directory=settings.EXAMPLE_REMOTE_DIRECTORY + "/overview",
    remote_filename="long.py", server=server, interpreter=interpreter,
    owner=get_user_model().objects.get(username=USERNAME),
)
print("JOB", job.pk, "SERVER", server.pk)
"""


def new_job(site: DemoRun, title: str) -> tuple[int, int]:
    """A job that runs until canceled, not submitted yet: its pk and its server's."""
    script = (
        NEW_JOB.replace("TITLE", repr(title))
        .replace("PROGRAM", f'"{LONG}"')
        .replace("USERNAME", repr(site.username))
    )
    words = site.manage("shell", "-c", script).split()
    return int(words[words.index("JOB") + 1]), int(words[words.index("SERVER") + 1])


def cancel(site: DemoRun, pk: int) -> None:
    site.manage(
        "shell", "-c", f"from django_remote_submission.tasks import cancel_job; cancel_job({pk})"
    )


def admin_session(browser: Any, site: DemoRun, width: int = 1280) -> Any:
    """The demo's superuser, logged in through the admin's own login page."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.goto(f"{site.url}/admin/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", site.username)
    page.fill("#id_password", site.password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{site.url}/admin/")
    return context


def test_the_operators_page_shows_workers_running_jobs_and_tests_a_server(
    browser: Any, site: DemoRun
) -> None:
    from playwright.sync_api import expect

    job_pk, server_pk = new_job(site, "Watched by the operators")
    context = admin_session(browser, site)
    page = context.pages[0]
    # Reached from the admin's index.
    page.click("text=Operators' overview")
    overview = f"{site.url}/admin/django_remote_submission/overview/"
    page.wait_for_url(overview)
    expect(page.locator("#drs-alive")).to_have_text(re.compile(r"^1 worker is alive$"))
    expect(page.locator("#drs-workers tbody tr.drs-ok")).to_have_count(1)
    expect(page.locator("#drs-running tbody")).to_contain_text("No job is running.")
    page.evaluate("window.drsNotReloaded = true")

    # The job starts meanwhile, from another page: the overview shows it without a reload.
    other = context.new_page()
    run_admin_action(
        other, f"{site.url}/admin/django_remote_submission/job/", job_pk, "submit_to_server"
    )
    expect(other.locator(".messagelist")).to_contain_text("Successfully submitted 1 job")
    row = page.locator(f'#drs-running tr[data-job="{job_pk}"]')
    expect(row).to_have_count(1, timeout=JOB_TIMEOUT_MS)
    expect(row).to_contain_text("Watched by the operators")
    expect(row.locator(".drs-duration")).to_have_text(re.compile(r"^\d+ (s|min \d\d s)$"))
    expect(row.locator("td").nth(4)).to_have_text(re.compile(r" ago$"), timeout=JOB_TIMEOUT_MS)
    assert page.evaluate("window.drsNotReloaded === true")
    server = page.locator(f'#drs-servers tr[data-server="{server_pk}"]')
    expect(server.locator('td[data-state="running"]')).to_have_text("1")

    # Test now: the same test as the admin's action, recorded on the server's row.
    server.locator("button.drs-test-now").click()
    page.wait_for_url(overview)
    expect(page.locator(".messagelist .success")).to_contain_text("and ran `true`")
    expect(page.locator(".messagelist .error")).to_have_count(0)
    server = page.locator(f'#drs-servers tr[data-server="{server_pk}"]')
    expect(server.locator("[data-drs-check-when]")).to_have_text(re.compile(r"^passed .* ago$"))
    expect(server.locator("[data-drs-check-report]")).to_contain_text("and ran `true`")
    expect(page.locator(f'#drs-running tr[data-job="{job_pk}"]')).to_have_count(1)
    screenshot(page, "overview")

    cancel(site, job_pk)
    expect(page.locator(f'#drs-running tr[data-job="{job_pk}"]')).to_have_count(
        0, timeout=JOB_TIMEOUT_MS
    )
    context.close()


def test_the_admin_job_page_leads_with_the_live_log_and_cancels(
    browser: Any, site: DemoRun
) -> None:
    from playwright.sync_api import expect

    job_pk, _ = new_job(site, "Canceled from the admin")
    context = admin_session(browser, site)
    page = context.pages[0]
    jobs = f"{site.url}/admin/django_remote_submission/job/"
    run_admin_action(page, jobs, job_pk, "submit_to_server")
    expect(page.locator(".messagelist")).to_contain_text("Successfully submitted 1 job")
    page.goto(f"{jobs}{job_pk}/change/")
    lines = page.locator("[data-drs-lines] .drs-line")
    expect(lines.filter(has_text="tick 5")).to_have_count(1, timeout=JOB_TIMEOUT_MS)

    # Status, then the log and Cancel, then the program; the internals folded.
    status_top = page.locator(".field-state").bounding_box()["y"]
    log_top = page.locator("[data-drs-log]").bounding_box()["y"]
    program_top = page.locator("#id_program").bounding_box()["y"]
    assert status_top < log_top < program_top
    expect(page.locator(".field-lease_owner")).to_be_hidden()
    expect(page.locator(".field-run_options")).to_have_count(0)
    screenshot(page, "admin-job")

    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if r.url.endswith("/cancel/") else None)
    asked: list[str] = []

    def answer(accept: bool) -> Any:
        def on_dialog(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return on_dialog

    page.once("dialog", answer(False))
    page.click("#drs-cancel-job")
    assert asked
    assert asked[0].startswith("Cancel this job?")
    assert sent == []
    expect(page.locator("#drs-cancel-job")).to_be_visible()
    page.once("dialog", answer(True))
    page.click("#drs-cancel-job")
    expect(page.locator(".messagelist .success")).to_contain_text("Asked the job to stop.")
    assert len(sent) == 1
    expect(page.locator("[data-drs-state]")).to_contain_text(
        re.compile("cancel", re.IGNORECASE), timeout=JOB_TIMEOUT_MS
    )

    # Ended: no Cancel, and read-only but for the title.
    page.reload()
    expect(page.locator(".field-state .readonly")).to_have_text(re.compile("canceled", re.I))
    expect(page.locator("#drs-cancel-job")).to_have_count(0)
    expect(page.locator("#id_program")).to_have_count(0)
    expect(page.locator("#id_title")).to_be_editable()
    context.close()


def test_the_job_list_fits_a_1280_pixel_screen(browser: Any, site: DemoRun) -> None:
    from playwright.sync_api import expect

    pk, _ = new_job(site, "A job with a rather long title, as people give them, to see it wrap")
    context = admin_session(browser, site, width=1280)
    page = context.pages[0]
    page.goto(f"{site.url}/admin/django_remote_submission/job/")
    expect(page.locator(f"#result_list input.action-select[value='{pk}']")).to_have_count(1)
    assert page.locator("#result_list tbody tr").count() >= 1
    sizes = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert sizes[0] <= sizes[1], f"the list is {sizes[0]} px wide in a {sizes[1]} px window"
    expect(page.locator("#drs-overview-link")).to_be_visible()
    context.close()

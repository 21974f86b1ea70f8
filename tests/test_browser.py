"""The example's pages in a real headless Chromium, driven by Playwright.

The site is the example project as `make demo` runs it (daphne, a Celery worker), pointed
at the suite's Redis and at the private OpenSSH sshd. Screenshots of the job list and the
job page are kept in test-artifacts/screenshots/ (DRS_ARTIFACTS_DIR moves them).
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unavailable
from tests.demo_check import ROOT, DemoRun
from tests.sshd import SSHAccount

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(os.environ.get("DRS_ARTIFACTS_DIR") or ROOT / "test-artifacts") / "screenshots"
#: How long a page may take to show what the sample job does in about 10 s.
JOB_TIMEOUT_MS = 90_000

pytestmark = [pytest.mark.example, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def site(
    openssh_account: SSHAccount, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoRun]:
    """The example site, its jobs running on the private sshd as its test account."""
    assert openssh_account.key_filename is not None
    tag = uuid.uuid4().hex[:10]
    demo = DemoRun(
        var_dir=tmp_path_factory.mktemp("browser") / "var",
        env={
            "VIRTUAL_ENV": sys.prefix,
            "REDIS_URL": redis_url,
            "EXAMPLE_CELERY_QUEUE": f"drs-browser-{tag}",
            "EXAMPLE_CHANNEL_PREFIX": f"drs-browser-{tag}",
            "EXAMPLE_SERVER_HOSTNAME": openssh_account.hostname,
            "EXAMPLE_SERVER_PORT": str(openssh_account.port),
            "EXAMPLE_SERVER_HOST_KEY": openssh_account.host_key or "",
            "EXAMPLE_REMOTE_USER": openssh_account.username,
            "EXAMPLE_REMOTE_KEY_FILENAME": str(openssh_account.key_filename),
            "EXAMPLE_REMOTE_DIRECTORY": openssh_account.remote_directory,
            "EXAMPLE_PYTHON_PATH": openssh_account.python,
        },
    )
    try:
        demo.start()
        yield demo
        demo.interrupt()
        assert demo.leftovers() == []
    except BaseException:
        print(demo.output())
        for name in ("web", "worker"):
            log = demo.var_dir / "logs" / f"{name}.log"
            if log.exists():
                print(f"--- {name}.log ---\n{log.read_text(errors='replace')[-4000:]}")
        raise
    finally:
        demo.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        unavailable(f"no {CHROMIUM}: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable(f"playwright is not installed: {exc}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def log_in(browser: Any, site: DemoRun, username: str, password: str) -> Any:
    context = browser.new_context(viewport={"width": 1100, "height": 800}, accept_downloads=True)
    context.requested = []  # every address the pages load, to check nothing comes from elsewhere
    context.on("request", lambda request: context.requested.append(request.url))
    page = context.new_page()
    page.goto(f"{site.url}/example/")
    assert "/accounts/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{site.url}/example/")
    return context


def create_test_job(page: Any, site: DemoRun) -> str:
    """Click "Create a test job": the page goes to the new job's live page. Its id."""
    page.click("#create-test-job")
    page.wait_for_url(re.compile(rf"{re.escape(site.url)}/logs/\d+/$"))
    return str(page.url.rstrip("/").rsplit("/", 1)[1])


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def mark_loaded(page: Any) -> None:
    """A marker that a reload would wipe out."""
    page.evaluate("window.drsNotReloaded = true")


def assert_not_reloaded(page: Any) -> None:
    assert page.evaluate("window.drsNotReloaded === true"), "the page was reloaded"


def make_user(site: DemoRun, username: str, password: str) -> None:
    """A plain user of the site (not staff), made with manage.py as an operator would."""
    site.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_user({username!r}, password={password!r})",
    )


def test_sample_job_live_in_the_list_and_on_its_page(browser: Any, site: DemoRun) -> None:
    from playwright.sync_api import expect

    context = log_in(browser, site, site.username, site.password)
    page = context.pages[0]
    # "Create a test job" lands on the job's page, while it runs: lines arrive there
    # without a reload.
    job_id = create_test_job(page, site)
    expect(page.locator(".message.submitted")).to_contain_text("was submitted")
    mark_loaded(page)
    # The list, opened meanwhile, follows the job too.
    listing = context.new_page()
    listing.goto(f"{site.url}/example/")
    expect(listing.locator(f'#jobs tr[data-job="{job_id}"]')).to_have_count(1)
    mark_loaded(listing)
    lines = page.locator("[data-drs-lines] .drs-line")
    shown_at_load = lines.count()
    expect(page.locator("#job-status")).not_to_have_text("success")
    expect(lines.filter(has_text="Line 10 of 10")).to_have_count(1, timeout=JOB_TIMEOUT_MS)
    assert lines.count() > shown_at_load
    expect(page.locator("#job-status")).to_have_text("success", timeout=JOB_TIMEOUT_MS)
    expect(lines.last).to_have_text("Done: wrote 10 text files and summary.csv")
    # stdout and stderr look different, and each line is there once.
    stderr = page.locator("[data-drs-lines] .drs-line.drs-stderr")
    expect(stderr).to_have_count(2)
    expect(stderr.first).to_contain_text("checkpoint 5")
    assert stderr.first.evaluate("e => getComputedStyle(e).color") != lines.first.evaluate(
        "e => getComputedStyle(e).color"
    )
    expect(lines.filter(has_text="Line 3 of 10")).to_have_count(1)
    # The results arrive when the job ends; the cancel button goes.
    results = page.locator("#results a")
    expect(results).to_have_count(11, timeout=JOB_TIMEOUT_MS)
    # In the order people count: out_2 before out_10.
    expect(results).to_have_text(
        [f"django_remote_submission_example_out_{i}.txt" for i in range(1, 11)] + ["summary.csv"]
    )
    expect(page.locator("#cancel-form")).to_be_hidden()
    assert_not_reloaded(page)
    screenshot(page, "job-log")

    with page.expect_download() as download_info:
        page.locator("#results a", has_text="summary.csv").click()
    download = download_info.value
    assert download.suggested_filename == "summary.csv"
    content = Path(download.path()).read_text()
    assert content.splitlines()[:3] == ["line,square", "1,1", "2,4"]

    # Meanwhile the list followed the job to success on its own.
    expect(listing.locator(f'#jobs tr[data-job="{job_id}"] td').nth(2)).to_have_text(
        "success", timeout=JOB_TIMEOUT_MS
    )
    assert_not_reloaded(listing)
    listing.bring_to_front()
    screenshot(listing, "job-list")
    # Scripts, styles and data all came from the site itself: no CDN, works offline.
    foreign = [url for url in context.requested if not url.startswith(site.url + "/")]
    assert foreign == []
    assert any(
        url.endswith("/static/django_remote_submission/job-log.js") for url in context.requested
    )
    context.close()


def test_another_user_cannot_open_the_job_page(browser: Any, site: DemoRun) -> None:
    owner = log_in(browser, site, site.username, site.password)
    page = owner.pages[0]
    job_id = create_test_job(page, site)
    owner.close()

    password = secrets.token_urlsafe(12)
    make_user(site, "intruder", password)
    intruder = log_in(browser, site, "intruder", password)
    page = intruder.pages[0]
    response = page.goto(f"{site.url}/logs/{job_id}/")
    assert response is not None
    assert response.status == 404
    page.goto(f"{site.url}/example/")
    assert page.locator(f'#jobs tr[data-job="{job_id}"]').count() == 0
    response = page.goto(f"{site.url}/api/jobs/{job_id}/")
    assert response is not None
    assert response.status == 404
    page.goto(f"{site.url}/example/")
    page.click("text=Log out")
    page.wait_for_url(re.compile(r".*/accounts/login/$"))
    response = page.goto(f"{site.url}/logs/{job_id}/")
    assert response is not None
    assert "/accounts/login/" in page.url
    intruder.close()


def test_a_user_without_a_grant_runs_nothing_without_the_accounts_password(
    browser: Any, site: DemoRun, openssh_account: SSHAccount
) -> None:
    """The demo's worker logs in with its own key, which is granted to nobody but the demo's
    superuser: anyone else gives the login's password, or gets an error and no job."""
    from playwright.sync_api import expect

    password = secrets.token_urlsafe(12)
    make_user(site, "walker", password)
    context = log_in(browser, site, "walker", password)
    page = context.pages[0]
    refusal = f"may not run jobs as '{openssh_account.username}'"
    page.click("#create-test-job")
    page.wait_for_url(f"{site.url}/example/")
    expect(page.locator(".message.error")).to_contain_text(refusal)
    assert page.locator("#jobs tbody tr[data-job]").count() == 0

    page.goto(f"{site.url}/jobs/new/")
    page.fill("#id_title", "Not without a password")
    page.click("#new-job-form button[type=submit]")
    expect(page.locator("#new-job-form .errorlist")).to_contain_text(refusal)
    assert page.url == f"{site.url}/jobs/new/"
    assert page.input_value("#id_title") == "Not without a password"
    page.goto(f"{site.url}/example/")
    assert page.locator("#jobs tbody tr[data-job]").count() == 0

    if openssh_account.password:
        page.goto(f"{site.url}/jobs/new/")
        page.fill("#id_title", "With the password")
        page.fill("#id_program", "print('proved')\n")
        page.fill("#id_password", openssh_account.password)
        page.click("#new-job-form button[type=submit]")
        page.wait_for_url(re.compile(r".*/logs/\d+/$"))
        expect(page.locator("#job-status")).to_have_text("success", timeout=JOB_TIMEOUT_MS)
    context.close()


def test_new_job_form_escapes_titles_and_log_lines(browser: Any, site: DemoRun) -> None:
    from playwright.sync_api import expect

    context = log_in(browser, site, site.username, site.password)
    page = context.pages[0]
    page.goto(f"{site.url}/jobs/new/")
    # The form comes filled in with the sample and the example server's place.
    assert "Line {i} of 10" in page.input_value("#id_program")
    title = '<img src=x onerror="window.pwned=1">'
    page.fill("#id_title", title)
    page.fill("#id_program", "print('<b>not bold</b>')\n")
    page.click("#new-job-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/logs/\d+/$"))
    line = page.locator("[data-drs-lines] .drs-line", has_text="<b>not bold</b>")
    expect(line).to_have_count(1, timeout=JOB_TIMEOUT_MS)
    assert page.locator("[data-drs-lines] b").count() == 0
    expect(page.locator("h1")).to_contain_text(title)
    page.goto(f"{site.url}/example/")
    expect(page.locator("#jobs a", has_text=title)).to_have_count(1)
    assert page.evaluate("window.pwned === undefined")
    assert page.locator("#jobs img").count() == 0
    context.close()


def test_cancel_button_stops_a_running_job(browser: Any, site: DemoRun) -> None:
    from playwright.sync_api import expect

    context = log_in(browser, site, site.username, site.password)
    page = context.pages[0]
    page.goto(f"{site.url}/jobs/new/")
    page.fill("#id_title", "A long job")
    page.fill(
        "#id_program",
        "import time\n"
        "for i in range(600):\n"
        "    print('tick', i, flush=True)\n"
        "    time.sleep(0.2)\n",
    )
    page.click("#new-job-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/logs/\d+/$"))
    expect(page.locator("[data-drs-lines] .drs-line", has_text="tick 3")).to_have_count(
        1, timeout=JOB_TIMEOUT_MS
    )

    # The log follows its end while lines come in...
    box = page.locator("[data-drs-lines]")
    at_end = (
        "e => e.scrollHeight > e.clientHeight && e.scrollTop + e.clientHeight >= e.scrollHeight - 4"
    )
    expect(box.locator(".drs-line", has_text="tick 60")).to_have_count(1, timeout=JOB_TIMEOUT_MS)
    assert box.evaluate(at_end)
    # ...stays where the reader is once they scroll up...
    box.evaluate("e => { e.scrollTop = 0; e.dispatchEvent(new Event('scroll')); }")
    count = box.locator(".drs-line").count()
    expect(box.locator(".drs-line")).not_to_have_count(count, timeout=JOB_TIMEOUT_MS)
    assert box.evaluate("e => e.scrollTop") == 0
    # ...and follows again when they come back down.
    box.evaluate("e => { e.scrollTop = e.scrollHeight; e.dispatchEvent(new Event('scroll')); }")
    count = box.locator(".drs-line").count()
    expect(box.locator(".drs-line")).not_to_have_count(count, timeout=JOB_TIMEOUT_MS)
    assert box.evaluate(at_end)

    # Cancel asks first: answered "no", nothing is sent.
    cancels: list[str] = []
    page.on("request", lambda r: cancels.append(r.url) if r.url.endswith("/cancel/") else None)
    questions: list[str] = []

    def answer(accept: bool) -> Any:
        def on_dialog(dialog: Any) -> None:
            questions.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return on_dialog

    page.once("dialog", answer(False))
    page.click("#cancel-job")
    assert questions
    assert questions[0].startswith("Cancel this job?")
    expect(page.locator("#cancel-form")).to_be_visible()
    assert cancels == []
    page.once("dialog", answer(True))
    page.click("#cancel-job")
    # A canceled job shows as canceled (its 2.x status stays "failure").
    expect(page.locator("#job-status")).to_have_text("canceled", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-error")).to_contain_text("anceled")
    assert len(cancels) == 1
    page.reload()
    expect(page.locator("#job-status")).to_have_text("canceled")
    context.close()


def test_the_apps_own_pages_are_live_too(browser: Any, site: DemoRun) -> None:
    """The admin's job page and the 2.x job-user-status page, with the app's scripts."""
    from playwright.sync_api import expect

    context = log_in(browser, site, site.username, site.password)  # demo is staff
    job_id = create_test_job(context.pages[0], site)

    status_page = context.new_page()
    status_page.goto(f"{site.url}/api/job-user-status/")
    mark_loaded(status_page)
    admin = context.new_page()
    admin.goto(f"{site.url}/admin/django_remote_submission/job/{job_id}/change/")
    mark_loaded(admin)

    lines = admin.locator("[data-drs-lines] .drs-line")
    expect(lines.filter(has_text="Line 10 of 10")).to_have_count(1, timeout=JOB_TIMEOUT_MS)
    expect(admin.locator("[data-drs-state]")).to_have_text("success", timeout=JOB_TIMEOUT_MS)
    expect(lines).to_have_count(13)  # 10 lines, 2 on stderr, 1 summary: each once
    assert_not_reloaded(admin)

    row = status_page.locator(f'[data-drs-status] tr[data-job="{job_id}"]')
    expect(row.locator("td").nth(2)).to_have_text("success", timeout=JOB_TIMEOUT_MS)
    assert_not_reloaded(status_page)
    context.close()


def test_a_log_socket_that_stays_silent_is_opened_again(browser: Any, site: DemoRun) -> None:
    """Whatever breaks between the page and the server (a proxy, a stuck consumer), the
    page does not stay on a silent socket: it opens another one after 15 s."""
    from playwright.sync_api import expect

    context = log_in(browser, site, site.username, site.password)
    page = context.pages[0]
    job_id = create_test_job(page, site)

    opened: list[str] = []

    def route(socket: Any) -> None:
        opened.append(socket.url)
        if len(opened) > 1:
            socket.connect_to_server()  # the first one never answers; the next ones do

    page.route_web_socket(re.compile(r".*/ws/job-log/\d+/.*"), route)
    page.clock.install()
    page.goto(f"{site.url}/logs/{job_id}/")
    for _ in range(200):
        if opened:
            break
        page.wait_for_timeout(50)
    assert len(opened) == 1
    page.clock.fast_forward(16_000)  # the watchdog gives up on the silent socket...
    page.clock.fast_forward(2_000)  # ...and the page opens another a second later
    lines = page.locator("[data-drs-lines] .drs-line")
    expect(lines.filter(has_text="Line 10 of 10")).to_have_count(1, timeout=JOB_TIMEOUT_MS)
    assert len(opened) == 2
    # The second socket went on after the lines the page came with: none twice, none lost.
    expect(lines.last).to_have_text("Done: wrote 10 text files and summary.csv")
    expect(lines).to_have_count(13)
    context.close()


ADMIN_JOB = """
from django.contrib.auth import get_user_model
from django.conf import settings
from django_remote_submission.models import Job
from server.views import example_server

server, interpreter = example_server()
job = Job.objects.create(
    title="Admin actions", program="for i in range(1, 4): print('admin', i)\\n",
    remote_directory=settings.EXAMPLE_REMOTE_DIRECTORY + "/admin-actions",
    remote_filename="admin.py", server=server, interpreter=interpreter,
    owner=get_user_model().objects.get(username=USERNAME),
)
print("JOB", job.pk)
"""


def run_admin_action(page: Any, changelist: str, pk: int, action: str) -> None:
    """Select one row of an admin list, run an action on it, confirm its form as is."""
    page.goto(changelist)
    page.check(f"input.action-select[value='{pk}']")
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")
    page.click("input[name=apply]")


def test_the_admin_actions_work_in_the_demo(browser: Any, site: DemoRun) -> None:
    """The embedded server of the demo accepts only the demo's key: the admin's actions,
    which bring no credentials, log in with the worker's key setting, as the pages do."""
    from playwright.sync_api import expect

    output = site.manage("shell", "-c", ADMIN_JOB.replace("USERNAME", repr(site.username)))
    job_pk = int(output.split("JOB ")[1].split()[0])
    context = log_in(browser, site, site.username, site.password)
    page = context.pages[0]
    admin = f"{site.url}/admin/django_remote_submission"

    server_pk = int(
        site.manage(
            "shell", "-c", "from server.views import example_server; print(example_server()[0].pk)"
        ).split()[-1]
    )
    run_admin_action(page, f"{admin}/server/", server_pk, "test_connection")
    expect(page.locator(".messagelist")).to_contain_text("and ran `true`")
    expect(page.locator(".messagelist .error")).to_have_count(0)

    run_admin_action(page, f"{admin}/job/", job_pk, "submit_to_server")
    expect(page.locator(".messagelist")).to_contain_text("Successfully submitted 1 job")
    page.goto(f"{admin}/job/{job_pk}/change/")
    state = page.locator("[data-drs-state]")
    expect(state).to_contain_text("success", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("[data-drs-lines]")).to_contain_text("admin 3")

    run_admin_action(page, f"{admin}/job/", job_pk, "resubmit")
    expect(page.locator(".messagelist")).to_contain_text("Successfully submitted 1 job")
    copy_pk = int(
        site.manage(
            "shell",
            "-c",
            "from django_remote_submission.models import Job; "
            "print(Job.objects.filter(title='Admin actions').latest('pk').pk)",
        ).split()[-1]
    )
    assert copy_pk != job_pk
    page.goto(f"{admin}/job/{copy_pk}/change/")
    expect(page.locator("[data-drs-state]")).to_contain_text("success", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("[data-drs-lines]")).to_contain_text("admin 3")
    screenshot(page, "admin-job-copy")

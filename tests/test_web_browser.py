"""The web UI in real headless Chromium against a running server process:
open the pages, press the buttons, and check the outcome through the work
protocol (FETCH, BEAT, INFO) the way a worker or a client would see it."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import time
import uuid

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from faktory.job import format_time
from helpers import ServerProcess, wait_for_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage "
    "--disable-background-networking --disable-component-update --disable-sync "
    "--no-first-run --window-size=1280,900"
).split()


@pytest.fixture(scope="module")
def server():
    srv = ServerProcess().start()
    wait_for_port(srv.web_port)
    yield srv
    srv.discard()


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="fkchrome")
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(10)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


class UI:
    def __init__(self, driver, server: ServerProcess) -> None:
        self.d = driver
        self.base = f"http://127.0.0.1:{server.web_port}"

    def open(self, path: str):
        self.d.get(self.base + path)
        return self

    def h1(self) -> str:
        return self.d.find_element(By.TAG_NAME, "h1").text

    def css(self, selector: str):
        return self.d.find_elements(By.CSS_SELECTOR, selector)

    def one(self, selector: str):
        return self.d.find_element(By.CSS_SELECTOR, selector)

    def row(self, attr: str, value: str):
        return self.one(f'tr[{attr}="{value}"]')

    def click(self, element, confirm: bool = False) -> None:
        """Click (accepting the confirm dialog) and wait for the next page."""
        self.d.execute_script("window.__before_click = true")
        element.click()
        if confirm:
            WebDriverWait(self.d, 5).until(lambda d: _alert(d))
            self.d.switch_to.alert.accept()
        self.click_wait()

    def click_wait(self) -> None:
        """Wait for the page that replaces the one marked ``__before_click``."""
        WebDriverWait(self.d, 10).until(
            lambda d: d.execute_script(
                "return !window.__before_click && document.readyState === 'complete'"
            )
        )

    def flash(self) -> str:
        return self.one(".flash").text

    def errors(self) -> list[dict]:
        return [e for e in self.d.get_log("browser") if e["level"] == "SEVERE"]


def _alert(driver) -> bool:
    try:
        driver.switch_to.alert  # noqa: B018 - raises until the dialog is open
        return True
    except NoAlertPresentException:
        return False


@pytest.fixture
def ui(browser, server):
    ui = UI(browser, server)
    browser.get_log("browser")  # start each test with an empty console
    yield ui
    assert ui.errors() == []


@pytest.fixture
def client(server):
    c = server.client()
    c.call("FLUSH")
    yield c
    c.close()


def fail_job(server: ServerProcess, queue: str, **fields) -> dict:
    """Push a job and FAIL it from a worker: it lands in retries (or dead)."""
    producer, worker = server.client(), server.client(wid=uuid.uuid4().hex[:12])
    jid, reply = producer.push(queue=queue, **fields)
    assert reply == "OK"
    job = worker.fetch(queue)
    assert job["jid"] == jid
    error = {"jid": jid, "errtype": "IOError", "message": "disk <full>", "backtrace": ["x.py:1"]}
    assert worker.call("FAIL " + json.dumps(error)) == "OK"
    producer.close()
    worker.close()
    return job


def check_box(ui: UI, jid: str) -> None:
    ui.row("data-jid", jid).find_element(By.CSS_SELECTOR, 'input[type="checkbox"]').click()


# -- tests -------------------------------------------------------------------------------
def test_every_page_opens_cleanly(ui, client, server):
    fail_job(server, "emails", retry=3)
    client.push(queue="emails", jobtype="Welcome", args=["ann@example.com"])
    for path, title in [
        ("/", "Dashboard"),
        ("/busy", "Busy"),
        ("/queues", "Queues"),
        ("/queues/emails", "Queue emails"),
        ("/retries", "Retries"),
        ("/scheduled", "Scheduled"),
        ("/morgue", "Dead"),
        ("/debug", "Debug"),
    ]:
        ui.open(path)
        assert ui.h1() == title
        # Every tab in the nav, the summary bar and the footer are there.
        assert [a.text for a in ui.css(".tabs a")][:6] == [
            "Dashboard",
            "Busy",
            "Queues",
            "Retries",
            "Scheduled",
            "Dead",
        ]
        assert ui.one('[data-stat="retries"]').text == "1"
        assert "Faktory 1.10.0" in ui.one("footer").text
    # The job page, reached by clicking through from the list.
    ui.open("/retries")
    ui.click(ui.one("tbody tr td:nth-child(2) a"))
    assert "IOError" in ui.one(".error-card").text and "disk <full>" in ui.one(".error-card").text


def test_script_in_job_args_shows_as_text(ui, client, server):
    evil = ["<script>window.__xss = 1</script>", '<img src=x onerror="window.__xss = 2">']
    job = fail_job(server, "evil", args=evil, jobtype="<b>Evil</b>", custom={"note": evil[1]})
    client.push(queue="evil", args=evil, jobtype="<b>Evil</b>")
    for path in ["/retries", "/queues/evil"]:
        ui.open(path)
        text = ui.one("main").text
        assert evil[0] in text and "<b>Evil</b>" in text
        assert ui.d.execute_script("return window.__xss") is None
        assert not ui.css("main img[src='x']") and not ui.css("main b")
    ui.open("/retries")
    ui.click(ui.row("data-jid", job["jid"]).find_element(By.CSS_SELECTOR, "td:nth-child(2) a"))
    assert "<img src=x onerror=" in ui.one("main").text
    assert ui.d.execute_script("return window.__xss") is None


def test_retry_kill_delete_from_retries(ui, client, server):
    a, b, c = (fail_job(server, "work", args=[i], retry=5) for i in range(3))
    ui.open("/retries")
    check_box(ui, a["jid"])
    ui.click(ui.one('.toolbar button[value="retry"]'))
    assert ui.flash() == "Queued 1 job for retry."
    assert client.fetch("work")["jid"] == a["jid"]

    # A row's own button acts on that row only.
    ui.click(
        ui.row("data-jid", b["jid"]).find_element(By.CSS_SELECTOR, 'button[value="kill"]'),
        confirm=True,
    )
    assert ui.flash() == "Moved 1 job to the Dead set."
    info = client.info()["faktory"]["sets"]
    assert (info["retries"], info["dead"]) == (1, 1)

    # From the job's own page.
    ui.click(ui.row("data-jid", c["jid"]).find_element(By.CSS_SELECTOR, "td:nth-child(2) a"))
    assert c["jid"] in ui.h1()
    ui.click(ui.one('.page-actions button[value="delete"]'), confirm=True)
    assert ui.h1() == "Retries" and "No retries were found." in ui.one("main").text
    assert client.info()["faktory"]["sets"]["retries"] == 0


def test_dead_filter_select_all_and_retry(ui, client, server):
    for i in range(4):
        fail_job(server, "reports", args=[i], retry=-1, jobtype="Report" if i % 2 else "Export")
    ui.open("/morgue")
    assert len(ui.css("tbody tr")) == 4
    box = ui.one('.filters input[name="jobtype"]')
    box.send_keys("Report")
    ui.click(ui.one('.filters button[type="submit"]'))
    assert len(ui.css("tbody tr")) == 2
    ui.one("input[data-check-all]").click()
    assert all(c.is_selected() for c in ui.css('tbody input[name="key"]'))
    ui.click(ui.one('.toolbar button[value="retry"]'))
    assert client.info()["faktory"]["queues"]["reports"] == 2
    assert {client.fetch("reports")["jobtype"] for _ in range(2)} == {"Report"}
    assert client.info()["faktory"]["sets"]["dead"] == 2
    ui.open("/morgue")
    ui.click(ui.one('.all-actions button[value="delete"]'), confirm=True)
    assert client.info()["faktory"]["sets"]["dead"] == 0


def test_scheduled_add_to_queue(ui, client):
    jid, _ = client.push(queue="later", at=format_time(time.time() + 3 * 3600 + 60))
    ui.open("/scheduled")
    assert "in 3 hours" in ui.row("data-jid", jid).text
    check_box(ui, jid)
    ui.click(ui.one('.toolbar button[value="add_to_queue"]'))
    assert client.fetch("later")["jid"] == jid


def test_pause_resume_and_clear_queues(ui, client):
    held, _ = client.push(queue="held")
    other, _ = client.push(queue="other")
    ui.open("/queues")
    ui.click(ui.row("data-queue", "held").find_element(By.CSS_SELECTOR, 'button[value="pause"]'))
    assert ui.flash() == "Queue held paused."
    # FETCH skips the paused queue and takes the next one at once.
    assert client.fetch("held", "other")["jid"] == other
    ui.click(ui.row("data-queue", "held").find_element(By.CSS_SELECTOR, 'button[value="resume"]'))
    assert client.fetch("held", "other")["jid"] == held

    for i in range(3):
        client.push(queue="trash", args=[i])
    ui.open("/queues/trash")
    first = ui.css('tbody input[name="bkey"]')[0]
    first.click()
    ui.click(ui.one('button[value="delete_selected"]'), confirm=True)
    assert client.info()["faktory"]["queues"]["trash"] == 2
    ui.open("/queues")
    ui.click(
        ui.row("data-queue", "trash").find_element(By.CSS_SELECTOR, 'button[value="delete"]'),
        confirm=True,
    )
    assert "trash" not in client.info()["faktory"]["queues"]


def test_quiet_and_stop_workers(ui, client, server):
    worker = server.client(wid="wid-browser", hello={"hostname": "box-1", "labels": ["blue"]})
    other = server.client(wid="wid-other", hello={"hostname": "box-2"})
    jid, _ = client.push(queue="busyq", args=["running"])
    assert worker.fetch("busyq")["jid"] == jid
    ui.open("/busy")
    row = ui.row("data-wid", "wid-browser")
    assert "box-1" in row.text and "blue" in row.text
    assert jid in ui.one("main").text
    ui.click(row.find_element(By.CSS_SELECTOR, 'button[value="quiet"]'))
    assert json.loads(worker.call('BEAT {"wid":"wid-browser"}')) == {"state": "quiet"}
    assert other.call('BEAT {"wid":"wid-other"}') == "OK"
    assert "quiet" in ui.row("data-wid", "wid-browser").text
    ui.click(ui.one('.card-head button[value="terminate"]'), confirm=True)
    assert json.loads(other.call('BEAT {"wid":"wid-other"}')) == {"state": "terminate"}
    assert json.loads(worker.call('BEAT {"wid":"wid-browser"}')) == {"state": "terminate"}
    worker.close()
    other.close()


def test_dashboard_charts_poll_stats(ui, client):
    ui.open("/")
    ui.d.execute_script("localStorage.setItem('timeInterval', '2000')")
    ui.open("/?days=7")
    assert len(ui.css("#history-chart svg text")) > 0
    assert ui.one(".chip.active").text == "7 days"
    assert ui.one("#poll-interval").get_attribute("value") == "2000"
    client.push(queue="live", args=[1])
    # The summary bar follows /stats without a reload, and the live chart
    # draws once two polls have given it a difference.
    WebDriverWait(ui.d, 10).until(
        lambda d: d.find_element(By.CSS_SELECTOR, '[data-stat="enqueued"]').text == "1"
    )
    WebDriverWait(ui.d, 10).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#live-chart svg text")
    )


def test_password_protected_ui(browser):
    srv = ServerProcess(env={"FAKTORY_PASSWORD": "hunter2"}).start()
    try:
        wait_for_port(srv.web_port)
        base = f"http://127.0.0.1:{srv.web_port}"
        # /health is open; from there, the UI itself answers 401 without the password.
        browser.get(base + "/health")
        status = browser.execute_async_script(
            "var done = arguments[0];"
            "fetch('/queues', {credentials: 'omit'}).then(r => r.text().then(t => done([r.status, t,"
            " r.headers.get('WWW-Authenticate')])));"
        )
        assert status == [401, "Authorization required", 'Basic realm="Faktory"']
        token = base64.b64encode(b"ops:hunter2").decode()
        browser.execute_cdp_cmd("Network.enable", {})
        browser.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": "Basic " + token}}
        )
        c = srv.client(password="hunter2")
        c.push(queue="locked")
        browser.get(base + "/queues")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Queues"
        browser.find_element(
            By.CSS_SELECTOR, 'tr[data-queue="locked"] button[value="pause"]'
        ).click()
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".flash"))
        assert browser.find_element(By.CSS_SELECTOR, ".flash").text == "Queue locked paused."
        c.close()
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
        srv.discard()

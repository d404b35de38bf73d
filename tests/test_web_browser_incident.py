"""The incident tools in headless Chromium against a server process: find a
job by jid and follow it, live lists, releasing an orphaned reservation,
grouped failures.  Outcomes are checked through the work protocol."""

from __future__ import annotations

import json

import test_web_browser as harness
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from test_web_browser import fail_job

# The harness's fixtures: one server and one browser for the module.
server, browser, ui, client = harness.server, harness.browser, harness.ui, harness.client


def test_find_job_by_jid_and_follow_it(ui, client, server):
    job = fail_job(server, "billing", retry=5, jobtype="Charge")
    ui.open("/queues")
    box = ui.one("form.find input[name=jid]")
    box.send_keys(job["jid"])
    ui.d.execute_script("window.__before_click = true")
    box.send_keys(Keys.ENTER)
    ui.click_wait()
    assert ui.h1() == f"Charge {job['jid']}"
    assert ui.one("#job-where").text.startswith("Retries In Retries")
    url = ui.d.current_url
    ui.click(ui.one('.page-actions button[value="retry"]'))
    assert ui.flash() == "Queued 1 job for retry."
    # The same URL now shows the job waiting in its queue.
    ui.d.get(url)
    assert ui.one("#job-where").text.startswith("Enqueued Waiting in queue billing")
    assert client.fetch("billing")["jid"] == job["jid"]
    ui.d.get(url)
    assert ui.one("#job-where").text.startswith("In progress Reserved by")


def fast_polling(ui) -> None:
    ui.open("/")
    ui.d.execute_script("localStorage.setItem('timeInterval', '2000')")


def wait(ui, condition, timeout: float = 12):
    return WebDriverWait(
        ui.d, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    ).until(lambda d: condition())


def click_fresh(ui, selector: str, confirm: bool = False) -> None:
    """Click an element of a live part, which a refresh may swap at any time."""
    for _ in range(5):
        try:
            return ui.click(ui.one(selector), confirm)
        except StaleElementReferenceException:
            continue
    raise AssertionError(f"{selector} kept changing")


def test_lists_refresh_in_place_and_wait_for_the_operator(ui, client, server):
    fast_polling(ui)
    for i in range(25):
        client.push(queue="live", args=[i])
    ui.d.set_window_size(1280, 700)
    ui.open("/queues/live")
    ui.d.execute_script("window.__same_page = 1; window.scrollTo(0, 300)")
    assert ui.one("#poll-interval").get_attribute("value") == "2000"
    # A ticked row holds the refresh: the new job does not appear, the tick stays.
    first = 'tbody input[name="bkey"]'
    ui.d.execute_script(f"document.querySelector('{first}').click()")  # one step: never stale
    client.push(queue="live", args=["new"])
    wait(ui, lambda: "Paused" in ui.one("#live-control").text)
    assert ui.one('[data-live="summary"]').text.startswith("25 jobs")
    assert ui.one(first).is_selected()
    # Untick: the list catches up without a reload and keeps the scroll position.
    ui.one(first).click()
    wait(ui, lambda: ui.one('[data-live="summary"]').text.startswith("26 jobs"))
    assert ui.d.execute_script("return [window.__same_page, window.scrollY]") == [1, 300]
    assert ui.one('[data-stat="enqueued"]').text == "26"
    ui.d.set_window_size(1280, 900)


def test_every_list_page_refreshes(ui, client, server):
    fast_polling(ui)
    checks = [
        (
            "/queues",
            lambda: client.push(queue="fresh-q"),
            lambda: ui.css('tr[data-queue="fresh-q"]'),
        ),
        (
            "/retries",
            lambda: fail_job(server, "fresh", retry=5, jobtype="LateFailure"),
            lambda: "LateFailure" in ui.one("main").text,
        ),
        (
            "/morgue",
            lambda: fail_job(server, "fresh", retry=-1, jobtype="LateDeath"),
            lambda: "LateDeath" in ui.one("main").text,
        ),
        (
            "/scheduled",
            lambda: client.push(queue="fresh", jobtype="LateSchedule", at="2099-01-01T00:00:00Z"),
            lambda: "LateSchedule" in ui.one("main").text,
        ),
        (
            "/busy",
            lambda: (
                client.push(queue="fresh-busy", jobtype="LateWork"),
                client.fetch("fresh-busy"),
            ),
            lambda: "LateWork" in ui.one("main").text,
        ),
    ]
    for path, change, seen in checks:
        ui.open(path)
        ui.d.execute_script("window.__same_page = 1")
        assert not seen()
        change()
        wait(ui, seen)
        assert ui.d.execute_script("return window.__same_page") == 1, path


def test_release_the_job_of_a_crashed_worker(ui, client, server):
    alive = server.client(wid="w-alive", hello={"hostname": "box-ok"})
    crashed = server.client(wid="w-crashed", hello={"hostname": "box-gone"})
    lost, _ = client.push(queue="orphans", jobtype="Lost")
    kept, _ = client.push(queue="orphans", jobtype="Kept")
    assert crashed.fetch("orphans")["jid"] == lost
    assert alive.fetch("orphans")["jid"] == kept
    crashed.close()  # its process died: the connection and its worker record are gone
    ui.open("/busy")
    wait(ui, lambda: "worker gone" in ui.row("data-jid", lost).text)
    assert "worker gone" not in ui.row("data-jid", kept).text
    assert not ui.row("data-jid", kept).find_elements(By.CSS_SELECTOR, "button")
    click_fresh(ui, f'tr[data-jid="{lost}"] button[value="release"]', confirm=True)
    assert ui.flash() == f"Released {lost} back to queue orphans."
    assert not ui.css(f'tr[data-jid="{lost}"]')
    assert client.fetch("orphans")["jid"] == lost
    alive.close()


def fail_as(server, queue: str, errtype: str, **fields) -> dict:
    producer, worker = server.client(), server.client(wid="w-grp")
    jid, _ = producer.push(queue=queue, **fields)
    job = worker.fetch(queue)
    assert job["jid"] == jid
    worker.call("FAIL " + json.dumps({"jid": jid, "errtype": errtype, "message": "no luck"}))
    producer.close()
    worker.close()
    return job


def test_retries_grouped_by_error_class_retry_one_class(ui, client, server):
    timeouts = {fail_as(server, "pay", "Net::ReadTimeout", retry=5)["jid"] for _ in range(3)}
    declined = fail_as(server, "pay", "CardError", retry=5)["jid"]
    ui.open("/retries")
    ui.click(ui.one('.group-by a[href$="by=errtype"]'))
    assert ui.h1() == "Retries by error class"
    counts = {
        row.get_attribute("data-group"): row.find_element(By.CSS_SELECTOR, "td.num").text
        for row in ui.css("tbody tr[data-group]")
    }
    assert counts == {"Net::ReadTimeout": "3", "CardError": "1"}
    click_fresh(ui, 'tr[data-group="Net::ReadTimeout"] button[value="retry"]', confirm=True)
    assert ui.flash() == "Queued for retry: 3 jobs of Net::ReadTimeout."
    assert [r.get_attribute("data-group") for r in ui.css("tbody tr[data-group]")] == ["CardError"]
    assert {client.fetch("pay")["jid"] for _ in range(3)} == timeouts
    assert client.info()["faktory"]["sets"]["retries"] == 1
    ui.open(f"/job/{declined}")
    assert ui.one("#job-where").text.startswith("Retries")


def test_queue_filter_and_it_stays_live(ui, client):
    fast_polling(ui)
    for i in range(3):
        client.push(queue="inbox", jobtype="Mail", args=[f"ann{i}@example.com"])
        client.push(queue="inbox", jobtype="Sms", args=[f"+4917{i}"])
    ui.open("/queues/inbox")
    ui.one('.filters input[name="jobtype"]').send_keys("Sms")
    ui.click(ui.one('.filters button[type="submit"]'))
    assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in ui.css("tbody tr")] == ["Sms"] * 3
    ui.d.execute_script("window.__same_page = 1")
    late, _ = client.push(queue="inbox", jobtype="Sms", args=["+49999"])
    client.push(queue="inbox", jobtype="Mail", args=["late@example.com"])
    wait(ui, lambda: len(ui.css("tbody tr")) == 4)
    assert late in ui.one("tbody").text and "late@example.com" not in ui.one("main").text
    assert ui.d.execute_script("return window.__same_page") == 1
    ui.one('.filters input[name="jobtype"]').clear()
    ui.one('.filters input[name="q"]').send_keys("ANN1@")
    ui.click(ui.one('.filters button[type="submit"]'))
    assert len(ui.css("tbody tr")) == 1 and "ann1@example.com" in ui.one("tbody").text


def test_job_type_page_from_the_metrics_plugin(ui, client, server):
    worker = server.client(wid="w-metrics")
    for i in range(3):
        client.push(queue="stats", jobtype="Thumbnail", args=[i])
        job = worker.fetch("stats")
        outcome = {"jid": job["jid"]}
        if i == 2:
            worker.call("FAIL " + json.dumps({**outcome, "errtype": "E", "message": "x"}))
        else:
            worker.call("ACK " + json.dumps(outcome))
    worker.close()
    ui.open("/")
    ui.click(ui.one('.tabs a[href="/jobtypes"]'))
    assert ui.h1() == "Job types"
    ui.click(ui.one('tr[data-jobtype="Thumbnail"] a'))
    cells = [
        [c.text for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
        for row in ui.css("tr[data-figure]")
    ]
    assert cells[0][:3] == ["Processed", "3", "3"] and cells[1][:3] == ["Failed", "1", "1"]
    assert cells[2][1] == "33.3 %"
    ui.click(ui.one('a[href^="retries?jobtype="]'))
    assert ui.h1() == "Retries" and "Thumbnail" in ui.one("tbody").text

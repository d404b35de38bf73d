"""The incident tools in headless Chromium against a server process: find a
job by jid and follow it, live lists, releasing an orphaned reservation,
grouped failures.  Outcomes are checked through the work protocol."""

from __future__ import annotations

import test_web_browser as harness
from selenium.webdriver.common.keys import Keys
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
    assert ui.flash() == "Queued for retry: 1 job(s)."
    # The same URL now shows the job waiting in its queue.
    ui.d.get(url)
    assert ui.one("#job-where").text.startswith("Enqueued Waiting in queue billing")
    assert client.fetch("billing")["jid"] == job["jid"]
    ui.d.get(url)
    assert ui.one("#job-where").text.startswith("In progress Reserved by")

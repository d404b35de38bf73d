"""The route releasing a job whose worker is gone (the button is drawn by
``web.orphans.release_cell``): registered on ``WebUI.app`` on import."""

from __future__ import annotations

from urllib.parse import quote

from .. import orphans
from .app import WebUI, _arg

app = WebUI.app


@app.route("/busy/release", methods=["POST"])
async def release(self, request):
    jid = _arg(request, "jid")
    t = self._t(request)
    if not jid:
        return self._redirect(request, "/busy", t._("Nothing selected."))
    outcome, job = await orphans.release(self.server, jid, _arg(request, "reserved_at"))
    queue = str(job.get("queue", ""))
    message = {
        "released": t._("Released {jid} back to queue {queue}.", jid=jid, queue=queue),
        "gone": t._("Job {jid} is no longer held by that reservation: nothing released.", jid=jid),
        "alive": t._("The worker holding {jid} sends heartbeats again: nothing released.", jid=jid),
    }[outcome]
    back = "/job/" + quote(jid, safe="") if _arg(request, "return") == "job" else "/busy"
    return self._redirect(request, back, message)

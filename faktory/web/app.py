"""Klein routes of the web UI.  ``WebUI(server)`` holds no globals: each
server instance gets its own app."""

from __future__ import annotations

import json

from klein import Klein
from twisted.internet import defer

from .. import FAKTORY_COMPAT_VERSION
from ..job import format_time


class WebUI:
    app = Klein()

    def __init__(self, server) -> None:
        self.server = server

    def resource(self):
        return self.app.resource()

    @app.route("/stats")
    @defer.inlineCallbacks
    def stats(self, request):
        info = yield self.server.admin.info()
        request.setHeader("Content-Type", "application/json")
        request.setHeader("Cache-Control", "no-cache")
        return json.dumps(info)

    @app.route("/metrics", methods=["GET", "HEAD"])
    async def metrics(self, request):
        from ..pro.metrics import render_prometheus  # Prometheus text lives with the plugin

        return await render_prometheus(self.server, request)

    @app.route("/health")
    def health(self, request):
        request.setHeader("Content-Type", "application/json")
        return json.dumps(
            {
                "now": format_time(self.server.clock.seconds()),
                "server": {
                    "description": "Faktory",
                    "faktory_version": FAKTORY_COMPAT_VERSION,
                    "connections": self.server.connection_count,
                    "command_count": self.server.command_count,
                },
            }
        )

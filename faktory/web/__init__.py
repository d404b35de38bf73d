"""The web UI: a Klein app bound per server instance."""

from . import groups_routes, jobs, orphans_routes  # noqa: F401 - they register their routes on WebUI.app
from .app import WebUI

__all__ = ["WebUI"]

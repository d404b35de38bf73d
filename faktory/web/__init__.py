"""The web UI: a Klein app bound per server instance."""

from . import groups, jobs, orphans  # noqa: F401 - they register their routes on WebUI.app
from .app import WebUI

__all__ = ["WebUI"]

"""The web UI: a Klein app bound per server instance."""

from . import jobs  # noqa: F401 - registers its routes on WebUI.app
from .app import WebUI

__all__ = ["WebUI"]

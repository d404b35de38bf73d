"""The web UI: a Klein app bound per server instance."""

from .app import WebUI

__all__ = ["WebUI"]

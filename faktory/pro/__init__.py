"""The features Faktory sells as Pro/Enterprise, built in.  Each is a plugin
(``faktory.plugin.IFaktoryPlugin``) using the same hooks third parties get."""

from __future__ import annotations

from typing import Any


def builtin_plugins() -> list[Any]:
    """Fresh instances of every built-in feature plugin, in setup order."""
    from .batch import BatchPlugin
    from .tracking import TrackingPlugin

    return [
        # Batches count a member job at PUSH: after every check that may refuse it.
        BatchPlugin(),
        TrackingPlugin(),
    ]

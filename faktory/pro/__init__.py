"""The features Faktory sells as Pro/Enterprise, built in.  Each is a plugin
(``faktory.plugin.IFaktoryPlugin``) using the same hooks third parties get."""

from __future__ import annotations

from typing import Any


def builtin_plugins() -> list[Any]:
    """Fresh instances of every built-in feature plugin, in setup order.

    Order matters for middleware: ``unique`` takes its lock after the push
    checks that may refuse a job, so a refused job leaves no lock."""
    from .batch import BatchPlugin
    from .cron import CronPlugin
    from .expiring import ExpiringPlugin
    from .gateway import GatewayPlugin
    from .metrics import MetricsPlugin
    from .throttle import ThrottlePlugin
    from .tracking import TrackingPlugin
    from .unique import UniquePlugin

    return [
        ThrottlePlugin(),
        ExpiringPlugin(),
        UniquePlugin(),
        CronPlugin(),
        GatewayPlugin(),
        # Batches count a member job at PUSH: after every check that may refuse it.
        BatchPlugin(),
        TrackingPlugin(),
        MetricsPlugin(),
    ]

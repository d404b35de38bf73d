"""Drop-in module: the server imports every module in ``faktory_plugins`` to
find plugins, so keep this file tiny and put the code in a real package."""

from faktory_audit import AuditPlugin

audit = AuditPlugin()

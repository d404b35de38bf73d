"""Drop-in directory for Faktory server plugins.

Like ``twisted/plugins``, this package spans every ``faktory_plugins``
directory on ``sys.path``: a plugin distribution ships
``faktory_plugins/<name>.py`` WITHOUT an ``__init__.py``, and the server finds
the plugin objects in it with ``twisted.plugin.getPlugins``.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))  # noqa: F821 - set by the import system
__all__: list[str] = []

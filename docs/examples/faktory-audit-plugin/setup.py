"""An example third-party plugin for faktory-server: see README.md."""

from setuptools import setup

setup(
    name="faktory-audit-plugin",
    version="1.0.0",
    description="Audit log, blocked job types and an AUDIT command for faktory-server",
    python_requires=">=3.11",
    # faktory_plugins is a drop-in directory shared with other plugins: list it
    # as a package but never ship a faktory_plugins/__init__.py.
    packages=["faktory_audit", "faktory_plugins"],
    install_requires=["faktory-server"],
)

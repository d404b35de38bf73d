"""A Faktory-compatible background job server on Twisted."""

__version__ = "0.1.0"

# The Faktory release whose wire behaviour we reproduce; reported in INFO so
# clients that look at it see a version they know.
FAKTORY_COMPAT_VERSION = "1.10.0"

"""synapse-async: a fully asynchronous Discord engagement bot with a JSON admin API."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("synapse-async")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"

__all__ = ["__version__"]

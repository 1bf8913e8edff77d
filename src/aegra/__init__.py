"""aegra on Trio: a self-hosted LangGraph agent server."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aegra-trio")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+local"

"""The installed package's version, in a module of its own so that any layer can name it without
importing the package root."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("emrestore")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

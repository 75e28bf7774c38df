"""irc-numpy-backend: an example irc backend plugin.

Installing this package makes ``irc.compile(model, target="numpy")`` work: its
pyproject registers :class:`NumpyBackend` under the ``irc.backends`` entry-point
group. See docs/writing-a-backend.md in the irc repository for a walk-through.
"""

from irc_numpy_backend.backend import NumpyBackend, NumpyOptions

__all__ = ["NumpyBackend", "NumpyOptions"]
__version__ = "0.1.0"

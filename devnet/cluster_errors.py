"""The devnet's errors (re-exported by :mod:`devnet.cluster`); the exit code of each is
the one ``python -m devnet`` ends with.
"""

from __future__ import annotations


class DevnetError(Exception):
    """Something went wrong while running the devnet (exit code 1)."""


class UsageError(DevnetError):
    """The command cannot apply: no devnet there, no such node, ... (exit code 2)."""


class NotConverged(DevnetError):
    """The views did not agree within the time allowed."""

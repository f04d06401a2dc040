"""The mesh's own exceptions: one small hierarchy, so callers catch ours, not trio's or libp2p's."""

from __future__ import annotations


class MeshError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(MeshError):
    """A configuration value is missing, malformed or out of range (the CLI exits with code 2)."""


class CheckRegistrationError(MeshError):
    """A check was registered twice, or an unknown check was named."""


class CheckError(MeshError):
    """A check could not produce a result (raised, hung or returned garbage)."""

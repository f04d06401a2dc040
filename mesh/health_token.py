"""The bearer token that guards the detailed endpoints: its file, its text, its need.

The node (``adapters.node``) and the operator command (``adapters.members_cli``) read the
token from a file the same way, and both ask whether a host keeps traffic on this machine:
the node warns when it serves the detailed endpoints beyond loopback without a token.
"""

from __future__ import annotations

import ipaddress

from mesh.errors import ConfigError

__all__ = ["MAX_TOKEN_BYTES", "is_loopback_host", "is_token_text", "read_token_file"]

MAX_TOKEN_BYTES = 4096


def read_token_file(path: str, source: str) -> str:
    """The bearer token in the file at ``path`` (named ``source`` in errors), as the node and
    ``chorus-health members`` read it: UTF-8, stripped, at most MAX_TOKEN_BYTES, not empty.
    Raises ConfigError."""
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"invalid {source}: cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_TOKEN_BYTES:
        raise ConfigError(f"invalid {source}: {path} is over {MAX_TOKEN_BYTES} bytes")
    try:
        token = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"invalid {source}: {path} is not UTF-8 text") from None
    if not token:
        raise ConfigError(f"invalid {source}: {path} is empty")
    if not is_token_text(token):
        # Never the token itself in the message: it ends up in logs.
        raise ConfigError(
            f"invalid {source}: the token in {path} must be visible ASCII, one line, no spaces"
        )
    return token


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a name or an IP, no port) means this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_token_text(token: str) -> bool:
    """Whether ``token`` can travel as a bearer token: visible ASCII only (an HTTP header
    refuses control characters, and a space would split it)."""
    return all("!" <= c <= "~" for c in token)

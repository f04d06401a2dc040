"""The node's identity: its Ed25519 key file, created once (mode 0600) and then reused.

The peer id is the key's, so it survives restarts only as long as the file does: it is
written atomically and durably, and refused when group or others could read or write it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

from libp2p.crypto.ed25519 import create_new_key_pair as create_ed25519_key_pair
from libp2p.crypto.keys import KeyPair, KeyType
from libp2p.identity_utils import load_identity
from libp2p.peer.id import ID

from adapters.p2p_config import P2PError

__all__ = ["load_or_create_identity"]

# The libp2p edge logs under one name, whichever part of it speaks.
logger = logging.getLogger("adapters.libp2p_host")


def load_or_create_identity(key_file: Path) -> KeyPair:
    """Load the node's Ed25519 key, or create it (mode 0600) if the file does not exist.

    Raises P2PError for a key file that is corrupt, not Ed25519, or open to group or others.
    """
    if key_file.exists():
        return _load_identity(key_file)
    key_pair = create_ed25519_key_pair()
    data = key_pair.private_key.serialize()
    tmp: Path | None = None
    try:
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Write then rename, so a crash mid-write never leaves a half key behind that
        # the next start would reject as corrupt. The temp name is new each time, so a
        # temp file left by a crash never gets in the way.
        path = _temp_key_path(key_file)
        # O_EXCL: never reuse a file someone placed at the temp path (it could be a
        # hard link to another file); O_NOFOLLOW: never write through a symlink there.
        flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        tmp = path  # ours from here on, so ours to remove if anything below fails
        try:
            os.fchmod(fd, 0o600)  # the umask may not strip what O_CREAT's mode keeps
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(path, key_file)
        tmp = None
        _fsync_dir(key_file.parent)
    except OSError as exc:
        raise P2PError(f"cannot create identity key file {key_file}: {exc}") from exc
    finally:
        if tmp is not None:
            # Made by us and never renamed: a stray private key helps nobody.
            with contextlib.suppress(OSError):
                tmp.unlink()
    logger.info("created new identity %s in %s", ID.from_pubkey(key_pair.public_key), key_file)
    return key_pair


def _temp_key_path(key_file: Path) -> Path:
    return key_file.with_name(f".{key_file.name}.{secrets.token_hex(8)}.tmp")


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory is: otherwise a power cut could bring
    # back a directory without the key, and the node a new peer id.
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _load_identity(key_file: Path) -> KeyPair:
    try:
        mode = stat.S_IMODE(key_file.stat().st_mode)
    except OSError as exc:
        raise P2PError(f"identity key file {key_file} is unreadable ({exc})") from exc
    # Refused, not warned about: whoever could read the key may already hold this peer's
    # identity, and whoever could write it may have put theirs in. Only the operator can
    # tell, so the node stops (exit code 2 through ConfigError) before reading it.
    if mode & 0o077:
        raise P2PError(
            f"identity key file {key_file} has mode {mode:04o}, so group or others can read "
            f"or write it; the node refuses it: run chmod 600 {key_file}"
        )
    try:
        key_pair = load_identity(key_file)
    except (OSError, ValueError) as exc:
        raise P2PError(
            f"identity key file {key_file} is unreadable or corrupt ({exc}); restore it, or "
            "delete it to start with a new peer id"
        ) from exc
    if key_pair.private_key.get_type() != KeyType.Ed25519:
        raise P2PError(
            f"identity key file {key_file} holds a {key_pair.private_key.get_type().name} "
            "key; this node uses Ed25519 only"
        )
    return key_pair

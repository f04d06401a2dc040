"""``chorus-authority``: the cluster authority's tool for admission (mesh/admission.py).

It makes the authority's key pair, issues member certificates to nodes, and shows what a
certificate says. Nodes trust the authority's public key (``--authority-keys`` /
``CHORUS_AUTHORITY_KEYS``) and each presents its own certificate (``--member-certificate``).

Exit codes: 0 done; 1 ``show`` was given authority keys and the certificate does not pass
with them now; 2 bad usage, unreadable or malformed input, or a refusal (an existing key
file, a key file others can read).
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mesh.admission import AdmissionPolicy, AdmissionReason
from mesh.admission_formats import (
    format_certificate,
    format_private_key,
    format_public_key,
    parse_certificate,
    parse_private_key,
    parse_public_key,
)
from mesh.certificate import authority_public_key, sign_certificate
from mesh.errors import ConfigError
from mesh.peer_id import is_peer_id
from mesh.time_ms import format_time_ms

PROG = "chorus-authority"
EXIT_OK = 0
EXIT_NOT_ADMITTED = 1
EXIT_USAGE = 2
DEFAULT_VALIDITY = "30d"
MAX_KEY_FILE = 4096  # a key file is one line of 44 characters; anything bigger is not one

DESCRIPTION = """\
The cluster authority's tool: create its Ed25519 key, issue member certificates that admit
one peer ID each until they expire, and inspect certificates.

Nodes trust the public key printed by `init` and `pubkey` (--authority-keys, or
CHORUS_AUTHORITY_KEYS); each node presents its own certificate (--member-certificate).
To rotate the authority key: create a new one, add its public key next to the old one on
every node, reissue every certificate with the new key, then remove the old public key.
"""

EPILOG = """\
examples:
  chorus-authority init --key authority.key
  chorus-authority issue --key authority.key --peer 12D3KooW... --valid 30d --out node1.cert
  chorus-authority issue --key authority.key --identity /data/identity.key --out /data/member.cert
  CHORUS_AUTHORITY_KEY=... chorus-authority issue --key-from-env CHORUS_AUTHORITY_KEY --identity ...
  chorus-authority show node1.cert --authority-key BASE64_PUBLIC_KEY

exit codes: 0 done, 1 `show`: the certificate does not verify now, 2 error or refusal
"""

_DURATION = re.compile(r"([1-9][0-9]{0,9})([smhd])", re.ASCII)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class _UsageError(Exception):
    """Bad arguments; reported like every other error, in one line."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the usage block and exits itself; we want one line and exit code 2
    # from main(), like every other error of this tool.
    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser(
        "init",
        help="create a new authority key file (mode 0600) and print its public key",
        description="Create a new authority private key file, readable by its owner only, "
        "and print the public key (base64) that nodes trust. Never overwrites a file.",
    )
    init.add_argument("--key", required=True, metavar="FILE", help="private key file to create")
    init.set_defaults(run=_init)

    pubkey = commands.add_parser(
        "pubkey",
        help="print the public key of an authority key file",
        description="Print the base64 public key of an authority private key file.",
    )
    pubkey.add_argument("--key", required=True, metavar="FILE", help="authority private key file")
    pubkey.set_defaults(run=_pubkey)

    issue = commands.add_parser(
        "issue",
        help="issue a member certificate for one peer ID",
        description="Sign a member certificate admitting one peer ID until it expires.",
    )
    source = issue.add_mutually_exclusive_group(required=True)
    source.add_argument("--key", metavar="FILE", help="authority private key file")
    source.add_argument(
        "--key-from-env",
        metavar="VAR",
        help="read the authority private key from this environment variable instead (for a "
        "Kubernetes init container: a Secret mounted as a file would get the pod's fsGroup "
        "bits, which a key file must not have)",
    )
    subject = issue.add_mutually_exclusive_group(required=True)
    subject.add_argument("--peer", metavar="PEER_ID", help="the peer ID to admit (12D3KooW...)")
    subject.add_argument(
        "--identity",
        metavar="FILE",
        help="a node's identity key file; the peer ID is derived from it, and the file is "
        "created first if it does not exist (for init containers)",
    )
    issue.add_argument(
        "--valid",
        default=DEFAULT_VALIDITY,
        metavar="DURATION",
        help=f"validity from now: 90s, 15m, 12h or 30d (default: {DEFAULT_VALIDITY})",
    )
    issue.add_argument(
        "--out", metavar="FILE", help="write the certificate here (default: standard output)"
    )
    issue.set_defaults(run=_issue)

    show = commands.add_parser(
        "show",
        help="print a certificate's peer ID and expiry, and check it against authority keys",
        description="Print a certificate's peer ID and expiry. With --authority-key, also "
        "check it now (exit code 1 if it does not pass).",
    )
    show.add_argument("certificate", metavar="CERT_FILE", help="certificate file")
    show.add_argument(
        "--authority-key",
        action="append",
        default=[],
        metavar="BASE64",
        help="a trusted authority public key; repeat, or separate with commas, for several",
    )
    show.set_defaults(run=_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    except (_UsageError, ConfigError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


# --- commands ----------------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    path = Path(args.key)
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    _create_key_file(path, format_private_key(seed).encode("ascii"))
    print(format_public_key(authority_public_key(seed)))
    print(f"created authority key {path}; nodes trust the public key above", file=sys.stderr)
    return EXIT_OK


def _pubkey(args: argparse.Namespace) -> int:
    print(format_public_key(authority_public_key(_read_key_file(Path(args.key)))))
    return EXIT_OK


def _issue(args: argparse.Namespace) -> int:
    validity = parse_duration(args.valid)
    if args.key is not None:
        seed = _read_key_file(Path(args.key))
    else:
        seed = _key_from_env(args.key_from_env)
    if args.identity is not None:
        peer_id = _peer_id_of_identity(Path(args.identity))
    else:
        peer_id = args.peer.strip()
        if not is_peer_id(peer_id):
            raise ConfigError(f"--peer {peer_id[:60]!r} is not a libp2p peer ID (12D3KooW...)")
    expires_at_ms = time.time_ns() // 1_000_000 + validity * 1000
    try:
        cert = sign_certificate(seed, peer_id, expires_at_ms)
    except ValueError as exc:
        raise ConfigError(f"cannot issue: {exc}") from None
    text = format_certificate(cert)
    if args.out is None:
        sys.stdout.write(text)
    else:
        _write_public_file(Path(args.out), text)
    where = "" if args.out is None else f" to {args.out}"
    expiry = format_time_ms(cert.expires_at_ms)
    print(f"issued certificate for {peer_id}, valid until {expiry}{where}", file=sys.stderr)
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    path = Path(args.certificate)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read certificate {path}: {exc}") from None
    try:
        cert = parse_certificate(text)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    keys = [
        _authority_key(part)
        for value in args.authority_key
        for part in value.split(",")
        if part.strip()
    ]
    now = time.time()
    left = cert.expires_at_ms / 1000 - now
    state = f"in {_human(left)}" if left > 0 else f"expired {_human(-left)} ago"
    print(f"peer_id:    {cert.peer_id}")
    print(f"expires_at: {format_time_ms(cert.expires_at_ms)} ({state})")
    if not keys:
        return EXIT_OK
    reason = AdmissionPolicy(authority_keys=tuple(keys)).check(cert.peer_id, cert, now)
    if reason is AdmissionReason.ADMITTED:
        print("verifies:   yes")
        return EXIT_OK
    print(f"verifies:   no ({reason})")
    return EXIT_NOT_ADMITTED


# --- helpers -----------------------------------------------------------------------------


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``12h`` or ``30d`` as whole seconds; ConfigError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ConfigError(
            f"--valid {text!r} is not a duration like 90s, 15m, 12h or 30d (a positive whole "
            "number and one unit)"
        )
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _authority_key(text: str) -> bytes:
    try:
        return parse_public_key(text)
    except ConfigError as exc:
        raise ConfigError(f"--authority-key: {exc}") from None


def _create_key_file(path: Path, data: bytes) -> None:
    # O_EXCL refuses an existing file, and with O_NOFOLLOW a planted symlink too (even a
    # dangling one), so the secret lands in a file we made, nowhere else.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask may not strip what O_CREAT's mode keeps
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        # A half-written key would be refused by every later command; remove it.
        path.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None


def _read_key_file(path: Path) -> bytes:
    # Symlinks are followed (a Kubernetes Secret volume is made of them); the mode checked is
    # the one of the file actually opened, via fstat, so nothing can swap it in between.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"cannot read authority key {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"authority key {path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        # As ssh does with private keys: any access for group or others is refused, since
        # whoever reads this file can admit any peer to the cluster.
        if mode & 0o077:
            raise ConfigError(
                f"authority key {path} has mode {mode:04o}, open to group or others; "
                f"run chmod 600 {path}"
            )
        data = os.read(fd, MAX_KEY_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read authority key {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    try:
        if len(data) > MAX_KEY_FILE:
            raise ConfigError("authority private key file is too large to be one")
        return parse_private_key(data.decode("ascii"))
    except (ConfigError, UnicodeDecodeError):
        raise ConfigError(
            f"{path} is not an authority private key file (one line of base64 of a "
            "32-byte Ed25519 seed)"
        ) from None


def _key_from_env(name: str) -> bytes:
    text = os.environ.get(name)
    if not text:
        raise ConfigError(f"environment variable {name} is not set or empty")
    try:
        return parse_private_key(text.strip())
    except ConfigError:
        # Never echo the variable: it holds a secret.
        raise ConfigError(
            f"environment variable {name} is not an authority private key (base64 of a "
            "32-byte Ed25519 seed)"
        ) from None


def _peer_id_of_identity(path: Path) -> str:
    # Imported here: py-libp2p takes a second or so to import, which init, pubkey and show
    # do not need.
    from libp2p.peer.id import ID

    from adapters.p2p_config import P2PError
    from adapters.p2p_identity import load_or_create_identity

    existed = path.exists()
    try:
        key_pair = load_or_create_identity(path)
    except P2PError as exc:
        raise ConfigError(str(exc)) from None
    # The same derivation as P2PNode.peer_id (host.get_id().to_base58()).
    peer_id: str = ID.from_pubkey(key_pair.public_key).to_base58()
    if not existed:
        print(f"created identity key {path} for peer {peer_id}", file=sys.stderr)
    return peer_id


def _write_public_file(path: Path, text: str) -> None:
    # Write then rename, so a node reading the certificate never sees half of one.
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def _human(seconds: float) -> str:
    """A rough span for people: ``29d 23h``, ``5h 3m``, ``42s``."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


if __name__ == "__main__":
    sys.exit(main())

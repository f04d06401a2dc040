"""A cluster authority for local meshes: the devnet's and the simulation toolkit's.

Issue 12 asks that the devnet run with an admission policy, as production should. Each run
folder (or simulation directory) gets its own Ed25519 authority key (``authority.key``,
0600); every node gets its identity key made up front and a member certificate for it
(``member.cert`` in its data dir), and is started with ``--authority-keys`` and
``--member-certificate``. A rogue peer (``devnet.rogue``) has no certificate: it can
connect and be probed, but nothing it says enters anybody's view.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from adapters.authority_cli import _create_key_file, _read_key_file, _write_public_file
from mesh.admission_formats import format_certificate, format_private_key, format_public_key
from mesh.certificate import MemberCertificate, authority_public_key, sign_certificate

__all__ = ["DEVNET_CERT_VALIDITY", "LocalAuthority"]

# Long enough for any soak; a devnet's certificates are reissued at every start anyway.
DEVNET_CERT_VALIDITY = 30 * 86400.0


class LocalAuthority:
    """The authority whose key lives at ``directory/authority.key`` (made if missing)."""

    def __init__(self, directory: Path) -> None:
        self.key_file = Path(directory) / "authority.key"
        if not self.key_file.exists():
            self.key_file.parent.mkdir(parents=True, exist_ok=True)
            _create_key_file(self.key_file, format_private_key(os.urandom(32)).encode())
        self._seed = _read_key_file(self.key_file)
        self.public_key = format_public_key(authority_public_key(self._seed))

    def admit(self, data_dir: Path, *, valid: float = DEVNET_CERT_VALIDITY) -> Path:
        """Certify the node whose data dir is ``data_dir`` (its identity key is made if it
        has none yet, as the node itself would); returns the certificate's path."""
        from libp2p.peer.id import ID

        from adapters.p2p_identity import load_or_create_identity

        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        key_pair = load_or_create_identity(data_dir / "identity.key")
        peer_id = ID.from_pubkey(key_pair.public_key).to_base58()
        path = data_dir / "member.cert"
        _write_public_file(path, format_certificate(self.certify(peer_id, valid=valid)))
        return path

    def certify(self, peer_id: str, *, valid: float = DEVNET_CERT_VALIDITY) -> MemberCertificate:
        """A certificate admitting ``peer_id`` for ``valid`` seconds from now."""
        return sign_certificate(self._seed, peer_id, int((time.time() + valid) * 1000))

    def node_flags(self, data_dir: Path) -> list[str]:
        """The node flags that make it trust this authority and present its certificate."""
        return [
            "--authority-keys",
            self.public_key,
            "--member-certificate",
            str(self.admit(data_dir)),
        ]

"""Network namespaces for a ``--netns`` devnet (re-exported by :mod:`devnet.cluster`): one
namespace and address per node on bridges, so that a partition is a cut the kernel makes.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from devnet.cluster_errors import DevnetError, UsageError
from devnet.cluster_settings import MAX_GROUPS


class NetnsNet:
    """Each node in its own network namespace, all on one bridge, so that a partition can
    be cut where it would be in real life: on the wire, silently.

    Chosen over an admin switch in the nodes because it needs nothing from the node (the
    code under test stays the code that ships) and drops packets without telling anyone,
    as a broken switch would; a switch inside the node would have to fake that. It needs
    root and iproute2 (``ip``, ``tc``); ``up --netns`` fails with one line where they are
    missing, and the default devnet on 127.0.0.1 needs neither.

    Layout: bridge ``dn<tag>br`` with 10.<o>.77.254/24 in the root namespace, namespace
    ``dn<tag>-<i>`` with ``eth0`` = 10.<o>.77.<i>/24 on a veth to the bridge; the tag and
    the octet come from the run folder's path, so two devnets do not collide. A partition
    moves each group but the first onto a bridge of its own (``dn<tag>b<k>``): frames
    between groups are lost without an error, like behind a broken switch; the root
    namespace (the table, the commands) still reaches every node. Only iproute2 is used:
    tc's drop action needs a kernel module that minimal kernels lack.
    """

    def __init__(self, root: Path) -> None:
        digest = hashlib.sha1(str(root).encode()).hexdigest()
        self.tag = digest[:4]
        self.octet = 20 + int(digest[4:6], 16) % 200
        self.bridge = f"dn{self.tag}br"

    def ns(self, index: int) -> str:
        return f"dn{self.tag}-{index}"

    def addr(self, index: int) -> str:
        return f"10.{self.octet}.77.{index}"

    def _veth(self, index: int) -> str:
        return f"dn{self.tag}v{index}"

    @staticmethod
    def _ip(*args: str, check: bool = True) -> None:
        tool = "tc" if args and args[0] == "tc" else "ip"
        argv = list(args[1:]) if tool == "tc" else list(args)
        if shutil.which(tool) is None:
            raise DevnetError(f"{tool} is missing (apt-get install -y iproute2)")
        done = subprocess.run([tool, *argv], capture_output=True, text=True, timeout=10)
        if check and done.returncode != 0:
            raise DevnetError(f"{tool} {' '.join(argv)}: {done.stderr.strip()}")

    def create(self, n: int) -> None:
        if n > 250:
            raise UsageError("a --netns devnet holds at most 250 nodes")
        self.destroy(n)  # leftovers of a crashed run in this folder
        try:
            self._ip("link", "add", self.bridge, "type", "bridge")
            self._ip("addr", "add", f"10.{self.octet}.77.254/24", "dev", self.bridge)
            self._ip("link", "set", self.bridge, "up")
            for i in range(1, n + 1):
                ns, veth = self.ns(i), self._veth(i)
                self._ip("netns", "add", ns)
                self._ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
                self._ip("link", "set", veth, "master", self.bridge, "up")
                self._ip("-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", "eth0")
                self._ip("-n", ns, "link", "set", "eth0", "up")
                self._ip("-n", ns, "link", "set", "lo", "up")
        except DevnetError as exc:
            self.destroy(n)
            raise DevnetError(
                f"cannot create network namespaces ({exc}); they need root and iproute2,"
                " the default devnet on 127.0.0.1 needs neither"
            ) from None

    def destroy(self, n: int) -> None:
        for i in range(1, n + 1):
            # The veth first: deleting a namespace unmounts it at once, but the kernel
            # frees it (and its end of the veth) only once nothing refers to it. After
            # the loss soak three veths outlived their namespaces by over a minute, with
            # no process left inside (orphaned TCP connections still retransmitting
            # across the lost packets, presumably), and the next run in the same folder
            # failed with "File exists". Deleting our end removes both ends now.
            self._ip("link", "del", self._veth(i), check=False)
            self._ip("netns", "del", self.ns(i), check=False)
        for k in range(1, MAX_GROUPS):
            self._ip("link", "del", self._side_bridge(k), check=False)
        self._ip("link", "del", self.bridge, check=False)

    def exec_prefix(self, index: int) -> list[str]:
        return ["ip", "netns", "exec", self.ns(index)]

    def _side_bridge(self, k: int) -> str:
        return f"dn{self.tag}b{k}"

    def cut(self, groups: Sequence[Sequence[int]]) -> None:
        """Move every group but the first onto a bridge of its own: frames between groups
        go nowhere. The root namespace keeps a host route to each moved node through its
        new bridge, so the table and the commands still reach every node."""
        self.heal(sorted(i for group in groups for i in group))
        for k, group in enumerate(groups[1:], start=1):
            bridge = self._side_bridge(k)
            self._ip("link", "add", bridge, "type", "bridge")
            self._ip("link", "set", bridge, "up")
            for i in group:
                self._ip("link", "set", self._veth(i), "master", bridge)
                # Our source address stays the main bridge's: Linux answers ARP for any of
                # its addresses on any interface, so the moved node can still reply.
                self._ip(
                    "route", "add", f"{self.addr(i)}/32", "dev", bridge,
                    "src", f"10.{self.octet}.77.254",
                )  # fmt: skip

    def heal(self, indexes: Iterable[int]) -> None:
        for i in indexes:
            self._ip("route", "del", f"{self.addr(i)}/32", check=False)
            self._ip("link", "set", self._veth(i), "master", self.bridge, check=False)
            # While cut, the node learnt our address at the side bridge's MAC (we answer
            # ARP there); that bridge is gone now, and its replies to us would go to a
            # MAC nobody has until the entry goes stale: the bench's polls of two healed
            # nodes failed for 25 s while the nodes themselves agreed within a second
            # (2026-12-03).
            self._ip("-n", self.ns(i), "neigh", "flush", "all", check=False)
        for k in range(1, MAX_GROUPS):
            self._ip("link", "del", self._side_bridge(k), check=False)

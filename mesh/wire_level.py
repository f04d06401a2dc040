"""Which of our wire forms a node reads, so that its peers know what they may send it.

Every digest we sign says our level (``HealthDigest.wire_level``); a build before it says
nothing, which reads as 0.

- 0: digests name every component (``HealthDigest.components``); PubSub probes are wire
  version 1 (``probes.probe_wire``).
- 2: digests may send the well-known components as numbers (``mesh.component_table``),
  and probes may be wire version 2. Both are a third to a half of what they were.

Newer forms go only to those who read them. A digest reaches every member, so we write
the compact one once every live member of our view says level 2 or more; a probe goes to
the peers it names, so a probe is version 2 when all of them do. A cluster upgraded node
by node therefore keeps every digest whole and every probe answered on the way, and drops
to the smaller forms by itself when the last old node is gone. A member that claims a low
level (or a stranger, in an open cluster) can only keep the larger forms in use: bytes,
bounded by the publish budget, and nothing about anyone's health.
"""

from __future__ import annotations

__all__ = ["COMPACT", "WIRE_LEVEL"]

WIRE_LEVEL = 2  # what this build reads
COMPACT = 2  # the level that reads numbered components and probe wire version 2

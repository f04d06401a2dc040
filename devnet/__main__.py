"""``python -m devnet``: see devnet/commands.py."""

from __future__ import annotations

import sys

from devnet.commands import main

if __name__ == "__main__":
    sys.exit(main())

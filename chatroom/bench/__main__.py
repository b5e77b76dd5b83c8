"""``python -m chatroom.bench``: the same as the ``chatroom-bench`` command."""

from __future__ import annotations

import sys

from chatroom.bench.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())

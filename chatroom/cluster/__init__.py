"""Cluster mode: several servers that are one chat, through Redis (docs/cluster.md).

Importing this package imports nothing of Redis; :mod:`chatroom.cluster.engine` does,
and only a server started with ``--cluster`` loads it.
"""

from __future__ import annotations

import re

__all__ = ["NODE_ID", "ClusterUnavailable"]

# Node ids go into Redis keys beside a '/' and into log lines: plain words only.
NODE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class ClusterUnavailable(Exception):
    """Redis cannot be reached, or refuses this node (a running node has its id)."""

"""The event loop the server runs on: asyncio's, with waits under a few ms kept exact.

The hub paces its flushes with waits of a few hundred microseconds (see
``FLUSH_PACING``). asyncio's epoll selector rounds every timeout up to a whole
millisecond, because ``epoll_wait`` counts in milliseconds, so such a wait became 1 ms
whenever no input came first. ``select()`` takes microseconds, and an epoll descriptor
is readable while any socket it watches is ready: waiting on that one descriptor keeps
the wait exact, then epoll is asked, without waiting, what is ready.
"""

from __future__ import annotations

import asyncio
import select
import selectors

__all__ = ["PreciseEpollSelector", "new_event_loop"]

# Below this a millisecond of rounding is a large part of the wait; above it, epoll's own
# timeout is close enough and costs one system call less.
EXACT_WAIT_BELOW_S = 0.005
# select() cannot watch a descriptor past FD_SETSIZE (1,024 on Linux); the epoll
# descriptor is opened with the loop, long before the connections, so it never is.
_FD_SETSIZE = 1024


if hasattr(selectors, "EpollSelector"):

    class PreciseEpollSelector(selectors.EpollSelector):
        """An epoll selector whose short timeouts are not rounded up to 1 ms."""

        def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
            if timeout is not None and 0 < timeout < EXACT_WAIT_BELOW_S:
                epoll_fd = self.fileno()
                if epoll_fd < _FD_SETSIZE:
                    select.select([epoll_fd], [], [], timeout)
                    timeout = 0
            return super().select(timeout)

    def new_event_loop() -> asyncio.AbstractEventLoop:
        """asyncio's selector loop on a :class:`PreciseEpollSelector`."""
        return asyncio.SelectorEventLoop(PreciseEpollSelector())

else:  # not Linux: asyncio's own loop, waits as its selector keeps them

    def new_event_loop() -> asyncio.AbstractEventLoop:
        """asyncio's default event loop (there is no epoll here)."""
        return asyncio.new_event_loop()

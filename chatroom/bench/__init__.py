"""``chatroom-bench``: load a real server over loopback and report what each delivery costs.

Workloads:

``fanout``
    One room, R receivers and S senders. Each sender keeps a bounded window of messages
    it has sent but not yet seen come back (its own copy is the acknowledgement), so the
    server runs as fast as it can. Reports deliveries per second, latency from send to
    receive, lost messages, server CPU per delivery and peak RSS.
``latency``
    The same room at a fixed offered rate (by default half the measured maximum).
``idle``
    C clients connect, join and stay silent: server RSS per connection, time to connect.
``join-storm``
    C connected clients send ``hello`` at the same instant: time until all are welcomed.

The server runs in a subprocess pinned to core 0; clients are plain non-blocking sockets
driven by epoll in load processes pinned to core 1, so the Python client library's cost
does not limit the figures. Both CPU figures are printed side by side: when the load
processes are the ones at 100 %, the result says so instead of passing for the server's.
Every text carries its send time (CLOCK_MONOTONIC, shared by all processes on the host).

``--transport`` chooses what the members speak: ``ndjson`` (the default, as
``chatroom-tui``), ``websocket`` (the same frames at ``/ws``, as the web app), ``irc``
(the server's IRC gateway, which the bench then starts: members in ``#lobby``), a list
such as ``ndjson,irc`` or ``both`` (ndjson,websocket: every run once per transport,
interleaved, side by side with the ratio) or, for ``fanout``, ``mixed`` (half the room
on NDJSON, half on WebSocket).

    chatroom-bench                     # every workload, medians of 3 runs
    chatroom-bench fanout --receivers 500 --baseline
    chatroom-bench fanout idle --transport both
    chatroom-bench fanout --receivers 500 --transport ndjson,irc
    chatroom-bench --json > results.json
    chatroom-bench fanout latency --cluster 0,1,2 --observer-node

``--cluster N`` runs chatroom as N nodes sharing a redis-server the bench starts for each
run, members spread round-robin over the nodes; latency is split into pairs on one node
and pairs across nodes, and the report adds each node's CPU, Redis CPU per appended
event and (``--observer-node``) what a node with no members pays per applied event.

The package, from the command line down:

``cli``, ``options``   the arguments, checked, into ``Options``
``driver``             every workload, size and server in turn
``server_proc``        the server under test: chatroom, the naive baseline, the floor
``cluster``            ``--cluster``: a redis-server and chatroom nodes, their CPU per event
``room``               the fanout and latency workloads
``silent``             the idle and join-storm workloads
``load``               the load processes, and the bench's side of their pipes
``engine``             inside a load process: its sockets in one epoll loop, phases, counts
``wire``               what a load client says and reads: chatroom's JSON lines
``websocket``          the same over a WebSocket: the upgrade, masks, a frame reader
``irc``                IRC users in ``#lobby``: registration, PRIVMSG, a line scanner
``measure``, ``host``  CPU and memory figures, /proc, core pinning
``report``             medians, targets, tables
"""

from __future__ import annotations

from chatroom.bench.cli import main
from chatroom.bench.driver import run
from chatroom.bench.host import machine_info
from chatroom.bench.options import BenchError, Options
from chatroom.bench.report import print_report

__all__ = ["BenchError", "Options", "machine_info", "main", "print_report", "run"]

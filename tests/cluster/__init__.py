"""Test kit for cluster mode: real redis-server and node processes, a fault proxy in
front of Redis, recording clients and a checker of what they received against the
Redis event stream.

- ``redis_server.RedisServer`` (fixtures ``start_redis``, ``redis_server``): kill, stop,
  restart (``empty=True``: data loss), freeze/thaw, ``stream()``.
- ``fault_proxy.FaultProxy`` (fixture ``start_proxy``): give a node ``proxy.url``
  instead of Redis's, then ``delay``, ``blackhole``, ``cut``, ``heal``.
- ``node.Node`` (fixture ``start_node``): ``start_node("n1", redis_url=...)``; kill,
  terminate, freeze/thaw, restart (same id and data, new port).
- ``recorder.RecordingClient`` (fixture ``recorders``): connect, join, part, say, dm,
  reconnect (resume, rejoin, resend), ``wait_for``, ``wait_acked``, ``record()``.
- ``checker.check(stream, records)``: the list of problems, empty when all is well.

A test ends with::

    entries = await redis_server.stream()
    assert check([e["event"] for e in entries], [c.record() for c in clients]) == []
"""

"""Test kit for cluster mode: real redis-server and node processes, a fault proxy in
front of Redis, recording clients and a checker of what they received against the
Redis event stream."""

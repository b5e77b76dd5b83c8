"""The IRC client protocol, sans-I/O: lines, names and how chat events read as IRC.

- :mod:`chatroom.irc.lines`: bytes ⇄ IRC lines (tags, source, command, params), limits.
- :mod:`chatroom.irc.names`: member and room names ⇄ IRC nicks and channels; text split
  to fit a line.
- :mod:`chatroom.irc.render`: the hub's events and the session's replies as IRC lines,
  one :class:`~chatroom.irc.render.IrcWire` per set of capabilities.

The transport that uses them is :mod:`chatroom.transports.irc`.
"""

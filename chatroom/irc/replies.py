"""What the session's errors mean to an IRC client: numerics, by the command that caused
them. Sans-I/O: the transport writes what these return."""

from __future__ import annotations

from chatroom.framing import ErrorCode

__all__ = ["CLOSING_ERRORS", "SILENT", "error_numeric"]

# Errors that end the connection before a session exists: written as ERROR.
CLOSING_ERRORS = frozenset(
    {ErrorCode.SERVER_FULL, ErrorCode.TOO_MANY_CONNECTIONS, ErrorCode.HANDSHAKE_TIMEOUT}
)
# Returned for an error IRC answers with nothing at all.
SILENT: tuple[str, ...] = ()


# Why a message to a channel was refused, in 404's text.
_CANNOT_SEND = {
    ErrorCode.MUTED: "you are muted",
    ErrorCode.MODERATED: "the channel is moderated (+m)",
    ErrorCode.SLOW_MODE: "slow mode: wait a little",
}
# Refused JOINs: the numeric and the mode that refused it.
_CANNOT_JOIN = {
    ErrorCode.INVITE_ONLY: ("473", "Cannot join channel (+i)"),
    ErrorCode.BAD_KEY: ("475", "Cannot join channel (+k)"),
    ErrorCode.BANNED: ("474", "Cannot join channel (+b)"),
    ErrorCode.REGISTERED_ONLY: ("477", "Cannot join channel (+R): log in to an account"),
}


def error_numeric(
    code: str, message: str, command: str, target: str, *, registered: bool, nick: str = ""
) -> tuple[str, ...] | None:
    """The numeric and its parameters (after the client's nick) for a session error
    caused by ``command`` about ``target`` (a channel, or a nick) and ``nick`` (the
    member a ``KICK``, ``MODE`` or ``INVITE`` acts on); :data:`SILENT` for none; None
    when no numeric fits (the transport sends the message as a NOTICE)."""
    if command == "NOTICE":
        return SILENT  # RFC 2812: a NOTICE is never answered
    if code == ErrorCode.AUTH_FAILED:
        return ("464", "Password incorrect")
    if code == ErrorCode.NAME_TAKEN:
        return ("433", target, "Nickname is already in use")
    if code == ErrorCode.NAME_REGISTERED:
        # What ergo answers for a reserved nick: clients then try their next nick.
        return ("433", target, "Nickname is registered: log in with SASL to use it")
    if code == ErrorCode.BANNED and command in ("NICK", "USER") and not registered:
        return ("465", f"You are banned from this server: {message}")
    if command == "JOIN" and code in _CANNOT_JOIN:
        return (_CANNOT_JOIN[ErrorCode(code)][0], target, _CANNOT_JOIN[ErrorCode(code)][1])
    if code in _CANNOT_SEND and target.startswith("#"):
        return ("404", target, f"Cannot send to channel: {_CANNOT_SEND[ErrorCode(code)]}")
    if code == ErrorCode.FORBIDDEN and target.startswith("#"):
        return ("482", target, f"You're not channel operator: {message}")
    if code == ErrorCode.NO_SUCH_MEMBER and command == "KICK":
        return ("441", nick, target, "They aren't on that channel")
    if code == ErrorCode.NO_SUCH_MEMBER and nick:
        return ("401", nick, "No such nick/channel")
    if code == ErrorCode.INVALID_NAME and command in ("NICK", "USER"):
        return ("432", target, f"Erroneous nickname: {message}")
    if code in (ErrorCode.INVALID_NAME, ErrorCode.INVALID_ROOM):
        return ("479", target, f"Illegal channel name: {message}")
    if code == ErrorCode.NOT_JOINED:
        if command == "PRIVMSG":
            return ("404", target, "Cannot send to channel")
        if not registered:
            return ("451", "You have not registered")
        return ("442", target, "You're not on that channel")
    if code == ErrorCode.NO_SUCH_MEMBER:
        return ("401", target, "No such nick/channel")
    if code == ErrorCode.TOO_MANY_ROOMS:
        return ("405", target, "You have joined too many channels")
    if code == ErrorCode.TOO_LONG and command == "TOPIC":
        return ("417", f"Topic too long: {message}")
    if code == ErrorCode.BAD_REQUEST and command == "JOIN":
        return SILENT  # already there: IRC servers ignore the JOIN
    return None

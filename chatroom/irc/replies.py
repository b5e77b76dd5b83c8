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


def error_numeric(
    code: str, message: str, command: str, target: str, *, registered: bool
) -> tuple[str, ...] | None:
    """The numeric and its parameters (after the client's nick) for a session error
    caused by ``command`` about ``target``; :data:`SILENT` for none; None when no numeric
    fits (the transport sends the message as a NOTICE)."""
    if command == "NOTICE":
        return SILENT  # RFC 2812: a NOTICE is never answered
    if code == ErrorCode.AUTH_FAILED:
        return ("464", "Password incorrect")
    if code == ErrorCode.NAME_TAKEN:
        return ("433", target, "Nickname is already in use")
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

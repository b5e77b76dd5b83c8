"""HOST:PORT parsing and the default port, shared by chatroom-server and chatroom-tui."""

from __future__ import annotations

__all__ = ["DEFAULT_PORT", "AddressError", "parse_address"]

DEFAULT_PORT = 5000


class AddressError(ValueError):
    """A HOST:PORT string that cannot be used."""


def parse_address(
    text: str, *, default_host: str = "", default_port: int = DEFAULT_PORT
) -> tuple[str, int]:
    """Split ``HOST:PORT``, ``[V6]:PORT``, ``HOST``, ``:PORT`` or ``PORT``.

    Raises:
        AddressError: the port is not a number from 1 to 65535, or brackets are unbalanced.
    """
    text = text.strip()
    host, port_text = default_host, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise AddressError(f"{text!r}: missing ']' after an IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise AddressError(f"{text!r}: expected ':PORT' after ']'")
        port_text = rest[1:]
    elif text.isdigit():
        port_text = text
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        host = host or default_host
    elif ":" in text:
        host = text  # a bare IPv6 address
    else:
        host = text
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise AddressError(f"{text!r}: the port must be a number from 0 to 65535")
    return host, int(port_text)

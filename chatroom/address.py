"""HOST:PORT parsing and the default port, shared by chatroom-server and chatroom-tui.

A client may be given several servers of one cluster as ``HOST:PORT,HOST:PORT``;
:func:`parse_address_list` reads that list.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_PORT",
    "AddressError",
    "format_address",
    "parse_address",
    "parse_address_list",
]

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


def parse_address_list(
    text: str, *, default_host: str = "", default_port: int = DEFAULT_PORT
) -> list[tuple[str, int]]:
    """Split a comma-separated list of addresses, each as :func:`parse_address` reads it.

    The order is kept (the first is the preferred server); an address given twice is
    kept once, at its first place, so a round over the list tries each server once.

    Raises:
        AddressError: an item is empty or unusable; the message names the item.
    """
    items = text.split(",")
    found: list[tuple[str, int]] = []
    for number, item in enumerate(items, 1):
        if not item.strip():
            where = f" (address {number} of {len(items)})" if len(items) > 1 else ""
            raise AddressError(f"{text!r}: an empty address{where}")
        address = parse_address(item, default_host=default_host, default_port=default_port)
        if address not in found:
            found.append(address)
    return found


def format_address(host: str, port: int) -> str:
    """``HOST:PORT`` as people write it: an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

"""Address lists for a cluster: ``HOST:PORT,HOST:PORT`` as chatroom-tui reads them."""

from __future__ import annotations

import pytest

from chatroom.address import AddressError, format_address, parse_address_list


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host1:5000", [("host1", 5000)]),
        ("host1:5000,host2:5001", [("host1", 5000), ("host2", 5001)]),
        # Order is preference: never sorted, never shuffled.
        (
            "z.example:1,a.example:2,m.example:3",
            [("z.example", 1), ("a.example", 2), ("m.example", 3)],
        ),
        (" host1:5000 , host2 ", [("host1", 5000), ("host2", 5000)]),
        ("[::1]:5000,127.0.0.1:5001", [("::1", 5000), ("127.0.0.1", 5001)]),
        ("[fe80::1],6000", [("fe80::1", 5000), ("", 6000)]),
        ("host1:5000,host2:5000,host1:5000", [("host1", 5000), ("host2", 5000)]),
    ],
)
def test_good_lists_keep_their_order(text: str, expected: list[tuple[str, int]]) -> None:
    assert parse_address_list(text) == expected


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("host1:5000,host2:port", "'host2:port'"),
        ("host1:5000,[::1:5000", "'[::1:5000'"),
        ("[::1]x,host2:5000", "'[::1]x'"),
        ("host1:5000,host2:99999", "'host2:99999'"),
        ("host1:5000,,host2:5000", "address 2 of 3"),
        ("host1:5000,", "address 2 of 2"),
        ("", "empty"),
    ],
)
def test_a_bad_item_is_named_in_the_error(text: str, named: str) -> None:
    with pytest.raises(AddressError) as raised:
        parse_address_list(text)
    assert named in str(raised.value)


def test_default_host_fills_items_without_one() -> None:
    assert parse_address_list(":5000,h:1", default_host="localhost") == [
        ("localhost", 5000),
        ("h", 1),
    ]


@pytest.mark.parametrize(
    ("host", "port", "text"),
    [("host1", 5000, "host1:5000"), ("::1", 5000, "[::1]:5000"), ("10.0.0.1", 1, "10.0.0.1:1")],
)
def test_format_address_brackets_ipv6(host: str, port: int, text: str) -> None:
    assert format_address(host, port) == text

"""moderation.py and accounts.py without sockets: ranks, bans, mutes, modes, address
keys, the login throttle on an injected clock, the store and the hashing cost."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import extract_parameters

from chatroom.accounts import (
    DEFAULT_COST,
    OWASP_MINIMUM,
    AccountStore,
    Argon2Cost,
    LoginThrottle,
    NameRegistered,
    check_password,
)
from chatroom.framing import ErrorCode, ProtocolError
from chatroom.moderation import (
    MAX_DURATION_S,
    BannedError,
    Identity,
    Rank,
    Restrictions,
    RoomModes,
    Sanction,
    address_key,
    check_duration,
    may_act,
    may_grant,
)
from chatroom.names import name_keys

CHEAP = Argon2Cost(memory_kib=64, time_cost=1, parallelism=1)


def _who(name: str, account: str | None = None, address: str = "") -> Identity:
    return Identity(name, name_keys(name), account, address)


# ------------------------------------------------------------------ ranks


@pytest.mark.parametrize(
    ("actor", "target", "allowed"),
    [
        (Rank.OP, Rank.VOICE, True),
        (Rank.OP, Rank.OP, False),
        (Rank.OP, Rank.MODERATOR, False),
        (Rank.VOICE, Rank.NONE, False),
        (Rank.MODERATOR, Rank.OP, True),
        (Rank.MODERATOR, Rank.ADMIN, False),
        (Rank.ADMIN, Rank.MODERATOR, True),
    ],
)
def test_nobody_acts_on_an_equal_or_higher_rank(actor: Rank, target: Rank, allowed: bool) -> None:
    """Acting takes op, and a rank above the target's."""
    assert may_act(actor, target) is allowed


def test_nobody_grants_above_their_own_rank() -> None:
    """An op may make an op or a voice, never more; a moderator no admin."""
    assert may_grant(Rank.OP, Rank.NONE, Rank.OP)
    assert not may_grant(Rank.OP, Rank.NONE, Rank.MODERATOR)
    assert not may_grant(Rank.MODERATOR, Rank.NONE, Rank.ADMIN)
    assert may_grant(Rank.ADMIN, Rank.NONE, Rank.ADMIN)


@pytest.mark.parametrize("value", [0, -1, -(2**63), MAX_DURATION_S + 1, 10**30])
def test_out_of_range_durations_are_bad_requests(value: int) -> None:
    """Zero, negative and huge durations are refused; None is until lifted."""
    with pytest.raises(ProtocolError) as refused:
        check_duration(value)
    assert refused.value.code == ErrorCode.BAD_REQUEST
    assert check_duration(None) is None and check_duration(600) == 600


# ------------------------------------------------------------------ addresses


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::1", "::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("192.0.2.7", "192.0.2.7"),
        ("127.0.0.1", "127.0.0.1"),
        ("fe80::1%eth0", "fe80::/64"),
        ("local", "local"),
    ],
)
def test_address_keys_take_an_ipv6_64(host: str, key: str) -> None:
    """An IPv6 address counts by its /64; IPv4 (mapped or not) by itself; loopback as any."""
    assert address_key(host) == key


def test_a_server_ban_holds_the_whole_ipv6_64() -> None:
    """Another address in the banned /64, under another name, is still banned; one in
    the next /64 is not; staff are not held by an address ban."""
    rules = Restrictions()
    ban = Sanction("", "bob", name_keys("bob"), None, address_key("2001:db8::1"), None)
    rules.add(rules.bans, ban)
    same = _who("robert", address=address_key("2001:db8::dead:beef"))
    other = _who("robert", address=address_key("2001:db8:0:1::1"))
    assert rules.ban_on("", same, 0.0) is ban
    assert rules.ban_on("", other, 0.0) is None
    assert rules.ban_on("", same, 0.0, staff=True) is None


# ------------------------------------------------------------------ bans, mutes, modes


@pytest.mark.parametrize("name", ["bob", "BOB", "b\u043eb", "\uff42\uff4f\uff42", "b\u043eB"])
def test_a_room_ban_covers_look_alikes(name: str) -> None:
    """Cyrillic letters, fullwidth forms and case do not get round a ban."""
    rules = Restrictions()
    rules.add(rules.bans, Sanction("dev", "bob", name_keys("bob"), until=100.0))
    with pytest.raises(BannedError) as refused:
        rules.check_enter("dev", _who(name), Rank.NONE, None, 50.0)
    assert refused.value.ban.until == 100.0
    rules.check_enter("dev", _who(name), Rank.NONE, None, 100.0)  # over
    rules.check_enter("ops", _who(name), Rank.NONE, None, 50.0)  # another room


def test_a_ban_on_an_account_holds_under_any_name() -> None:
    """An account's ban holds whatever name it logs in under."""
    rules = Restrictions()
    rules.add(rules.bans, Sanction("dev", "bob", name_keys("bob"), account="bob"))
    with pytest.raises(BannedError):
        rules.check_enter("dev", _who("zed", account="bob"), Rank.NONE, None, 0.0)


def test_mutes_moderated_and_slow_mode() -> None:
    """Muted members get muted; moderated rooms let voice and op speak; slow mode allows
    one message per slow_s, ops exempt."""
    rules = Restrictions()
    bob = _who("bob")
    rules.add(rules.mutes, Sanction("dev", "bob", bob.keys, until=10.0))
    with pytest.raises(ProtocolError) as refused:
        rules.check_say("dev", bob, "bob", Rank.NONE, 5.0)
    assert refused.value.code == ErrorCode.MUTED
    rules.check_say("dev", bob, "bob", Rank.NONE, 10.0)
    rules.modes["dev"] = RoomModes(moderated=True, slow_s=30)
    with pytest.raises(ProtocolError) as refused:
        rules.check_say("dev", bob, "bob", Rank.NONE, 11.0)
    assert refused.value.code == ErrorCode.MODERATED
    rules.check_say("dev", bob, "bob", Rank.VOICE, 11.0)
    with pytest.raises(ProtocolError) as refused:
        rules.check_say("dev", bob, "bob", Rank.VOICE, 40.0)
    assert refused.value.code == ErrorCode.SLOW_MODE
    rules.check_say("dev", bob, "bob", Rank.VOICE, 41.0)
    for _ in range(3):
        rules.check_say("dev", bob, "bob", Rank.OP, 41.0)


def test_join_modes_and_invites() -> None:
    """registered_only, invite_only and key refuse with their codes; an invite lets one
    member in once; ops pass."""
    rules = Restrictions(modes={"dev": RoomModes(invite_only=True, key="k")})
    carol = _who("carol")
    for who, key, code in (
        (carol, "k", ErrorCode.INVITE_ONLY),
        (carol, None, ErrorCode.INVITE_ONLY),
    ):
        with pytest.raises(ProtocolError) as refused:
            rules.check_enter("dev", who, Rank.NONE, key, 0.0)
        assert refused.value.code == code
    rules.check_enter("dev", carol, Rank.OP, None, 0.0)
    rules.invite("dev", carol)
    rules.check_enter("dev", carol, Rank.NONE, None, 0.0)
    rules.entered("dev", carol)
    with pytest.raises(ProtocolError):
        rules.check_enter("dev", carol, Rank.NONE, None, 0.0)
    rules.modes["dev"] = RoomModes(key="k")
    with pytest.raises(ProtocolError) as refused:
        rules.check_enter("dev", carol, Rank.NONE, "K", 0.0)
    assert refused.value.code == ErrorCode.BAD_KEY
    rules.modes["dev"] = RoomModes(registered_only=True)
    with pytest.raises(ProtocolError) as refused:
        rules.check_enter("dev", carol, Rank.NONE, None, 0.0)
    assert refused.value.code == ErrorCode.REGISTERED_ONLY
    rules.check_enter("dev", _who("carol", account="carol"), Rank.NONE, None, 0.0)


# ------------------------------------------------------------------ the throttle


def test_throttle_slows_guessing_and_never_locks_out() -> None:
    """Three free failures from an address; then a window that doubles with each
    failure, capped, and forgotten after an hour; other addresses are untouched; the
    account's wrong answers slow down, capped too."""
    throttle = LoginThrottle()
    now = 1000.0
    for _ in range(LoginThrottle.FREE_FAILURES):
        assert throttle.blocked_for("a", now) == 0
        throttle.failed("alice", "a", now)
    assert throttle.blocked_for("a", now) == LoginThrottle.WINDOW_BASE_S
    assert throttle.blocked_for("b", now) == 0
    windows = []
    for _ in range(20):
        now += throttle.blocked_for("a", now)
        throttle.failed("alice", "a", now)
        windows.append(throttle.blocked_for("a", now))
    assert windows[:3] == [10.0, 20.0, 40.0]
    assert max(windows) == LoginThrottle.MAX_WINDOW_S
    assert throttle.failure_delay("alice", 0.5, now) == LoginThrottle.MAX_ACCOUNT_DELAY_S
    assert throttle.failure_delay(None, 0.5, now) == 0.5
    later = now + LoginThrottle.FORGET_S
    assert throttle.blocked_for("a", later) == 0
    assert throttle.failure_delay("alice", 0.5, later) == 0.5


def test_attempts_at_once_are_checked_a_few_at_a_time() -> None:
    """Guesses sent together are not all checked before the first failure counts: past
    MAX_CHECKING in flight from one address, the rest are refused unchecked; another
    address is not held up."""
    throttle = LoginThrottle()
    admitted = [throttle.begin("a", 0.0) for _ in range(10)]
    assert admitted.count(True) == LoginThrottle.MAX_CHECKING
    assert throttle.begin("b", 0.0)
    throttle.end("a")
    assert throttle.begin("a", 0.0)


# ------------------------------------------------------------------ the store


def test_default_hashing_cost_meets_owasp_minimum(tmp_path: Path) -> None:
    """The default Argon2id parameters are at least OWASP's m=19 MiB, t=2, p=1, and the
    hashes written say so."""
    assert DEFAULT_COST.at_least(OWASP_MINIMUM)
    assert Argon2Cost(memory_kib=19 * 1024, time_cost=2, parallelism=1) == OWASP_MINIMUM
    store = AccountStore(tmp_path / "accounts.sqlite3")
    store.register("alice", "correct horse")
    stored = store._db.execute("SELECT hash FROM accounts").fetchone()[0]
    params = extract_parameters(stored)
    assert stored.startswith("$argon2id$")
    assert Argon2Cost(params.memory_cost, params.time_cost, params.parallelism).at_least(
        OWASP_MINIMUM
    )
    store.close()


def test_passwords_are_nfc_and_bounded() -> None:
    """8 to 256 characters after NFC: composed and decomposed spellings are one."""
    assert check_password("cafe\u0301 noir") == "caf\u00e9 noir"
    for bad in ("seven77", "x" * 257, "e\u0301" * 4):
        with pytest.raises(ProtocolError):
            check_password(bad)


def test_store_registers_once_per_look_alike_and_verifies(tmp_path: Path) -> None:
    """An account takes its name's look-alikes; verify accepts only its password; the
    dummy check of a missing account says no."""
    store = AccountStore(tmp_path / "accounts.sqlite3", cost=CHEAP)
    store.register("alice", "correct horse")
    store.remember("alice")
    with pytest.raises(NameRegistered):
        store.register("\u0430lice", "another one")
    assert store.account_for(name_keys("ALICE")) == "alice"
    assert store.verify("alice", "correct horse")
    assert not store.verify("alice", "wrong horse")
    assert not store.verify(None, "correct horse")
    assert not store.verify("alice", "x" * 300)
    store.close()


def test_staff_grants_from_another_connection_are_seen(tmp_path: Path) -> None:
    """A grant committed by another process (here: another connection) shows at once."""
    path = tmp_path / "accounts.sqlite3"
    server_side = AccountStore(path, cost=CHEAP)
    server_side.register("alice", "correct horse")
    assert server_side.staff_role("alice") is None
    admin = AccountStore(path, cost=CHEAP)
    admin.grant("alice", "moderator")
    assert server_side.staff_role("alice") == "moderator"
    admin.grant("alice", None)
    assert server_side.staff_role("alice") is None
    admin.close()
    server_side.close()

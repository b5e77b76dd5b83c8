"""Who outranks whom, and what bans, mutes and modes allow: the rules, without I/O.

Everything here takes the time as a parameter and keeps no clock, socket or database:
:mod:`chatroom.authority` applies these rules to the hub and the account store.

Ranks, lowest first: none, voice, op (a room's), moderator, admin (the server's staff).
No one acts on someone of equal or higher rank or grants a rank above their own; acting
at all takes op.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum

from chatroom.framing import ErrorCode, ProtocolError

__all__ = [
    "LOBBY",
    "MAX_DURATION_S",
    "MAX_KEY_CHARS",
    "MAX_REASON_CHARS",
    "MAX_SLOW_S",
    "ROOM_ROLES",
    "STAFF_ROLES",
    "BannedError",
    "Identity",
    "Rank",
    "Restrictions",
    "RoomModes",
    "Sanction",
    "address_key",
    "check_duration",
    "check_reason",
    "may_act",
    "may_grant",
    "room_key",
]

LOBBY = "lobby"
# Longer than anyone means by a timed ban: past it, a ban is "until lifted" (no
# duration_s), not a number so big it overflows a timestamp.
MAX_DURATION_S = 10 * 366 * 86400
# A reason is a line, like a topic (IRC's KICKLEN is commonly 255 to 390).
MAX_REASON_CHARS = 300
# A day between messages is already a read-only room.
MAX_SLOW_S = 86400
# A room key is typed by people, like IRC's +k (commonly at most 23 to 50 characters).
MAX_KEY_CHARS = 64


class Rank(IntEnum):
    """A member's standing in a room: the higher of its staff role and its room role."""

    NONE = 0
    VOICE = 1
    OP = 2
    MODERATOR = 3
    ADMIN = 4


STAFF_ROLES = {"admin": Rank.ADMIN, "moderator": Rank.MODERATOR}
ROOM_ROLES = {"op": Rank.OP, "voice": Rank.VOICE, "none": Rank.NONE}


def room_key(room: str) -> str:
    """Rooms compare as the hub compares them: case-folded."""
    return unicodedata.normalize("NFC", room).casefold()


def may_act(actor: Rank, target: Rank) -> bool:
    """Whether ``actor`` may kick, ban, mute or change the role of ``target``."""
    return actor >= Rank.OP and actor > target


def may_grant(actor: Rank, target: Rank, role: Rank) -> bool:
    """Whether ``actor`` may give ``target`` the room role ``role``: never above its own."""
    return may_act(actor, target) and role <= actor


def check_duration(value: int | None) -> int | None:
    """A ban or mute's ``duration_s``: None (until lifted) or 1 to MAX_DURATION_S.

    Raises:
        ProtocolError: ``bad_request`` for zero, negative or huge values (the frame's
            reader already refused anything that is not an integer).
    """
    if value is None:
        return None
    if not 1 <= value <= MAX_DURATION_S:
        raise ProtocolError(
            ErrorCode.BAD_REQUEST,
            f"duration_s is 1 to {MAX_DURATION_S} seconds, or left out for until lifted",
        )
    return value


def check_reason(text: str) -> str:
    """Raises ``too_long`` past MAX_REASON_CHARS."""
    if len(text) > MAX_REASON_CHARS:
        raise ProtocolError(
            ErrorCode.TOO_LONG, f"a reason has at most {MAX_REASON_CHARS} characters"
        )
    return text


def address_key(host: str) -> str:
    """The part of an address a server ban holds: an IPv4 address, or an IPv6 address's
    /64 (one host's share under SLAAC, so a new address in it is the same machine).
    An IPv4-mapped IPv6 address is its IPv4 address. Loopback is not special."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a member is, as bans and mutes see it: its name's keys (look-alikes
    included), its account, its address key."""

    name: str
    keys: frozenset[str]
    account: str | None = None
    address: str = ""


@dataclass(slots=True)
class Sanction:
    """A ban or a mute: in ``room`` (a room key; ``""``: the whole server), on a name's
    keys, an account and (server bans) an address key, until ``until`` (epoch seconds;
    None: until lifted)."""

    room: str
    name: str
    keys: frozenset[str]
    account: str | None = None
    address: str | None = None
    until: float | None = None
    by: str = ""
    reason: str = ""

    def covers(self, who: Identity, *, by_address: bool = True) -> bool:
        if self.keys & who.keys:
            return True
        if self.account is not None and self.account == who.account:
            return True
        return by_address and self.address is not None and self.address == who.address

    def over(self, now: float) -> bool:
        return self.until is not None and now >= self.until

    def same_target(self, keys: frozenset[str], account: str | None) -> bool:
        return bool(self.keys & keys) or (account is not None and self.account == account)


@dataclass(slots=True)
class RoomModes:
    """A room's modes; the defaults are an open room."""

    invite_only: bool = False
    key: str = ""
    moderated: bool = False
    registered_only: bool = False
    slow_s: int = 0

    @property
    def default(self) -> bool:
        return self == RoomModes()


@dataclass
class Restrictions:
    """Every room's bans, mutes, modes, invites and slow-mode clocks, and the server's bans.

    The checks raise the refusal the wire spells out; nothing else changes then.
    """

    bans: list[Sanction] = field(default_factory=list)
    mutes: list[Sanction] = field(default_factory=list)
    modes: dict[str, RoomModes] = field(default_factory=dict)
    # room key -> keys and accounts invited (an invite is used up by the join it allows).
    invites: dict[str, set[str]] = field(default_factory=dict)
    # (room key, member token) -> when it last spoke, on the session clock.
    last_said: dict[tuple[str, str], float] = field(default_factory=dict)

    # ------------------------------------------------------------------ the checks

    def ban_on(
        self, room: str, who: Identity, now: float, *, staff: bool = False
    ) -> Sanction | None:
        """The ban keeping ``who`` out of ``room`` (``""``: the server), if any. Staff are
        not held by an address ban, which may be a whole office behind one NAT."""
        for ban in self.bans:
            if ban.room == room and not ban.over(now) and ban.covers(who, by_address=not staff):
                return ban
        return None

    def check_enter(
        self, room: str, who: Identity, rank: Rank, key: str | None, now: float
    ) -> None:
        """May ``who`` (of ``rank`` there) join ``room`` with ``key``?

        Raises:
            ProtocolError: ``banned``, ``registered_only``, ``invite_only``, ``bad_key``.
        """
        ban = self.ban_on(room, who, now)
        if ban is not None and rank < Rank.MODERATOR:
            raise BannedError(ban)
        if rank >= Rank.OP:
            return
        modes = self.modes.get(room)
        if modes is None:
            return
        if modes.registered_only and who.account is None:
            raise ProtocolError(ErrorCode.REGISTERED_ONLY, "only registered accounts may join")
        invited = self._invited(room, who)
        if modes.invite_only and not invited:
            raise ProtocolError(ErrorCode.INVITE_ONLY, "this room is invite-only")
        if modes.key and not invited and key != modes.key:
            raise ProtocolError(ErrorCode.BAD_KEY, "this room needs its key")

    def entered(self, room: str, who: Identity) -> None:
        """``who`` joined ``room``: its invite is used up."""
        invited = self.invites.get(room)
        if invited is not None:
            invited.difference_update(_tokens(who))
            if not invited:
                del self.invites[room]

    def check_say(self, room: str, who: Identity, token: str, rank: Rank, now: float) -> None:
        """May ``who`` speak in ``room`` now (``now``: the session clock)?

        Raises:
            ProtocolError: ``muted``, ``moderated``, ``slow_mode``.
        """
        if rank >= Rank.OP:
            return
        for mute in self.mutes:
            if mute.room == room and not mute.over(now) and mute.covers(who):
                raise ProtocolError(ErrorCode.MUTED, "you are muted in this room")
        modes = self.modes.get(room)
        if modes is None:
            return
        if modes.moderated and rank < Rank.VOICE:
            raise ProtocolError(ErrorCode.MODERATED, "only ops and voiced members speak here")
        if modes.slow_s:
            last = self.last_said.get((room, token))
            if last is not None and now - last < modes.slow_s:
                wait = modes.slow_s - (now - last)
                raise ProtocolError(ErrorCode.SLOW_MODE, f"slow mode: wait {wait:.0f} s")
            self.last_said[(room, token)] = now

    # ------------------------------------------------------------------ changes

    def add(self, kind: list[Sanction], sanction: Sanction) -> None:
        """A new ban or mute replaces any on the same target in the same place."""
        self.lift(kind, sanction.room, sanction.keys, sanction.account)
        kind.append(sanction)

    def lift(
        self, kind: list[Sanction], room: str, keys: frozenset[str], account: str | None
    ) -> list[Sanction]:
        """Remove and return the bans or mutes on that target in ``room``."""
        gone = [s for s in kind if s.room == room and s.same_target(keys, account)]
        kind[:] = [s for s in kind if s not in gone]
        return gone

    def expire(self, now: float) -> list[Sanction]:
        """Drop the bans and mutes that are over; returns the bans dropped (stored ones)."""
        over = [ban for ban in self.bans if ban.over(now)]
        if over:
            self.bans[:] = [ban for ban in self.bans if not ban.over(now)]
        self.mutes[:] = [mute for mute in self.mutes if not mute.over(now)]
        return over

    def invite(self, room: str, who: Identity) -> None:
        self.invites.setdefault(room, set()).update(_tokens(who))

    def room_bans(self, room: str, now: float) -> list[Sanction]:
        return [ban for ban in self.bans if ban.room == room and not ban.over(now)]

    def _invited(self, room: str, who: Identity) -> bool:
        invited = self.invites.get(room)
        return invited is not None and not invited.isdisjoint(_tokens(who))


def _tokens(who: Identity) -> Iterable[str]:
    """An invite names a member by its exact key, and by its account when it has one."""
    exact = [key for key in who.keys if key.startswith("=")]
    return exact + ([f"@{who.account}"] if who.account is not None else [])


class BannedError(ProtocolError):
    """``banned``, with the ban, so the answer can say when it ends."""

    def __init__(self, ban: Sanction) -> None:
        where = "this room" if ban.room else "this server"
        super().__init__(ErrorCode.BANNED, f"you are banned from {where}")
        self.ban = ban

"""Accounts, roles and moderation, applied: the rules of :mod:`chatroom.moderation` on the
hub's members, with what must last kept in the :class:`~chatroom.accounts.AccountStore`.

A session asks this module before a member joins a room, speaks or changes its name,
and hands it the moderation requests (``role``, ``kick``, ``ban``, ...). Each action is
a ``mod`` event in its room, recorded by the hub's sinks like any other: the audit log.
Whatever must survive a restart (accounts, staff, room roles of accounts, bans, modes)
is committed to the store before the action is acknowledged. Password hashing runs on a
worker thread through the session's link (:meth:`Jobs.run_job`); nothing here waits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from chatroom.accounts import AccountStore, LoginThrottle, NameRegistered, check_password
from chatroom.delivery import Member
from chatroom.framing import ErrorCode, ProtocolError
from chatroom.hub import Hub
from chatroom.moderation import (
    LOBBY,
    MAX_KEY_CHARS,
    MAX_SLOW_S,
    ROOM_ROLES,
    STAFF_ROLES,
    BannedError,
    Identity,
    Rank,
    Restrictions,
    RoomModes,
    Sanction,
    check_duration,
    check_reason,
    may_act,
    may_grant,
    room_key,
)
from chatroom.names import check_name, name_keys
from chatroom.protocol import (
    Ban,
    BanInfo,
    Bans,
    BansRequest,
    Error,
    Invite,
    Kick,
    Mode,
    Mute,
    PasswordChange,
    Register,
    Registered,
    RoleRequest,
    Unban,
    Unmute,
    format_ts,
)
from chatroom.text import inert, truncate

__all__ = ["Authority", "Jobs", "ModRequest", "banned_error"]

log = logging.getLogger("chatroom.server")

T = TypeVar("T")

ModRequest = (
    Register
    | PasswordChange
    | RoleRequest
    | Kick
    | Ban
    | Unban
    | BansRequest
    | Mute
    | Unmute
    | Mode
    | Invite
)


class Jobs(Protocol):
    """What the authority needs of a session's link: replies, and work off the loop."""

    def send_reply(self, frame: Any) -> None: ...

    def run_job(self, job: Callable[[], T], done: Callable[[T, float], None]) -> None:
        """Run ``job`` on a worker thread; call ``done(result, now)`` on the loop."""


def _until_text(until: float | None) -> str | None:
    return None if until is None else format_ts(datetime.fromtimestamp(until, UTC))


def banned_error(exc: BannedError) -> Error:
    """The ``banned`` answer, with ``until``: when the ban ends (null: until lifted)."""
    return Error(
        code=ErrorCode.BANNED.value,
        message=exc.detail + (f" ({exc.ban.reason})" if exc.ban.reason else ""),
        extra={"until": _until_text(exc.ban.until)},
    )


def _forbidden(detail: str) -> ProtocolError:
    return ProtocolError(ErrorCode.FORBIDDEN, detail)


class Authority:
    """Who everyone is and may do, for one hub.

    Args:
        hub: the chat state; its ``room_roles`` is answered from here.
        store: accounts, staff, room roles, bans and modes.
        wall: epoch seconds, for bans and mutes that outlast the process.
        auth_failure_delay_s: the least time before a wrong password is answered.
    """

    def __init__(
        self,
        hub: Hub,
        store: AccountStore,
        *,
        wall: Callable[[], float] = time.time,
        auth_failure_delay_s: float = 0.5,
    ) -> None:
        self.hub = hub
        self.store = store
        self.wall = wall
        self.auth_failure_delay_s = auth_failure_delay_s
        self.rules = Restrictions(bans=store.bans(), modes=store.modes())
        self.throttle = LoginThrottle()
        # room key -> account -> "op" | "voice", as stored.
        self._roles: dict[str, dict[str, str]] = {}
        for (room, account), role in store.room_roles().items():
            self._roles.setdefault(room, {})[account] = role
        # Room roles of members without an account last as long as their session.
        self._guest_roles: dict[str, dict[Member, str]] = {}
        self._who: dict[Member, Identity] = {}
        self._by_account: dict[str, set[Member]] = {}
        hub.room_roles = self.roles_in
        hub.authority = self

    # ------------------------------------------------------------------ who is who

    def identity(self, member: Member) -> Identity:
        who = self._who.get(member)
        if who is None:
            who = self._who[member] = Identity(member.name, member.keys)
        return who

    def account_of(self, member: Member) -> str | None:
        return self.identity(member).account

    def staff_rank(self, account: str | None) -> Rank:
        role = self.store.staff_role(account)
        return STAFF_ROLES.get(role, Rank.NONE) if role is not None else Rank.NONE

    def rank(self, member: Member, room: str) -> Rank:
        """``member``'s rank in ``room`` (a room key)."""
        account = self.account_of(member)
        staff = self.staff_rank(account)
        role = None
        if account is not None:
            role = self._roles.get(room, {}).get(account)
        if role is None:
            role = self._guest_roles.get(room, {}).get(member)
        return max(staff, ROOM_ROLES.get(role or "none", Rank.NONE))

    def _target(self, raw_name: str) -> tuple[Member | None, Identity]:
        """Whoever a request names: the member online under that name, else the name's
        keys and the account that holds it, if any."""
        member = self.hub.find(raw_name)
        if member is not None:
            return member, self.identity(member)
        name = check_name(raw_name)
        keys = name_keys(name)
        return None, Identity(name, keys, self.store.account_for(keys))

    def _rank_of(self, member: Member | None, who: Identity, room: str) -> Rank:
        if member is not None:
            return self.rank(member, room)
        staff = self.staff_rank(who.account)
        role = self._roles.get(room, {}).get(who.account or "", "none")
        return max(staff, ROOM_ROLES.get(role, Rank.NONE))

    def roles_in(self, room: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The names of the ops (staff included) and of the voiced members in ``room``,
        as the hub stores its name. Only role holders are looked at, never every member."""
        key = room_key(room)
        holders: set[Member] = set(self._guest_roles.get(key, {}))
        if not self._by_account:
            # Nobody online has an account, so nobody but guests has a role: a join
            # storm of guests costs no database look-up.
            return self._split(holders, room, key)
        for account in self._roles.get(key, {}):
            holders |= self._by_account.get(account, set())
        for account in self.store.staff():
            holders |= self._by_account.get(account, set())
        return self._split(holders, room, key)

    def _split(
        self, holders: set[Member], room: str, key: str
    ) -> tuple[tuple[str, ...], tuple[str, ...]]:
        ops: list[str] = []
        voices: list[str] = []
        for member in holders:
            if room not in member.rooms:
                continue
            rank = self.rank(member, key)
            if rank >= Rank.OP and (key != room_key(LOBBY) or rank >= Rank.MODERATOR):
                ops.append(member.name)
            elif rank >= Rank.VOICE:
                voices.append(member.name)
        return tuple(sorted(ops)), tuple(sorted(voices))

    # ------------------------------------------------------------------ hello

    def account_for(self, name: str) -> str | None:
        return self.store.account_for(name_keys(name))

    def check_hello(self, who: Identity) -> None:
        """Raises ``banned`` when a server ban holds ``who``."""
        staff = self.staff_rank(who.account) >= Rank.MODERATOR
        ban = self.rules.ban_on("", who, self.wall(), staff=staff)
        if ban is not None:
            raise BannedError(ban)

    def login(
        self,
        account: str | None,
        password: str,
        address: str,
        now: float,
        jobs: Jobs,
        done: Callable[[bool, float], None],
    ) -> None:
        """Check ``account``'s password off the loop and call ``done(ok, now)``. With no
        account a dummy hash is checked, so the answer takes as long; from a throttled
        address nothing is checked and the answer is no."""
        if not self.throttle.begin(address, now):
            done(False, now)
            return

        def checked(ok: bool, at: float) -> None:
            self.throttle.end(address)
            if ok:
                self.throttle.succeeded(address)
            else:
                self.throttle.failed(account, address, at)
            done(ok, at)

        jobs.run_job(lambda: self.store.verify(account, password), checked)

    def failure_delay(self, account: str | None, now: float) -> float:
        return self.throttle.failure_delay(account, self.auth_failure_delay_s, now)

    def joined(self, member: Member, account: str | None, address: str) -> None:
        """``member`` is in (after its welcome was queued)."""
        self._who[member] = Identity(member.name, member.keys, account, address)
        if account is not None:
            self._by_account.setdefault(account, set()).add(member)

    def roles_of(self, account: str | None) -> tuple[str, ...]:
        role = self.store.staff_role(account)
        return (role,) if role is not None else ()

    def forget(self, member: Member) -> None:
        """``member`` has left the server."""
        who = self._who.pop(member, None)
        if who is not None and who.account is not None:
            members = self._by_account.get(who.account)
            if members is not None:
                members.discard(member)
                if not members:
                    del self._by_account[who.account]
        for roles in self._guest_roles.values():
            roles.pop(member, None)

    # ------------------------------------------------------------------ checks

    def before_join(self, member: Member, raw_room: str, key: str | None) -> bool:
        """Raises the refusal, if any; True when the room is new and ``member`` will be
        its op (then :meth:`undo_join` if the join fails after all)."""
        room = room_key(raw_room)
        who = self.identity(member)
        self.rules.check_enter(room, who, self.rank(member, room), key, self.wall())
        self.rules.entered(room, who)
        if room == room_key(LOBBY) or self.hub.occupied(raw_room) or self._roles.get(room):
            return False
        self._give(member, room, "op")
        return True

    def undo_join(self, member: Member, raw_room: str) -> None:
        self._guest_roles.get(room_key(raw_room), {}).pop(member, None)

    def before_say(self, member: Member, raw_room: str, now: float) -> None:
        room = room_key(raw_room)
        rules = self.rules
        if not rules.mutes and room not in rules.modes:
            return  # the common case, once per message: nothing to check
        who = self.identity(member)
        token = who.account or min(member.keys)
        rules.check_say(room, who, token, self.rank(member, room), now)

    def before_rename(self, member: Member, raw_name: str) -> None:
        """A new name must not be another account's, nor banned here or in a room the
        member is in. The old names stay on the member's identity, so a rename never
        lifts a mute or a ban."""
        name = check_name(raw_name)
        keys = name_keys(name)
        owner = self.store.account_for(keys)
        who = self.identity(member)
        if owner is not None and owner != who.account:
            raise ProtocolError(ErrorCode.NAME_REGISTERED, "that name is registered")
        future = Identity(name, who.keys | keys, who.account, who.address)
        now = self.wall()
        staff = self.staff_rank(who.account) >= Rank.MODERATOR
        for room in ["", *(room_key(room) for room in member.rooms)]:
            ban = self.rules.ban_on(room, future, now, staff=staff)
            if ban is not None and not staff:
                raise BannedError(ban)
        self._who[member] = future

    # ------------------------------------------------------------------ requests

    def request(self, member: Member, frame: ModRequest, now: float, jobs: Jobs) -> None:
        """Carry out one request; refusals are raised as ProtocolError."""
        match frame:
            case Register(password=password):
                self._register(member, password, jobs)
            case PasswordChange(old_password=old, password=new):
                self._change_password(member, old, new, now, jobs)
            case RoleRequest(room=room, name=name, role=role):
                self._role(member, room, name, role)
            case Kick(room=room, name=name, reason=reason):
                self._kick(member, room, name, check_reason(reason))
            case Ban(room=room, name=name, duration_s=duration, reason=reason):
                self._ban(member, room, name, check_duration(duration), check_reason(reason))
            case Unban(room=room, name=name):
                self._unban(member, room, name)
            case BansRequest(room=room):
                jobs.send_reply(self._bans(member, room))
            case Mute(room=room, name=name, duration_s=duration, reason=reason):
                self._mute(member, room, name, check_duration(duration), check_reason(reason))
            case Unmute(room=room, name=name):
                self._unmute(member, room, name)
            case Mode():
                self._mode(member, frame)
            case Invite(room=room, name=name):
                self._invite(member, room, name)

    def _register(self, member: Member, password: str, jobs: Jobs) -> None:
        if self.account_of(member) is not None:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "already logged in; use password")
        if self.store.account_for(member.keys) is not None:
            raise ProtocolError(ErrorCode.NAME_REGISTERED, "that name is registered")
        password = check_password(password)
        name = member.name

        def job() -> str | None:
            try:
                return self.store.register(name, password)
            except NameRegistered:
                return None

        def done(account: str | None, _: float) -> None:
            if account is None:
                jobs.send_reply(Error(code=ErrorCode.NAME_REGISTERED.value, message="taken"))
                return
            self.store.remember(account)
            if member in self._who or self.hub.find(name) is member:
                self.joined(member, account, self.identity(member).address)
            log.info("account registered: %s", truncate(inert(account), 40))
            jobs.send_reply(Registered(account=account))

        jobs.run_job(job, done)

    def _change_password(self, member: Member, old: str, new: str, now: float, jobs: Jobs) -> None:
        account = self.account_of(member)
        if account is None:
            raise _forbidden("not logged in to an account")
        new = check_password(new)

        def checked(ok: bool, _: float) -> None:
            if not ok:
                jobs.send_reply(Error(code=ErrorCode.AUTH_FAILED.value, message="wrong password"))
                return
            jobs.run_job(lambda: self.store.set_password(account, new), changed)

        def changed(hashed: str, _: float) -> None:
            self.store.password_set(account, hashed)
            for other in list(self._by_account.get(account, ())):
                if other is not member:
                    self.hub.expel(other, account, "the account's password was changed")
            jobs.send_reply(Registered(account=account))

        self.login(account, old, self.identity(member).address, now, jobs, checked)

    def _acting(self, member: Member, raw_room: str) -> tuple[str, str, Rank]:
        """(room key, the room's name as shown, the actor's rank there)."""
        room = room_key(raw_room)
        rank = self.rank(member, room)
        if room == room_key(LOBBY) and rank < Rank.MODERATOR:
            rank = min(rank, Rank.VOICE)  # lobby's ops are the staff
        return room, self.hub.room_name(raw_room), rank

    def _role(self, member: Member, raw_room: str, name: str, role: str) -> None:
        if role in STAFF_ROLES:
            raise _forbidden("staff roles are granted on the server machine")
        if role not in ROOM_ROLES:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "a role is op, voice or none")
        room, shown, rank = self._acting(member, raw_room)
        if room == room_key(LOBBY) and role == "op":
            raise _forbidden("lobby's ops are the server's staff")
        target, who = self._target(name)
        if target is None and who.account is None:
            raise ProtocolError(ErrorCode.NO_SUCH_MEMBER, "no member or account by that name")
        if not may_grant(rank, self._rank_of(target, who, room), ROOM_ROLES[role]):
            raise _forbidden("you may not give that role to them")
        if who.account is not None:
            self.store.set_room_role(room, who.account, role)
            if role == "none":
                self._roles.get(room, {}).pop(who.account, None)
            else:
                self._roles.setdefault(room, {})[who.account] = role
        if target is not None:
            self._give(target, room, role)
        self.hub.mod_event(shown, member.name, "role", who.name, role=role)

    def _give(self, member: Member, room: str, role: str) -> None:
        if self.account_of(member) is not None:
            account = self.account_of(member)
            assert account is not None
            self.store.set_room_role(room, account, role)
            if role == "none":
                self._roles.get(room, {}).pop(account, None)
            else:
                self._roles.setdefault(room, {})[account] = role
            return
        if role == "none":
            self._guest_roles.get(room, {}).pop(member, None)
        else:
            self._guest_roles.setdefault(room, {})[member] = role

    def _kick(self, member: Member, raw_room: str, name: str, reason: str) -> None:
        room, shown, rank = self._acting(member, raw_room)
        target = self.hub.find(name)
        if target is None or shown not in target.rooms:
            raise ProtocolError(ErrorCode.NO_SUCH_MEMBER, "nobody by that name in that room")
        if not may_act(rank, self.rank(target, room)):
            raise _forbidden("you may not kick them")
        self.hub.mod_event(shown, member.name, "kick", target.name, reason=reason)
        self.hub.kick(target, shown, member.name, reason)

    def _sanction_target(
        self, member: Member, raw_room: str | None, name: str
    ) -> tuple[str, str, Member | None, Identity]:
        """(room key or "", room shown or "", the target online, its identity), once the
        actor is found to outrank it; server-wide takes staff."""
        if raw_room is None:
            rank = self.staff_rank(self.account_of(member))
            if rank < Rank.MODERATOR:
                raise _forbidden("server-wide bans are for staff")
            room = shown = ""
        else:
            room, shown, rank = self._acting(member, raw_room)
        target, who = self._target(name)
        if not may_act(rank, self._rank_of(target, who, room)):
            raise _forbidden("you may not do that to them")
        return room, shown, target, who

    def _ban(
        self, member: Member, raw_room: str | None, name: str, duration: int | None, reason: str
    ) -> None:
        room, shown, _, who = self._sanction_target(member, raw_room, name)
        until = None if duration is None else self.wall() + duration
        # Server-wide, the address too (its /64 for IPv6), when the target is online.
        address = (who.address or None) if room == "" else None
        ban = Sanction(room, who.name, who.keys, who.account, address, until, member.name, reason)
        gone = self.rules.lift(self.rules.bans, room, who.keys, who.account)
        self.store.replace_bans(room, gone, ban)  # committed before anyone hears of it
        self.rules.bans.append(ban)
        self.hub.mod_event(
            shown,
            member.name,
            "ban",
            who.name,
            reason=reason,
            until=_until_text(until),
            also=(member,) if room == "" else (),
        )
        # Every session of the target goes: same name keys or same account (not everyone
        # at the address, who may be innocent neighbours behind one router).
        for other in self.hub.all_members():
            if not ban.covers(self.identity(other), by_address=False):
                continue
            if room == "":
                if self.staff_rank(self.account_of(other)) < Rank.MODERATOR:
                    self.hub.expel(other, member.name, reason)
            else:
                self.hub.kick(other, shown, member.name, reason)

    def _unban(self, member: Member, raw_room: str | None, name: str) -> None:
        room, shown, _, who = self._sanction_target(member, raw_room, name)
        gone = self.rules.lift(self.rules.bans, room, who.keys, who.account)
        if not gone:
            raise ProtocolError(ErrorCode.NO_SUCH_MEMBER, "no ban on that name here")
        self.store.replace_bans(room, gone, None)
        self.hub.mod_event(
            shown, member.name, "unban", who.name, also=(member,) if not room else ()
        )

    def _bans(self, member: Member, raw_room: str | None) -> Bans:
        if raw_room is None:
            if self.staff_rank(self.account_of(member)) < Rank.MODERATOR:
                raise _forbidden("the server's bans are for staff")
            room = ""
        else:
            room, _, rank = self._acting(member, raw_room)
            if rank < Rank.OP:
                raise _forbidden("the room's bans are for its ops")
        listed = tuple(
            BanInfo(name=ban.name, by=ban.by, reason=ban.reason, until=_until_text(ban.until))
            for ban in self.rules.room_bans(room, self.wall())
        )
        return Bans(room=raw_room, bans=listed)

    def _mute(
        self, member: Member, raw_room: str, name: str, duration: int | None, reason: str
    ) -> None:
        room, shown, _, who = self._sanction_target(member, raw_room, name)
        until = None if duration is None else self.wall() + duration
        mute = Sanction(room, who.name, who.keys, who.account, None, until, member.name, reason)
        self.rules.add(self.rules.mutes, mute)
        self.hub.mod_event(
            shown, member.name, "mute", who.name, reason=reason, until=_until_text(until)
        )

    def _unmute(self, member: Member, raw_room: str, name: str) -> None:
        room, shown, _, who = self._sanction_target(member, raw_room, name)
        if not self.rules.lift(self.rules.mutes, room, who.keys, who.account):
            raise ProtocolError(ErrorCode.NO_SUCH_MEMBER, "nobody by that name is muted here")
        self.hub.mod_event(shown, member.name, "unmute", who.name)

    def _mode(self, member: Member, frame: Mode) -> None:
        room, shown, rank = self._acting(member, frame.room)
        if rank < Rank.OP:
            raise _forbidden("modes are for the room's ops")
        if frame.slow_s is not None and not 0 <= frame.slow_s <= MAX_SLOW_S:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"slow_s is 0 to {MAX_SLOW_S}")
        if frame.key is not None and len(frame.key) > MAX_KEY_CHARS:
            raise ProtocolError(
                ErrorCode.BAD_REQUEST, f"a key has at most {MAX_KEY_CHARS} characters"
            )
        old = self.rules.modes.get(room, RoomModes())
        modes = RoomModes(
            invite_only=old.invite_only if frame.invite_only is None else frame.invite_only,
            key=old.key if frame.key is None else frame.key,
            moderated=old.moderated if frame.moderated is None else frame.moderated,
            registered_only=(
                old.registered_only if frame.registered_only is None else frame.registered_only
            ),
            slow_s=old.slow_s if frame.slow_s is None else frame.slow_s,
        )
        self.store.set_modes(room, modes)
        if modes.default:
            self.rules.modes.pop(room, None)
        else:
            self.rules.modes[room] = modes
        self.hub.mod_event(
            shown,
            member.name,
            "mode",
            shown,
            invite_only=modes.invite_only,
            key_set=bool(modes.key),
            moderated=modes.moderated,
            registered_only=modes.registered_only,
            slow_s=modes.slow_s,
        )

    def _invite(self, member: Member, raw_room: str, name: str) -> None:
        room, shown, rank = self._acting(member, raw_room)
        if rank < Rank.OP:
            raise _forbidden("invites are for the room's ops")
        target, who = self._target(name)
        self.rules.invite(room, who)
        self.hub.mod_event(
            shown, member.name, "invite", who.name, also=(target,) if target is not None else ()
        )

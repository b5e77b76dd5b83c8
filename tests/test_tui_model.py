"""ChatModel: the chat client's state fed frames and commands, without Textual or sockets."""

from __future__ import annotations

from chatroom import protocol
from chatroom.tui.changes import (
    Added,
    Closed,
    Echoed,
    Gap,
    HistoryShown,
    Left,
    MembersChanged,
    MembersListed,
    Mentioned,
    NameChanged,
    OlderShown,
    OwnJoin,
    RateLimited,
    RejoinFailed,
    RequestFailed,
    SendRefused,
    ServerNotice,
    Shown,
    Switched,
    TopicChanged,
    Unsent,
)
from chatroom.tui.conversation import Outgoing, Request, private_key, room_key
from chatroom.tui.model import ChatModel

TS = "2025-01-02T10:00:00Z"
_ids = iter(range(1, 1_000_000))


def _id() -> int:
    return next(_ids)


def message(text: str, sender: str = "bob", room: str = "lobby", **kw: object) -> protocol.Message:
    return protocol.Message(id=_id(), ts=TS, room=room, sender=sender, text=text, **kw)  # type: ignore[arg-type]


def dm(text: str, sender: str, to: str, nonce: str | None = None) -> protocol.Dm:
    return protocol.Dm(id=_id(), ts=TS, sender=sender, to=to, text=text, nonce=nonce)


def join(name: str, room: str = "lobby") -> protocol.Join:
    return protocol.Join(id=_id(), ts=TS, room=room, name=name)


def leave(name: str, room: str = "lobby", reason: str = "quit") -> protocol.Leave:
    return protocol.Leave(id=_id(), ts=TS, room=room, name=name, reason=reason)


def welcome(
    name: str = "alice", members: tuple[str, ...] = ("alice", "bob"), **kw: object
) -> protocol.Welcome:
    return protocol.Welcome(name=name, server="test", room="lobby", members=members, **kw)  # type: ignore[arg-type]


def online(me: str = "alice", members: tuple[str, ...] = ("alice", "bob")) -> ChatModel:
    """A model welcomed into the lobby, its own join come (ready to send)."""
    model = ChatModel(clock=lambda: "12:00", nonce_prefix="n")
    model.welcomed(welcome(me, members))
    model.receive(join(me))
    model.take_changes()
    return model


def in_room(model: ChatModel, room: str, members: tuple[str, ...] = ("alice", "bob")) -> None:
    """Join ``room`` as the app does: ask, send, the joined answer, our own join."""
    assert model.join(room)
    sent = model.next_to_send()
    assert isinstance(sent, Request)
    model.receive(protocol.Joined(room=room, members=members, topic="t"))
    model.receive(join(model.me or "", room))
    model.take_changes()


# ---------------------------------------------------------------------------- unread


def test_messages_elsewhere_count_as_unread_and_mentions() -> None:
    """A message in a conversation not shown adds one unread; one naming me adds a mention
    too and asks for the bell; the current conversation counts nothing."""
    model = online()
    in_room(model, "dev")
    model.switch_to(room_key("dev"))
    model.receive(message("hello all"))
    model.receive(message("hi Alice, look"))
    model.receive(message("in dev, alice", room="dev"))
    lobby, dev = model.lobby, model.convs[room_key("dev")]
    assert (lobby.unread, lobby.mentions) == (2, 1)
    assert (dev.unread, dev.mentions) == (0, 0)
    assert model.take_changes().count(Mentioned()) == 2


def test_own_messages_and_words_containing_the_name_are_no_mention() -> None:
    """Our own echo never counts as unread, and a name inside a longer word is no mention."""
    model = online()
    in_room(model, "dev")
    model.switch_to(room_key("dev"))
    model.receive(message("malice aforethought"))
    model.receive(message("mine", sender="alice"))
    assert (model.lobby.unread, model.lobby.mentions) == (1, 0)
    assert Mentioned() not in model.take_changes()


def test_switching_resets_unread_and_records_the_switch() -> None:
    """Switching to a conversation makes it current and clears its unread and mentions."""
    model = online()
    in_room(model, "dev")
    model.switch_to(room_key("dev"))
    model.receive(message("alice?"))
    model.take_changes()
    assert model.switch_to(model.lobby.key)
    assert model.current is model.lobby
    assert (model.lobby.unread, model.lobby.mentions) == (0, 0)
    assert model.take_changes() == [Switched(model.lobby)]
    assert not model.switch_to(room_key("nowhere"))


def test_switch_by_wraps_and_numbers_count_from_one() -> None:
    """Next and previous wrap around the list; a number past the list changes nothing."""
    model = online()
    in_room(model, "dev")  # a typed join shows the room
    model.switch_by(1)
    assert model.current is model.lobby
    model.switch_by(1)
    assert model.current.label == "#dev"
    model.switch_by(-1)
    assert model.current is model.lobby
    model.switch_by(-1)
    assert model.current.label == "#dev"
    model.switch_to_number(1)
    assert model.current is model.lobby
    model.switch_to_number(9)
    assert model.current is model.lobby


def test_a_private_message_opens_a_conversation_and_counts_as_mention() -> None:
    """A dm from someone new adds @name at the end of the list, unread with a mention."""
    model = online()
    model.receive(dm("psst", sender="bob", to="alice"))
    conv = model.convs[private_key("bob")]
    assert conv.private and conv.label == "@bob"
    assert (conv.unread, conv.mentions) == (1, 1)
    changes = model.take_changes()
    assert changes[0] == Added(conv)
    assert Shown(conv, changes[1].event) in changes  # type: ignore[union-attr]
    assert list(model.convs) == [model.lobby.key, conv.key]


# ---------------------------------------------------------------------------- sending


def test_pending_messages_are_acknowledged_by_nonce_one_at_a_time() -> None:
    """Only the outbox's head goes; its echo (same nonce) takes it off, and the next goes."""
    model = online()
    first = model.queue("one")
    second = model.queue("two")
    assert first.nonce != second.nonce
    assert model.next_to_send() is first
    assert model.next_to_send() is None  # one in flight at a time
    assert model.receive(message("two", sender="alice", nonce=second.nonce)) is False
    assert list(model.outbox) == [first, second]  # not the head's echo: nothing settled
    assert model.receive(message("one", sender="alice", nonce=first.nonce)) is True
    assert list(model.outbox) == [second] and model.in_flight is None
    assert model.next_to_send() is second
    assert isinstance(second.frame(), protocol.Say) and second.frame().nonce == second.nonce


def test_without_nonces_the_echo_matches_by_text_once_sent() -> None:
    """A server that echoes no nonce acknowledges our own message by its text, but only
    after it was sent."""
    model = online()
    item = model.queue("same words")
    model.receive(message("same words", sender="alice"))
    assert list(model.outbox) == [item]
    model.next_to_send()
    model.receive(message("same words", sender="alice"))
    assert not model.outbox


def test_after_a_reconnect_the_unacknowledged_message_goes_again_with_its_nonce() -> None:
    """A loss clears what is in flight but keeps the outbox; once welcomed again and the
    lobby's replay is over, the same message goes with the same nonce."""
    model = online()
    item = model.queue("did it arrive?")
    assert model.next_to_send() is item
    model.lost()
    assert not model.online and model.in_flight is None and list(model.outbox) == [item]
    assert model.next_to_send() is None
    model.welcomed(welcome())
    assert model.next_to_send() is None  # the lobby's replay is not over yet
    model.receive(join("alice"))
    again = model.next_to_send()
    assert again is item and isinstance(again, Outgoing)
    assert again.frame() == protocol.Say(text="did it arrive?", nonce=item.nonce)


def test_a_reconnect_rejoins_each_room_from_its_last_event() -> None:
    """After a loss the welcome queues one automatic join per room, each resuming after
    the room's last event, and hello resumes the lobby after its own."""
    model = online()
    in_room(model, "dev")
    last_dev = message("in dev", room="dev")
    model.receive(last_dev)
    last_lobby = message("in lobby")
    model.receive(last_lobby)
    assert model.resume_after() == last_lobby.id
    model.lost()
    model.welcomed(welcome())
    rejoin = model.next_to_send()
    assert isinstance(rejoin, Request) and rejoin.automatic
    assert rejoin.frame == protocol.JoinRequest(room="dev", resume_after=last_dev.id)


def test_the_first_hello_resumes_nothing() -> None:
    """Before any welcome there is nothing to resume after."""
    assert ChatModel().resume_after() is None


def test_a_cluster_session_token_is_kept_from_the_last_welcome() -> None:
    """welcome.session goes back in the next hello; a welcome without one clears it."""
    model = ChatModel()
    welcome = protocol.Welcome(
        name="ann", server="s", room="lobby", members=("ann",), session="tok-1"
    )
    model.welcomed(welcome)
    assert model.session_token == "tok-1"
    model.welcomed(protocol.Welcome(name="ann", server="s", room="lobby", members=("ann",)))
    assert model.session_token is None


def test_requests_go_before_messages_and_need_a_connection() -> None:
    """A request asked while offline is refused; online it goes before waiting messages."""
    model = ChatModel()
    assert not model.ask(protocol.RoomsRequest())
    model = online()
    item = model.queue("later")
    assert model.ask(protocol.RoomsRequest())
    sent = model.next_to_send()
    assert isinstance(sent, Request) and sent.frame == protocol.RoomsRequest()
    assert model.receive(protocol.Rooms(rooms=())) is True
    assert model.next_to_send() is item


def test_a_message_for_a_room_left_is_dropped_with_a_notice() -> None:
    """A message waiting for a room no longer joined is dropped, and that is recorded."""
    model = online()
    in_room(model, "dev")
    item = model.queue("bye", room="dev")
    model.convs[room_key("dev")].joined = False
    assert model.next_to_send() is None
    assert not model.outbox and Unsent(item) in model.take_changes()


def test_rate_limited_keeps_the_message_for_a_resend() -> None:
    """A rate_limited error leaves the message in flight and asks for a resend; after
    resend() the same message goes again."""
    model = online()
    item = model.queue("hi")
    model.next_to_send()
    assert model.receive(protocol.Error(code="rate_limited")) is False
    assert model.take_changes()[-1] == RateLimited()
    assert model.in_flight is item
    model.resend()
    assert model.next_to_send() is item


def test_a_refused_message_is_dropped_and_an_unrelated_error_only_reported() -> None:
    """too_long takes the message off for good; an error with nothing in flight is a
    notice and changes nothing else."""
    model = online()
    item = model.queue("x" * 10)
    model.next_to_send()
    assert model.receive(protocol.Error(code="too_long", message="too long")) is True
    assert not model.outbox
    assert SendRefused(item, "too_long", "too long") in model.take_changes()
    assert model.receive(protocol.Error(code="weird", message="hm")) is False
    assert model.take_changes() == [ServerNotice("weird", "hm")]


def test_a_failed_rejoin_leaves_the_room_listed_but_not_joined() -> None:
    """An automatic join answered with an error marks the room not joined and says so
    in that room."""
    model = online()
    in_room(model, "dev")
    model.lost()
    model.welcomed(welcome())
    model.next_to_send()
    model.take_changes()
    model.receive(protocol.Error(code="bad_request", message="no"))
    dev = model.convs[room_key("dev")]
    assert not dev.joined and not dev.ready
    assert RejoinFailed(dev, "bad_request", "no") in model.take_changes()


def test_a_request_without_an_answer_times_out() -> None:
    """A request still in flight when its time is up fails with a notice; a stale timer
    for a request already answered changes nothing."""
    model = online()
    model.ask(protocol.Who(room="lobby"))
    request = model.next_to_send()
    assert isinstance(request, Request)
    assert model.request_timed_out(request)
    assert model.in_flight is None and not model.requests
    changes = model.take_changes()
    assert changes == [RequestFailed(model.lobby, request, "timeout", "no answer from the server")]
    assert not model.request_timed_out(request)


# ---------------------------------------------------------------------------- members


def test_joins_and_leaves_update_the_member_list_once_ready() -> None:
    """Live joins add a member once, leaves remove one; before our own join (a replay)
    they leave the list the welcome brought alone."""
    model = ChatModel()
    model.welcomed(welcome(members=("alice", "bob")))
    model.receive(join("carol"))  # replayed: older than the welcome's list
    assert model.lobby.members == ["alice", "bob"]
    model.receive(join("alice"))
    model.receive(join("carol"))
    model.receive(join("carol"))
    model.receive(leave("bob"))
    assert model.lobby.members == ["alice", "carol"]
    assert MembersChanged(model.lobby) in model.take_changes()


def test_a_rename_follows_members_our_name_and_private_conversations() -> None:
    """A nick renames the member in the room, renames our own name when it is ours, and
    moves the private conversation with the old name to the new key in place."""
    model = online()
    model.receive(dm("hey", sender="bob", to="alice"))
    conv = model.convs[private_key("bob")]
    model.receive(protocol.Nick(id=_id(), ts=TS, room="lobby", old="bob", new="robert"))
    assert model.lobby.members == ["alice", "robert"]
    assert private_key("bob") not in model.convs and model.convs[private_key("robert")] is conv
    assert conv.name == "robert" and list(model.convs).index(conv.key) == 1
    model.receive(protocol.Nick(id=_id(), ts=TS, room="lobby", old="alice", new="alicia"))
    assert model.me == "alicia" and NameChanged("alicia") in model.take_changes()
    assert model.lobby.members == ["alicia", "robert"]


def test_an_asked_who_is_listed_and_an_unasked_one_only_updates() -> None:
    """A members frame always replaces the list; only an answer to /who is listed."""
    model = online()
    model.receive(protocol.Members(room="lobby", members=("alice", "zed")))
    assert model.lobby.members == ["alice", "zed"] and model.lobby.members_at == "12:00"
    assert not any(isinstance(c, MembersListed) for c in model.take_changes())
    model.ask(protocol.Who(room="lobby"))
    model.next_to_send()
    model.receive(protocol.Members(room="lobby", members=("alice",)))
    assert MembersListed(model.lobby, "lobby", ("alice",)) in model.take_changes()


def test_a_topic_event_sets_the_topic() -> None:
    """A topic event changes the room's topic and is shown."""
    model = online()
    topic = protocol.Topic(id=_id(), ts=TS, room="lobby", sender="bob", text="news")
    model.receive(topic)
    assert model.lobby.topic == "news"
    assert model.take_changes() == [TopicChanged(model.lobby), Shown(model.lobby, topic)]


# ---------------------------------------------------------------------------- rooms


def test_joining_switches_and_our_join_makes_the_room_ready() -> None:
    """A typed join adds the room and shows it; sends wait until our own join comes."""
    model = online()
    assert model.join("Dev")
    model.next_to_send()
    assert model.receive(protocol.Joined(room="Dev", members=("alice",), topic="code"))
    dev = model.convs[room_key("dev")]
    assert model.current is dev and dev.topic == "code" and not dev.ready
    model.say(dev, "hi")
    assert model.next_to_send() is None
    own = join("alice", "Dev")
    assert model.receive(own) is True
    assert dev.ready and OwnJoin(dev, own) in model.take_changes()
    sent = model.next_to_send()
    assert isinstance(sent, Outgoing) and sent.room == "Dev"


def test_joining_a_room_already_in_only_switches() -> None:
    """/join of a room we are in shows it and asks the server nothing."""
    model = online()
    in_room(model, "dev")
    model.switch_to(model.lobby.key)
    assert model.join("DEV")
    assert model.current.label == "#dev" and not model.requests


def test_parting_closes_the_room_and_shows_the_one_before() -> None:
    """Our own part closes the room; it was current, so the one before it is current."""
    model = online()
    in_room(model, "dev")
    dev = model.convs[room_key("dev")]
    assert model.current is dev
    model.receive(protocol.Leave(id=_id(), ts=TS, room="dev", name="alice", reason="part"))
    assert room_key("dev") not in model.convs and model.current is model.lobby
    changes = model.take_changes()
    assert changes.index(Switched(model.lobby)) < changes.index(Closed(dev))
    assert changes[-1] == Left(dev)


def test_find_names_rooms_and_private_conversations() -> None:
    """find() takes a room's name, @name or a bare name of a private conversation."""
    model = online()
    model.receive(dm("hey", sender="bob", to="alice"))
    bob = model.convs[private_key("bob")]
    assert model.find(None) is model.current
    assert model.find("LOBBY") is model.lobby
    assert model.find("@Bob") is bob and model.find("bob") is bob
    assert model.find("nowhere") is None


def test_a_message_to_someone_else_is_also_echoed_where_typed() -> None:
    """/msg from the lobby: the echo shows in the private conversation and in the lobby."""
    model = online()
    item = model.queue("psst", to="bob", origin=model.lobby.key)
    model.next_to_send()
    echo = dm("psst", sender="alice", to="bob", nonce=item.nonce)
    assert model.receive(echo) is True
    conv = model.convs[private_key("bob")]
    changes = model.take_changes()
    assert Shown(conv, echo) in changes and Echoed(model.lobby, echo) in changes
    assert conv.unread == 0  # our own words are never unread


def test_completions_offer_rooms_names_and_conversations() -> None:
    """Tab completes #rooms after /join, other people after /msg, members otherwise."""
    model = online(members=("alice", "bob", "Carol"))
    in_room(model, "dev")
    model.receive(protocol.Rooms(rooms=(protocol.RoomInfo("music", 3),)))
    assert model.completions("/join ") == ["#dev", "#lobby", "#music"]
    assert model.completions("/msg") == ["bob", "Carol"]
    assert model.completions("/part") == ["#dev"]
    assert model.completions("") == ["alice", "bob"]  # the current room's (dev's)


# ---------------------------------------------------------------------------- history


def test_history_after_a_reconnect_shows_only_what_was_not_seen() -> None:
    """A welcome's history skips events already shown, says it is from while away, and
    moves the lobby's resume point."""
    model = ChatModel()
    old = message("old")
    model.welcomed(welcome(history=(old,)))
    first = model.take_changes()
    assert HistoryShown(model.lobby, (old,), again=False) in first
    model.lost()
    model.take_changes()
    new = message("new")
    model.welcomed(welcome(history=(old, new), gap=True))
    changes = model.take_changes()
    assert changes[0] == Gap(model.lobby)
    assert HistoryShown(model.lobby, (new,), again=True) in changes
    assert model.resume_after() == new.id


def test_an_older_page_keeps_order_and_drops_what_is_shown() -> None:
    """A page of older events keeps only those before the oldest shown, in the server's
    order; the last page says the beginning is reached and no page is asked again."""
    model = online()
    assert model.load_older(model.lobby, oldest_shown=10)
    assert not model.load_older(model.lobby, oldest_shown=10)  # one page at a time
    request = model.next_to_send()
    assert isinstance(request, Request)
    assert request.frame == protocol.HistoryRequest(room="lobby", before=10, limit=100)
    events = [protocol.Join(id=i, ts=TS, room="lobby", name="x") for i in (7, 8, 9, 10, 11)]
    model.receive(protocol.History(room="lobby", events=tuple(events), more=False))
    assert model.take_changes() == [OlderShown(model.lobby, tuple(events[:3]), beginning=True)]
    assert model.lobby.history_done and not model.lobby.paging
    assert not model.load_older(model.lobby, oldest_shown=7)


def test_no_older_pages_while_offline_or_before_the_replay_ends() -> None:
    """Pages are asked for only online and once the room's own join came."""
    model = ChatModel()
    assert not model.load_older(model.lobby, None)
    model.welcomed(welcome())
    assert not model.load_older(model.lobby, None)
    model.receive(join("alice"))
    assert model.load_older(model.lobby, None)

// The store: frames in, state and change records out, as the terminal client's ChatModel.
import assert from "node:assert/strict";
import { test } from "node:test";

import { outgoingFrame } from "../../chatroom/web/lib/conversation.js";
import { Store } from "../../chatroom/web/lib/store.js";

let nextId = 0;
const TS = "2026-11-26T10:00:00.000Z";

function ev(type, fields) {
  nextId += 1;
  return { type, id: nextId, ts: TS, ...fields };
}
const msg = (room, from, text, extra = {}) => ev("message", { room, from, text, ...extra });
const joinEv = (room, name) => ev("join", { room, name });
const leaveEv = (room, name, reason = "quit") => ev("leave", { room, name, reason });

function welcome(store, { name = "alice", members = ["alice", "bob"], history = [], extra = {} } = {}) {
  store.welcomed({ type: "welcome", protocol: 1, name, room: "lobby", members, history, ...extra });
  return store.receive(joinEv("lobby", name));
}

function joinRoom(store, room, { members = ["alice"], history = [], topic = "" } = {}) {
  store.join(room);
  const request = store.nextToSend();
  store.receive({ type: "joined", room, members, topic, history });
  store.receive(joinEv(room, store.me));
  return request;
}

function texts(conv) {
  return conv.entries.filter((e) => e.event).map((e) => e.event.text ?? e.event.type);
}

function fresh() {
  return new Store({ noncePrefix: "t", clock: () => "12:00" });
}

test("welcome: name, lobby members and history shown; the own join makes the lobby ready", () => {
  const store = fresh();
  const history = [msg("lobby", "bob", "earlier")];
  const changes = welcome(store, { history });
  assert.equal(store.me, "alice");
  assert.deepEqual(store.lobby.members, ["alice", "bob"]);
  assert.deepEqual(texts(store.lobby), ["earlier", "join"]);
  assert.ok(store.lobby.ready);
  assert.ok(changes.some((c) => c.type === "appended"));
  assert.equal(store.lobby.unread, 0, "history is never unread");
});

test("a message elsewhere counts unread; a mention counts both; switching resets them", () => {
  const store = fresh();
  welcome(store);
  joinRoom(store, "dev");
  store.switchTo(store.lobby.key);
  const dev = store.find("dev");
  store.receive(msg("dev", "bob", "hello all"));
  store.receive(msg("dev", "bob", "ALICE, look"));
  store.receive(msg("dev", "alice", "my own line"));
  assert.equal(dev.unread, 2);
  assert.equal(dev.mentions, 1);
  assert.equal(store.unreadTotal(), 2);
  assert.notEqual(dev.markerAt, null, "the marker sits where unread begins");
  assert.equal(dev.markerAt, dev.entries.find((e) => e.event?.text === "hello all").n);
  store.switchTo(dev.key);
  assert.equal(dev.unread, 0);
  assert.equal(dev.mentions, 0);
  assert.notEqual(dev.markerAt, null, "the marker stays to show where to read from");
  store.markRead();
  assert.equal(dev.markerAt, null);
});

test("the current conversation counts nothing while the page is shown, and does while hidden", () => {
  const store = fresh();
  welcome(store);
  store.receive(msg("lobby", "bob", "seen"));
  assert.equal(store.lobby.unread, 0);
  store.setVisible(false);
  const changes = store.receive(msg("lobby", "bob", "alice?"));
  assert.equal(store.lobby.unread, 1);
  assert.equal(store.lobby.mentions, 1);
  assert.ok(changes.some((c) => c.type === "notify" && c.mention));
  store.setVisible(true);
  assert.equal(store.lobby.unread, 0);
});

test("a private message opens a conversation named after the other, counted as a mention", () => {
  const store = fresh();
  welcome(store);
  const changes = store.receive(ev("dm", { from: "Bob", to: "alice", text: "psst" }));
  const conv = store.find("@bob");
  assert.ok(conv.private);
  assert.equal(conv.name, "Bob");
  assert.equal(conv.unread, 1);
  assert.equal(conv.mentions, 1);
  assert.ok(changes.some((c) => c.type === "added" && c.conv === conv));
  assert.ok(changes.some((c) => c.type === "notify" && c.conv === conv));
});

test("live joins, leaves and topics update members and topic; a replay's do not", () => {
  const store = fresh();
  welcome(store);
  store.receive(joinEv("lobby", "carol"));
  assert.deepEqual(store.lobby.members, ["alice", "bob", "carol"]);
  store.receive(leaveEv("lobby", "bob"));
  assert.deepEqual(store.lobby.members, ["alice", "carol"]);
  store.receive(ev("topic", { room: "lobby", from: "carol", text: "tea" }));
  assert.equal(store.lobby.topic, "tea");
  store.lost();
  store.welcomed({ type: "welcome", name: "alice", room: "lobby", members: ["alice", "dave"], history: [] });
  store.receive(leaveEv("lobby", "dave")); // replayed: older than the welcome's list
  assert.deepEqual(store.lobby.members, ["alice", "dave"]);
});

test("members and rooms answers replace the list and show a line", () => {
  const store = fresh();
  welcome(store);
  store.ask({ type: "who", room: "lobby" });
  store.nextToSend();
  store.receive({ type: "members", room: "lobby", members: ["alice", "zed"] });
  assert.deepEqual(store.lobby.members, ["alice", "zed"]);
  assert.match(store.lobby.entries.at(-1).notice, /alice, zed/);
  assert.equal(store.inFlight, null, "the answer settles the request");
  store.ask({ type: "rooms" });
  store.nextToSend();
  store.receive({ type: "rooms", rooms: [{ name: "dev", members: 3, topic: "code" }] });
  assert.match(store.lobby.entries.at(-1).notice, /#dev \(3 members\) — code/);
});

test("a nick renames us, the member lists and the private conversation with them", () => {
  const store = fresh();
  welcome(store);
  store.receive(ev("dm", { from: "bob", to: "alice", text: "hi" }));
  const conv = store.find("@bob");
  store.receive(ev("nick", { room: "lobby", old: "bob", new: "robert" }));
  assert.equal(store.find("@bob"), null);
  assert.equal(store.find("@robert"), conv);
  assert.equal(conv.name, "robert");
  assert.deepEqual(store.lobby.members, ["alice", "robert"]);
  store.receive(ev("nick", { room: "lobby", old: "alice", new: "alicia" }));
  assert.equal(store.me, "alicia");
});

test("a message is sent once: the echo with its nonce acknowledges it exactly once", () => {
  const store = fresh();
  welcome(store);
  store.say(store.lobby, "hello");
  const item = store.nextToSend();
  assert.deepEqual(outgoingFrame(item), { type: "say", room: "lobby", text: "hello", nonce: "t-1" });
  assert.equal(store.nextToSend(), null, "one thing in flight at a time");
  const echo = msg("lobby", "alice", "hello", { nonce: "t-1" });
  const changes = store.receive(echo);
  assert.equal(store.outbox.length, 0);
  assert.equal(store.inFlight, null);
  assert.ok(changes.some((c) => c.type === "pending"));
  store.receive({ ...echo }); // the same event again (a replay): nothing changes
  assert.equal(texts(store.lobby).filter((t) => t === "hello").length, 1);
  assert.equal(store.lobby.unread, 0, "our own message is not unread");
});

test("lines typed offline wait; after a reconnect they go again with the same nonces", () => {
  const store = fresh();
  welcome(store);
  store.say(store.lobby, "one");
  assert.equal(store.nextToSend().nonce, "t-1"); // on the wire, then the link drops
  store.lost();
  store.say(store.lobby, "two");
  assert.equal(store.nextToSend(), null, "nothing goes while offline");
  assert.deepEqual(store.pendingFor(store.lobby).map((i) => i.text), ["one", "two"]);
  store.welcomed({ type: "welcome", name: "alice", room: "lobby", members: ["alice"], history: [], resumed: true });
  assert.equal(store.nextToSend(), null, "not before the replay is over (our own join)");
  // The replay shows "one" arrived before the link dropped: it must not go again.
  store.receive(msg("lobby", "alice", "one", { nonce: "t-1" }));
  store.receive(joinEv("lobby", "alice"));
  const resent = store.nextToSend();
  assert.equal(resent.text, "two");
  assert.equal(resent.nonce, "t-2");
  store.receive(msg("lobby", "alice", "two", { nonce: "t-2" }));
  assert.equal(store.outbox.length, 0);
});

test("resume: hello resumes after the lobby's last event, each room's join after its own", () => {
  const store = fresh();
  assert.equal(store.resumeAfter(), null, "the first hello resumes nothing");
  welcome(store);
  joinRoom(store, "dev");
  const lobbyLast = msg("lobby", "bob", "in lobby");
  store.receive(lobbyLast);
  const devLast = msg("dev", "bob", "in dev");
  store.receive(devLast);
  store.receive(ev("dm", { from: "bob", to: "alice", text: "private" }));
  const dmId = nextId;
  store.lost();
  assert.equal(store.resumeAfter(), dmId, "private messages resume with the lobby");
  store.welcomed({ type: "welcome", name: "alice", room: "lobby", members: ["alice"], history: [], resumed: true });
  store.receive(joinEv("lobby", "alice"));
  const rejoin = store.nextToSend();
  assert.deepEqual(rejoin.frame, { type: "join", room: "dev", resume_after: devLast.id });
  assert.ok(rejoin.automatic);
});

test("a failed rejoin leaves the room in the list, dimmed, and stops its sends", () => {
  const store = fresh();
  welcome(store);
  joinRoom(store, "dev");
  store.lost();
  store.welcomed({ type: "welcome", name: "alice", room: "lobby", members: ["alice"], history: [] });
  store.receive(joinEv("lobby", "alice"));
  store.nextToSend();
  store.receive({ type: "error", code: "too_many_rooms", message: "full" });
  const dev = store.find("dev");
  assert.equal(dev.joined, false);
  assert.equal(store.say(dev, "hello?"), false);
});

test("joined: the room is added with members, topic and history, and made current", () => {
  const store = fresh();
  welcome(store);
  const request = joinRoom(store, "Dev", {
    members: ["alice", "bob"],
    topic: "ship it",
    history: [msg("Dev", "bob", "old news")],
  });
  assert.deepEqual(request.frame, { type: "join", room: "Dev" });
  const dev = store.find("dev");
  assert.equal(store.current, dev);
  assert.equal(dev.topic, "ship it");
  assert.deepEqual(dev.members, ["alice", "bob"]);
  assert.deepEqual(texts(dev), ["old news", "join"]);
  assert.equal(store.join("DEV"), true, "joining again just switches");
  assert.equal(store.requests.length, 0);
});

test("older history is prepended before the oldest shown, without duplicates", () => {
  const store = fresh();
  const a = msg("lobby", "bob", "a");
  const b = msg("lobby", "bob", "b");
  const c = msg("lobby", "bob", "c");
  welcome(store, { history: [b, c] });
  assert.ok(store.loadOlder(store.lobby));
  const request = store.nextToSend();
  assert.deepEqual(request.frame, { type: "history", room: "lobby", limit: 100, before: b.id });
  assert.equal(store.loadOlder(store.lobby), false, "one page at a time");
  const changes = store.receive({ type: "history", room: "lobby", events: [a, b], more: false });
  assert.deepEqual(texts(store.lobby), ["a", "b", "c", "join"]);
  assert.ok(store.lobby.historyDone);
  const older = changes.find((c) => c.type === "older");
  assert.deepEqual(older.entries.map((e) => e.event.text), ["a"]);
  assert.equal(older.beginning, true);
  assert.equal(store.loadOlder(store.lobby), false, "nothing older remains");
});

test("a private conversation pages its history as @name", () => {
  const store = fresh();
  welcome(store);
  const conv = store.openPrivate("bob");
  assert.equal(store.current, conv);
  store.loadOlder(conv);
  assert.deepEqual(store.nextToSend().frame, { type: "history", room: "@bob", limit: 100 });
  store.receive({ type: "history", room: "@bob", events: [ev("dm", { from: "bob", to: "alice", text: "old" })], more: true });
  assert.deepEqual(texts(conv), ["old"]);
  assert.equal(conv.historyDone, false);
  assert.equal(conv.unread, 0);
});

test("a private message is queued as dm; /msg from a room notes the echo there", () => {
  const store = fresh();
  welcome(store);
  store.queue("psst", { to: "bob", origin: store.lobby.key });
  const item = store.nextToSend();
  assert.deepEqual(outgoingFrame(item), { type: "dm", to: "bob", text: "psst", nonce: "t-1" });
  store.receive(ev("dm", { from: "alice", to: "bob", text: "psst", nonce: "t-1" }));
  assert.equal(store.outbox.length, 0);
  assert.deepEqual(texts(store.find("@bob")), ["psst"]);
  assert.match(store.lobby.entries.at(-1).notice, /→ bob: psst/);
});

test("a refused message leaves the outbox with an error; rate_limited keeps it for a retry", () => {
  const store = fresh();
  welcome(store);
  store.say(store.lobby, "x".repeat(5000));
  store.say(store.lobby, "short");
  store.nextToSend();
  const changes = store.receive({ type: "error", code: "too_long", message: "at most 4000" });
  const error = changes.find((c) => c.type === "error");
  assert.equal(error.unsent.text.length, 5000);
  assert.equal(error.message, "at most 4000");
  assert.equal(store.nextToSend().text, "short");
  const limited = store.receive({ type: "error", code: "rate_limited", message: "slow down" });
  assert.ok(limited.some((c) => c.type === "rateLimited"));
  assert.equal(store.outbox.length, 1, "kept for the retry");
  store.resend();
  assert.equal(store.nextToSend().text, "short", "the same message goes again");
});

test("/me is sent as an action and parting a room closes it on the server's answer", () => {
  const store = fresh();
  welcome(store);
  joinRoom(store, "dev");
  const dev = store.find("dev");
  store.say(dev, "waves", { action: true });
  assert.deepEqual(outgoingFrame(store.nextToSend()), {
    type: "say",
    room: "dev",
    text: "waves",
    nonce: "t-1",
    action: true,
  });
  store.receive(msg("dev", "alice", "waves", { nonce: "t-1", action: true }));
  store.ask({ type: "part", room: "dev" });
  store.nextToSend();
  const changes = store.receive(leaveEv("dev", "alice", "part"));
  assert.equal(store.find("dev"), null);
  assert.equal(store.current, store.lobby);
  assert.ok(changes.some((c) => c.type === "closed"));
});

test("an error for a request settles it and is reported; the queue moves on", () => {
  const store = fresh();
  welcome(store);
  store.ask({ type: "join", room: "bad room!" });
  store.say(store.lobby, "after");
  store.nextToSend();
  const changes = store.receive({ type: "error", code: "invalid_room", message: "no such name" });
  assert.ok(changes.some((c) => c.type === "error" && c.code === "invalid_room"));
  assert.equal(store.nextToSend().text, "after");
});

test("a request without an answer times out and stops holding up the rest", () => {
  const store = fresh();
  welcome(store);
  store.ask({ type: "rooms" });
  const request = store.nextToSend();
  store.say(store.lobby, "next");
  assert.ok(store.requestTimedOut(request));
  assert.equal(store.nextToSend().text, "next");
});

test("Alt+Up/Down order: switching by steps wraps around the list", () => {
  const store = fresh();
  welcome(store);
  joinRoom(store, "dev");
  store.openPrivate("bob");
  store.switchBy(1);
  assert.equal(store.current, store.lobby);
  store.switchBy(-1);
  assert.equal(store.current.name, "bob");
});

test("welcome history after a reconnect without resume shows only what is new", () => {
  const store = fresh();
  const a = msg("lobby", "bob", "a");
  welcome(store, { history: [a] });
  store.lost();
  const b = msg("lobby", "bob", "b");
  store.welcomed({ type: "welcome", name: "alice", room: "lobby", members: ["alice"], history: [a, b] });
  assert.deepEqual(texts(store.lobby), ["a", "join", "b"]);
});

test("the welcome's session token is kept for the next hello, and dropped when absent", () => {
  const store = new Store();
  store.welcomed({ type: "welcome", name: "alice", room: "lobby", members: ["alice"], history: [], session: "tok-1" });
  assert.equal(store.sessionToken, "tok-1");
  store.welcomed({ type: "welcome", name: "alice", room: "lobby", members: ["alice"], history: [] });
  assert.equal(store.sessionToken, null);
});

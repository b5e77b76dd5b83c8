// The client over a fake WebSocket and fake timers: handshake, refusals, reconnect with
// exact resume, and resending what was typed offline.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ChatClient } from "../../chatroom/web/lib/client.js";
import { backoffDelay } from "../../chatroom/web/lib/connection.js";
import { Store } from "../../chatroom/web/lib/store.js";

class FakeSocket {
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  /** The server sends frames in one WebSocket message, NDJSON. */
  deliver(...frames) {
    this.onmessage?.({ data: frames.map((f) => JSON.stringify(f) + "\n").join("") });
  }
  drop(reason = "") {
    this.readyState = 3;
    this.onclose?.({ code: 1006, reason });
  }
  /** What a connection the page's policy blocks does: an error, and never a close. */
  block() {
    this.onerror?.();
  }
}

class FakeClock {
  constructor() {
    this.timers = new Map();
    this.next = 0;
  }
  setTimeout(fn, ms) {
    this.next += 1;
    this.timers.set(this.next, { fn, ms });
    return this.next;
  }
  clearTimeout(id) {
    this.timers.delete(id);
  }
  setInterval() {
    return 0; // the keepalive watch is not under test here
  }
  clearInterval() {}
  /** Run every pending timeout (the reconnect wait, a retry). */
  runAll() {
    const due = [...this.timers.values()];
    this.timers.clear();
    for (const timer of due) timer.fn();
  }
}

function setup({ urls } = {}) {
  const sockets = [];
  const seen = [];
  const clock = new FakeClock();
  const client = new ChatClient({
    url: "ws://chat.lan/ws",
    urls,
    render: (changes) => seen.push(...changes),
    makeSocket: (url) => {
      const socket = new FakeSocket(url);
      sockets.push(socket);
      return socket;
    },
    clock,
    store: new Store({ noncePrefix: "n", clock: () => "12:00" }),
  });
  return { client, sockets, seen, clock, last: () => sockets.at(-1) };
}

const TS = "2026-11-26T10:00:00.000Z";
const welcomeFrame = (extra = {}) => ({
  type: "welcome",
  protocol: 1,
  name: "alice",
  server: "chatroom/0.1.0",
  room: "lobby",
  members: ["alice"],
  history: [],
  ...extra,
});

function states(seen) {
  return seen.filter((c) => c.type === "connection").map((c) => c.phase);
}

test("join: connecting, hello with the name and lazy members, then connected", () => {
  const { client, seen, last } = setup();
  client.join("alice");
  assert.equal(last().url, "ws://chat.lan/ws");
  last().open();
  assert.deepEqual(last().sent, [{ type: "hello", protocol: 1, name: "alice", lazy_members: true }]);
  last().deliver(welcomeFrame(), { type: "join", id: 1, ts: TS, room: "lobby", name: "alice" });
  assert.deepEqual(states(seen), ["connecting", "connected"]);
  assert.ok(seen.some((c) => c.type === "welcome"));
  assert.ok(client.store.lobby.ready);
});

test("name_taken: the refusal is reported and the next hello goes on the same socket", () => {
  const { client, seen, sockets, last } = setup();
  client.join("alice");
  last().open();
  last().deliver({ type: "error", code: "name_taken", message: "alice is taken" });
  assert.deepEqual(seen.filter((c) => c.type === "refused"), [
    { type: "refused", code: "name_taken", message: "alice is taken" },
  ]);
  client.join("alice2");
  assert.equal(sockets.length, 1);
  assert.equal(last().sent.at(-1).name, "alice2");
});

test("auth_failed: offline until a password is given, then a new connection sends it", () => {
  const { client, seen, sockets, clock, last } = setup();
  client.join("alice");
  last().open();
  last().deliver({ type: "error", code: "auth_failed", message: "wrong password" });
  last().drop();
  assert.equal(states(seen).at(-1), "offline");
  clock.runAll();
  assert.equal(sockets.length, 1, "no reconnect by itself: the user has to answer");
  client.join("alice", "secret");
  assert.equal(sockets.length, 2);
  last().open();
  assert.equal(last().sent[0].password, "secret");
});

test("reconnect: backoff, exact resume in hello and joins, typed lines resent once", () => {
  const { client, seen, clock, last } = setup();
  client.join("alice");
  last().open();
  last().deliver(welcomeFrame(), { type: "join", id: 5, ts: TS, room: "lobby", name: "alice" });
  client.runLine("/join dev");
  assert.deepEqual(last().sent.at(-1), { type: "join", room: "dev" });
  last().deliver(
    { type: "joined", room: "dev", members: ["alice"], topic: "", history: [] },
    { type: "join", id: 6, ts: TS, room: "dev", name: "alice" },
    { type: "message", id: 7, ts: TS, room: "dev", from: "bob", text: "in dev" },
  );
  client.runLine("first");
  assert.deepEqual(last().sent.at(-1), { type: "say", room: "dev", text: "first", nonce: "n-1" });
  last().drop();
  assert.equal(states(seen).at(-1), "reconnecting");
  const wait = seen.filter((c) => c.type === "connection").at(-1);
  assert.ok(wait.retryAt > Date.now() - 1);
  client.runLine("typed offline");
  assert.equal(client.store.pendingFor(client.store.current).length, 2);

  clock.runAll();
  last().open();
  assert.deepEqual(last().sent[0], {
    type: "hello",
    protocol: 1,
    name: "alice",
    resume_after: 5,
    lazy_members: true,
  });
  last().deliver(
    welcomeFrame({ resumed: true, gap: false }),
    { type: "join", id: 8, ts: TS, room: "lobby", name: "alice" },
  );
  assert.deepEqual(last().sent[1], { type: "join", room: "dev", resume_after: 7 });
  // The replay shows "first" arrived before the drop; only the other line goes again.
  last().deliver(
    { type: "joined", room: "dev", members: ["alice"], topic: "", history: [], resumed: true },
    { type: "message", id: 9, ts: TS, room: "dev", from: "alice", text: "first", nonce: "n-1" },
    { type: "join", id: 10, ts: TS, room: "dev", name: "alice" },
  );
  assert.deepEqual(last().sent.slice(2), [
    { type: "say", room: "dev", text: "typed offline", nonce: "n-2" },
  ]);
  last().deliver({ type: "message", id: 11, ts: TS, room: "dev", from: "alice", text: "typed offline", nonce: "n-2" });
  assert.equal(client.store.outbox.length, 0);
  assert.equal(last().sent.length, 3, "nothing sent twice");
});

test("the server's ping is answered with its token", () => {
  const { client, last } = setup();
  client.join("alice");
  last().open();
  last().deliver(welcomeFrame(), { type: "ping", token: "k1" });
  assert.deepEqual(last().sent.at(-1), { type: "pong", token: "k1" });
});

test("rate_limited: the message in flight goes again after a short wait, same nonce", () => {
  const { client, clock, last } = setup();
  client.join("alice");
  last().open();
  last().deliver(welcomeFrame(), { type: "join", id: 1, ts: TS, room: "lobby", name: "alice" });
  client.runLine("hi");
  last().deliver({ type: "error", code: "rate_limited", message: "slow down" });
  clock.runAll();
  const says = last().sent.filter((f) => f.type === "say");
  assert.deepEqual(says.map((f) => f.nonce), ["n-1", "n-1"]);
});

test("commands: usage errors and offline requests become alerts, nothing is sent", () => {
  const { client, seen, last } = setup();
  client.join("alice");
  last().open();
  last().deliver(welcomeFrame(), { type: "join", id: 1, ts: TS, room: "lobby", name: "alice" });
  const before = last().sent.length;
  client.runLine("/msg bob");
  client.runLine("/frobnicate");
  client.runLine("/part");
  const errors = seen.filter((c) => c.type === "error").map((c) => c.message);
  assert.match(errors[0], /Usage: \/msg NAME TEXT/);
  assert.match(errors[1], /Unknown command \/frobnicate/);
  assert.match(errors[2], /Everyone stays in #lobby/);
  assert.equal(last().sent.length, before);
  assert.equal(client.runLine("/help"), "help");
});

test("backoff doubles from 1 s to at most 30 s, within the jitter", () => {
  const mid = () => 0.5;
  assert.equal(backoffDelay(1, { rand: mid }), 1);
  assert.equal(backoffDelay(2, { rand: mid }), 2);
  assert.equal(backoffDelay(5, { rand: mid }), 16);
  assert.equal(backoffDelay(9, { rand: mid }), 30);
  assert.ok(backoffDelay(1, { rand: () => 0 }) >= 0.8);
  assert.ok(backoffDelay(20, { rand: () => 1 }) <= 30);
});

test("after /nick, a reconnect says hello with the new name", () => {
  const { client, clock, last } = setup();
  client.join("alice");
  last().open();
  last().deliver(welcomeFrame(), { type: "join", id: 1, ts: TS, room: "lobby", name: "alice" });
  client.runLine("/nick alicia");
  assert.deepEqual(last().sent.at(-1), { type: "nick", name: "alicia" });
  last().deliver({ type: "nick", id: 2, ts: TS, room: "lobby", old: "alice", new: "alicia" });
  last().drop();
  clock.runAll();
  last().open();
  assert.equal(last().sent[0].name, "alicia");
  assert.equal(last().sent[0].resume_after, 2);
});

test("a handshake timeout while the user picks another name does not reconnect by itself", () => {
  const { client, seen, sockets, clock, last } = setup();
  client.join("alice");
  last().open();
  last().deliver({ type: "error", code: "name_taken", message: "taken" });
  last().deliver({ type: "error", code: "handshake_timeout", message: "too slow" });
  last().drop();
  clock.runAll();
  assert.equal(sockets.length, 1);
  assert.equal(states(seen).at(-1), "offline");
  assert.deepEqual(seen.filter((c) => c.type === "refused").map((c) => c.code), ["name_taken"]);
  client.join("alice2");
  last().open();
  assert.equal(last().sent[0].name, "alice2");
});

const NODES = ["ws://node1:5000/ws", "ws://node2:5000/ws", "ws://node3:5000/ws"];

test("several servers: the first that answers is used, in order, with no wait between", () => {
  const { client, seen, sockets, clock, last } = setup({ urls: NODES });
  client.join("alice");
  last().drop(); // node1 refuses
  assert.equal(clock.timers.size, 0, "no backoff wait while a server is left to try");
  last().drop(); // node2 too
  last().open();
  last().deliver(welcomeFrame());
  assert.deepEqual(sockets.map((s) => s.url), NODES);
  assert.deepEqual(states(seen), ["connecting", "connecting", "connecting", "connected"]);
  const connected = seen.filter((c) => c.type === "connection").at(-1);
  assert.equal(connected.server, "node3:5000");
});

test("several servers: a server the page may not reach (only an error, no close) is passed over", () => {
  const { client, seen, sockets, last } = setup({ urls: NODES });
  client.join("alice");
  last().block();
  assert.equal(sockets[0].readyState, 3, "given up on");
  assert.equal(last().url, NODES[1]);
  last().open();
  last().deliver(welcomeFrame());
  assert.equal(states(seen).at(-1), "connected");
  last().readyState = 3; // a failing open socket is closed by the time of its error
  last().block(); // and its close says why, so it is awaited
  assert.equal(states(seen).at(-1), "connected");
  last().drop();
  assert.ok(client.store.lobby.entries.some((e) => e.notice?.startsWith("Disconnected: the connection was lost")));
});

test("several servers: a loss moves on to the next at once, resuming exactly there", () => {
  const { client, seen, sockets, clock, last } = setup({ urls: NODES });
  client.join("alice");
  last().open();
  last().deliver(welcomeFrame(), { type: "join", id: 5, ts: TS, room: "lobby", name: "alice" });
  client.runLine("typed before the loss");
  last().drop();
  assert.equal(sockets.length, 2);
  assert.equal(last().url, NODES[1]);
  assert.equal(clock.timers.size, 0);
  assert.ok(
    client.store.lobby.entries.some(
      (e) => e.notice === "Disconnected: the connection was lost; trying node2:5000…",
    ),
  );
  last().open();
  assert.equal(last().sent[0].resume_after, 5);
  last().deliver(welcomeFrame({ resumed: true }), { type: "join", id: 6, ts: TS, room: "lobby", name: "alice" });
  assert.deepEqual(
    last().sent.filter((f) => f.type === "say").map((f) => [f.text, f.nonce]),
    [["typed before the loss", "n-1"]],
  );
  assert.equal(states(seen).at(-1), "connected");
});

test("several servers: backoff only after a whole round failed, then round again in order", () => {
  const { client, seen, sockets, clock, last } = setup({ urls: NODES });
  client.join("alice");
  last().open();
  last().deliver(welcomeFrame());
  last().drop(); // node1 goes away: node2 and node3 are tried at once
  last().drop();
  assert.equal(clock.timers.size, 0);
  last().drop(); // node3: the round (node1, node2, node3) has failed
  assert.equal(states(seen).at(-1), "reconnecting");
  assert.equal(clock.timers.size, 1, "now the backoff wait");
  clock.runAll();
  last().drop();
  last().drop();
  last().drop();
  assert.equal(clock.timers.size, 1);
  assert.deepEqual(sockets.map((s) => s.url), [...NODES, ...NODES]);
});

test("several servers: a refusal the user answers stays with that server", () => {
  const { client, sockets, clock, last } = setup({ urls: NODES });
  client.join("alice");
  last().open();
  last().deliver({ type: "error", code: "auth_failed", message: "wrong password" });
  last().drop();
  clock.runAll();
  assert.equal(sockets.length, 1);
  client.join("alice", "secret");
  assert.equal(last().url, NODES[0]);
});

test("one server: no server named, and a loss waits before the next attempt as before", () => {
  const { client, seen, clock, last } = setup();
  client.join("alice");
  last().open();
  last().deliver(welcomeFrame());
  last().drop();
  assert.equal(clock.timers.size, 1);
  assert.ok(seen.filter((c) => c.type === "connection").every((c) => c.server === ""));
  assert.ok(client.store.lobby.entries.some((e) => e.notice === "Disconnected: the connection was lost"));
});

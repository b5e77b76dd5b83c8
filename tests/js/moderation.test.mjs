// Accounts and moderation in the browser: the commands and their requests, roles and
// kicks in the store, and the account password on the hello, never kept for Up.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ChatClient } from "../../chatroom/web/lib/client.js";
import { parseCommand } from "../../chatroom/web/lib/commands.js";
import { answers } from "../../chatroom/web/lib/conversation.js";
import { isSecret, modWords, requestFor, roleOf } from "../../chatroom/web/lib/moderation.js";
import { Store } from "../../chatroom/web/lib/store.js";

const TS = "2026-11-26T10:00:00.000Z";

test("each command typed in #dev makes the request the protocol spells out", () => {
  const cases = [
    ["/register correct horse", { type: "register", password: "correct horse" }],
    ["/password old1old1 new2new2", { type: "password", old_password: "old1old1", password: "new2new2" }],
    ["/kick bob spamming", { type: "kick", room: "dev", name: "bob", reason: "spamming" }],
    ['/kick "Bob Smith"', { type: "kick", room: "dev", name: "Bob Smith" }],
    ["/ban bob 10m flood", { type: "ban", name: "bob", room: "dev", duration_s: 600, reason: "flood" }],
    ["/ban -s bob 2h", { type: "ban", name: "bob", duration_s: 7200 }],
    ["/unban bob", { type: "unban", name: "bob", room: "dev" }],
    ["/bans -s", { type: "bans" }],
    ["/mute bob 300", { type: "mute", room: "dev", name: "bob", duration_s: 300 }],
    ["/unmute bob", { type: "unmute", room: "dev", name: "bob" }],
    ["/op bob", { type: "role", room: "dev", name: "bob", role: "op" }],
    ["/devoice bob", { type: "role", room: "dev", name: "bob", role: "none" }],
    ["/invite bob", { type: "invite", room: "dev", name: "bob" }],
    ["/mode invite on key off slow 30", { type: "mode", room: "dev", invite_only: true, key: "", slow_s: 30 }],
  ];
  for (const [line, frame] of cases) assert.deepEqual(requestFor(parseCommand(line), "dev"), frame, line);
  for (const line of ["/register", "/kick", "/mode slow", "/mode colour red"]) {
    assert.equal(parseCommand(line).kind, "usage", line);
  }
});

test("password lines are secret; the mod event answers its request", () => {
  assert.ok(isSecret("/register hunter22") && isSecret("/LOGIN x") && isSecret("/password a b"));
  assert.ok(!isSecret("/kick bob") && !isSecret("register hunter22"));
  const mod = { type: "mod", id: 1, ts: TS, room: "dev", by: "alice", action: "kick", target: "bob" };
  assert.ok(answers(mod, { type: "kick", room: "dev", name: "bob" }, "alice"));
  assert.ok(!answers(mod, { type: "kick", room: "dev", name: "bob" }, "carol"));
  assert.ok(answers({ type: "registered", account: "a" }, { type: "register", password: "x" }, "a"));
  assert.equal(
    modWords({ ...mod, action: "ban", reason: "r", until: "2026-11-26T11:00:00.000Z" }),
    "alice ban bob until 2026-11-26T11:00:00.000Z: r",
  );
});

test("the store follows account, ops and voices, and a kick of us ends the room", () => {
  const store = new Store({ noncePrefix: "t", clock: () => "12:00" });
  store.welcomed({
    type: "welcome",
    name: "alice",
    room: "lobby",
    members: ["alice", "bob"],
    history: [],
    account: "alice",
    roles: ["admin"],
    ops: ["alice"],
  });
  store.receive({ type: "join", id: 1, ts: TS, room: "lobby", name: "alice" });
  assert.equal(store.account, "alice");
  assert.deepEqual(store.roles, ["admin"]);
  const lobby = store.lobby;
  assert.equal(roleOf("alice", lobby), "op");
  store.receive({ type: "mod", id: 2, ts: TS, room: "lobby", by: "alice", action: "role", target: "bob", role: "voice" });
  assert.equal(roleOf("bob", lobby), "voice");
  store.receive({ type: "nick", id: 3, ts: TS, room: "lobby", old: "bob", new: "rob" });
  assert.equal(roleOf("rob", lobby), "voice");
  store.receive({ type: "leave", id: 4, ts: TS, room: "lobby", name: "alice", reason: "kicked", by: "root", text: "bye" });
  assert.equal(lobby.joined, false);
  const last = lobby.entries.at(-1).event;
  assert.equal(last.by, "root");
  assert.equal(last.text, "bye");
});

class FakeSocket {
  constructor() {
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
  deliver(...frames) {
    this.onmessage?.({ data: frames.map((f) => JSON.stringify(f) + "\n").join("") });
  }
}

test("name_registered: the next hello on the same socket carries account_password", () => {
  const sockets = [];
  const seen = [];
  const client = new ChatClient({
    url: "ws://chat.lan/ws",
    render: (changes) => seen.push(...changes),
    makeSocket: () => {
      const socket = new FakeSocket();
      sockets.push(socket);
      return socket;
    },
    clock: { setTimeout: () => 0, clearTimeout() {}, setInterval: () => 0, clearInterval() {} },
    store: new Store({ noncePrefix: "n", clock: () => "12:00" }),
  });
  client.join("alice");
  sockets[0].open();
  sockets[0].deliver({ type: "error", code: "name_registered", message: "registered" });
  assert.ok(seen.some((c) => c.type === "refused" && c.code === "name_registered"));
  client.join("alice", "", "correct horse");
  assert.equal(sockets.length, 1);
  assert.deepEqual(sockets[0].sent.at(-1), {
    type: "hello",
    protocol: 1,
    name: "alice",
    lazy_members: true,
    account_password: "correct horse",
  });
});

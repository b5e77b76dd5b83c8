// The wire helpers: NDJSON splitting of what the server sends, and the request builders.
import assert from "node:assert/strict";
import { test } from "node:test";

import * as wire from "../../chatroom/web/lib/protocol.js";

test("one WebSocket message with several frames splits into each frame, in order", () => {
  const data =
    '{"type":"join","id":1,"ts":"t","room":"lobby","name":"a"}\n' +
    '{"type":"message","id":2,"ts":"t","room":"lobby","from":"a","text":"hi"}\n';
  const { frames, bad } = wire.splitFrames(data);
  assert.deepEqual(frames.map((f) => f.id), [1, 2]);
  assert.deepEqual(bad, []);
});

test("the empty tail, blank lines and a \\r before the newline are not frames", () => {
  const { frames, bad } = wire.splitFrames('{"type":"pong","token":""}\r\n\n   \n');
  assert.equal(frames.length, 1);
  assert.equal(frames[0].type, "pong");
  assert.deepEqual(bad, []);
});

test("only \\n splits: U+2028 and U+0085 inside a string stay part of the text", () => {
  const text = "a\u2028b\u0085c";
  const { frames } = wire.splitFrames(JSON.stringify({ type: "message", text }) + "\n");
  assert.equal(frames.length, 1);
  assert.equal(frames[0].text, text);
});

test("a line that is not a JSON object with a string type is set aside, the rest kept", () => {
  const data = 'nope\n[1,2]\n{"no":"type"}\nnull\n{"type":"pong"}\n';
  const { frames, bad } = wire.splitFrames(data);
  assert.deepEqual(frames, [{ type: "pong" }]);
  assert.deepEqual(bad, ["nope", "[1,2]", '{"no":"type"}', "null"]);
});

test("hello carries protocol 1 and the name; password and resume_after only when set", () => {
  assert.deepEqual(wire.hello({ name: "alice" }), {
    type: "hello",
    protocol: 1,
    name: "alice",
    lazy_members: true,
  });
  assert.deepEqual(wire.hello({ name: "alice", password: "pw", resumeAfter: 0, lazyMembers: false }), {
    type: "hello",
    protocol: 1,
    name: "alice",
    password: "pw",
    resume_after: 0,
  });
});

test("hello carries a cluster's session token back only when there is one", () => {
  assert.equal(wire.hello({ name: "alice", session: null }).session, undefined);
  assert.equal(wire.hello({ name: "alice", session: "tok-1" }).session, "tok-1");
});

test("say and dm carry the nonce, and action only when it is one", () => {
  assert.deepEqual(wire.say({ text: "hi", nonce: "n-1" }), {
    type: "say",
    room: "lobby",
    text: "hi",
    nonce: "n-1",
  });
  assert.deepEqual(wire.say({ text: "waves", room: "dev", action: true }), {
    type: "say",
    room: "dev",
    text: "waves",
    action: true,
  });
  assert.deepEqual(wire.dm({ to: "bob", text: "psst", nonce: "n-2" }), {
    type: "dm",
    to: "bob",
    text: "psst",
    nonce: "n-2",
  });
});

test("join resumes after an id only when one is given; history pages before an id", () => {
  assert.deepEqual(wire.join("dev"), { type: "join", room: "dev" });
  assert.deepEqual(wire.join("dev", 41), { type: "join", room: "dev", resume_after: 41 });
  assert.deepEqual(wire.history("dev"), { type: "history", room: "dev", limit: 100 });
  assert.deepEqual(wire.history("@bob", 12, 50), {
    type: "history",
    room: "@bob",
    before: 12,
    limit: 50,
  });
});

test("the other builders match docs/protocol.md", () => {
  assert.deepEqual(wire.part("dev"), { type: "part", room: "dev" });
  assert.deepEqual(wire.who("dev"), { type: "who", room: "dev" });
  assert.deepEqual(wire.rooms(), { type: "rooms" });
  assert.deepEqual(wire.topic("dev", ""), { type: "topic", room: "dev", text: "" });
  assert.deepEqual(wire.nick("alicia"), { type: "nick", name: "alicia" });
  assert.deepEqual(wire.pong("t1"), { type: "pong", token: "t1" });
  assert.deepEqual(wire.pong(undefined), { type: "pong", token: "" });
  assert.deepEqual(wire.bye(), { type: "bye" });
});

test("encode gives one JSON line without a raw newline, even for multi-line text", () => {
  const line = wire.encode(wire.say({ text: "one\ntwo" }));
  assert.ok(!line.includes("\n"));
  assert.equal(JSON.parse(line).text, "one\ntwo");
});

test("the socket address follows the page: ws: for http:, wss: for https:, path /ws", () => {
  assert.equal(wire.socketUrl({ protocol: "http:", host: "chat.lan:8080" }), "ws://chat.lan:8080/ws");
  assert.equal(wire.socketUrl({ protocol: "https:", host: "chat.example" }), "wss://chat.example/ws");
});

test("servers: HOST:PORT items in their order, each once; anything else is left out", () => {
  assert.deepEqual(wire.parseServers("host1:5000,host2:5001"), ["host1:5000", "host2:5001"]);
  assert.deepEqual(wire.parseServers(" z.lan:1 , a.lan:2 ,z.lan:1"), ["z.lan:1", "a.lan:2"]);
  assert.deepEqual(wire.parseServers("[::1]:5000,[fe80::1:2]:6000"), ["[::1]:5000", "[fe80::1:2]:6000"]);
  assert.deepEqual(wire.parseServers("10.0.0.7:5000,my-node.example.org:443"), [
    "10.0.0.7:5000",
    "my-node.example.org:443",
  ]);
  for (const bad of [
    "host1",
    "host1:",
    ":5000",
    "host1:0",
    "host1:65536",
    "host1:50a",
    "evil.example/x:5000",
    "user@evil.example:5000",
    "evil.example:5000/path",
    "evil.example:5000?q",
    "evil example:5000",
    "::1:5000",
    "[::1]",
    "[::1%eth0]:5000",
    "[host]:5000",
    "ws://host1:5000",
    "host1:5000#",
  ]) {
    assert.deepEqual(wire.parseServers(`${bad},good.lan:5000`), ["good.lan:5000"], bad);
  }
  assert.deepEqual(wire.parseServers(""), []);
  assert.deepEqual(wire.parseServers(null), []);
});

test("servers: ?servers= gives one socket address each, in the page's scheme", () => {
  const page = (protocol, search) => ({ protocol, host: "host1:5000", search });
  assert.deepEqual(wire.socketUrls(page("http:", "?servers=host1:5000,host2:5001")), [
    "ws://host1:5000/ws",
    "ws://host2:5001/ws",
  ]);
  assert.deepEqual(wire.socketUrls(page("https:", "?servers=%5B::1%5D:443,b.example:8443")), [
    "wss://[::1]:443/ws",
    "wss://b.example:8443/ws",
  ]);
  // Without the parameter, or with nothing valid in it: the page's own host, as before.
  assert.deepEqual(wire.socketUrls(page("http:", "")), ["ws://host1:5000/ws"]);
  assert.deepEqual(wire.socketUrls(page("https:", "?servers=bad/one")), ["wss://host1:5000/ws"]);
  assert.deepEqual(wire.socketUrls({ protocol: "http:", host: "h:1" }), ["ws://h:1/ws"]);
  assert.equal(wire.serverOf("wss://[::1]:443/ws"), "[::1]:443");
});

// Slash commands: what each typed line means, and the usage errors.
import assert from "node:assert/strict";
import { test } from "node:test";

import { COMMANDS, parseCommand } from "../../chatroom/web/lib/commands.js";

test("plain text is sent exactly as typed, spaces and newlines included", () => {
  assert.deepEqual(parseCommand("  hi there "), { kind: "send", text: "  hi there " });
  assert.deepEqual(parseCommand("one\ntwo"), { kind: "send", text: "one\ntwo" });
});

test("a blank line is empty; // escapes a leading slash", () => {
  assert.deepEqual(parseCommand(""), { kind: "empty" });
  assert.deepEqual(parseCommand("  \n "), { kind: "empty" });
  assert.deepEqual(parseCommand("//shrug"), { kind: "send", text: "/shrug" });
});

test("/me sends an action; without text it shows its usage", () => {
  assert.deepEqual(parseCommand("/me waves"), { kind: "action", text: "waves" });
  assert.deepEqual(parseCommand("/ME waves  twice"), { kind: "action", text: "waves  twice" });
  assert.deepEqual(parseCommand("/me"), { kind: "usage", hint: "/me TEXT" });
  assert.deepEqual(parseCommand("/me   "), { kind: "usage", hint: "/me TEXT" });
});

test("/join takes a room with or without #; /j is the same; no room is a usage error", () => {
  assert.deepEqual(parseCommand("/join dev"), { kind: "join", room: "dev" });
  assert.deepEqual(parseCommand("/join #dev "), { kind: "join", room: "dev" });
  assert.deepEqual(parseCommand("/j dev"), { kind: "join", room: "dev" });
  assert.deepEqual(parseCommand("/join"), { kind: "usage", hint: "/join ROOM" });
  assert.deepEqual(parseCommand("/join #"), { kind: "usage", hint: "/join ROOM" });
});

test("/part leaves the current conversation or a named one; /leave and /close too", () => {
  assert.deepEqual(parseCommand("/part"), { kind: "part", room: null });
  assert.deepEqual(parseCommand("/part #dev"), { kind: "part", room: "dev" });
  assert.deepEqual(parseCommand("/leave dev"), { kind: "part", room: "dev" });
  assert.deepEqual(parseCommand("/close"), { kind: "part", room: null });
});

test("/msg needs a name and text; a quoted name may hold spaces", () => {
  assert.deepEqual(parseCommand("/msg bob hi there"), { kind: "msg", to: "bob", text: "hi there" });
  assert.deepEqual(parseCommand('/msg "Bob Smith" hi'), { kind: "msg", to: "Bob Smith", text: "hi" });
  assert.deepEqual(parseCommand("/msg bob"), { kind: "usage", hint: "/msg NAME TEXT" });
  assert.deepEqual(parseCommand("/msg"), { kind: "usage", hint: "/msg NAME TEXT" });
});

test("/query opens a private conversation, with optional text", () => {
  assert.deepEqual(parseCommand("/query bob"), { kind: "query", name: "bob", text: "" });
  assert.deepEqual(parseCommand("/query bob hello"), { kind: "query", name: "bob", text: "hello" });
  assert.deepEqual(parseCommand("/query"), { kind: "usage", hint: "/query NAME [TEXT]" });
});

test("/nick needs a name; surrounding blanks are dropped", () => {
  assert.deepEqual(parseCommand("/nick  alicia "), { kind: "nick", name: "alicia" });
  assert.deepEqual(parseCommand("/nick"), { kind: "usage", hint: "/nick NAME" });
});

test("/topic alone shows the topic; with text sets it as typed", () => {
  assert.deepEqual(parseCommand("/topic"), { kind: "showTopic" });
  assert.deepEqual(parseCommand("/topic  release on Friday"), {
    kind: "setTopic",
    text: "release on Friday",
  });
});

test("commands without arguments ignore what follows, and have their aliases", () => {
  assert.deepEqual(parseCommand("/who"), { kind: "who" });
  assert.deepEqual(parseCommand("/names"), { kind: "who" });
  assert.deepEqual(parseCommand("/rooms"), { kind: "rooms" });
  assert.deepEqual(parseCommand("/list now"), { kind: "rooms" });
  assert.deepEqual(parseCommand("/help"), { kind: "help" });
  assert.deepEqual(parseCommand("/?"), { kind: "help" });
  assert.deepEqual(parseCommand("/clear"), { kind: "clear" });
  assert.deepEqual(parseCommand("/quit"), { kind: "quit" });
  assert.deepEqual(parseCommand("/exit"), { kind: "quit" });
  assert.deepEqual(parseCommand("/notify"), { kind: "notify" });
});

test("an unknown /word is reported with its spelling; a lone slash is a typo", () => {
  assert.deepEqual(parseCommand("/Shrug"), { kind: "unknown", name: "Shrug" });
  assert.deepEqual(parseCommand("/"), { kind: "unknown", name: "" });
  assert.deepEqual(parseCommand("/ hello"), { kind: "unknown", name: "" });
  assert.deepEqual(parseCommand("/toString"), { kind: "unknown", name: "toString" });
});

test("the help lists every command the parser knows", () => {
  const listed = new Set(COMMANDS.map(([usage]) => usage.split(" ")[0]));
  for (const word of ["/help", "/join", "/part", "/rooms", "/who", "/msg", "/query", "/me", "/topic", "/nick", "/clear", "/quit"]) {
    assert.ok(listed.has(word), word);
    assert.notEqual(parseCommand(`${word} x y`).kind, "unknown", word);
  }
});

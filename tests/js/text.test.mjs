// inert() and mentions: untrusted text is shown, never obeyed.
import assert from "node:assert/strict";
import { test } from "node:test";

import { inert, mentions, nameColour, splitMentions } from "../../chatroom/web/lib/text.js";

test("C0 and C1 controls show as escapes, as the terminal client shows them", () => {
  assert.equal(inert("a\x1b[31mb"), "a\\x1b[31mb");
  assert.equal(inert("bell\x07 del\x7f c1\x9b"), "bell\\x07 del\\x7f c1\\x9b");
});

test("bidi overrides and isolates show as escapes and cannot reorder anything", () => {
  assert.equal(inert("evil\u202etxt.exe"), "evil\\u202etxt.exe");
  assert.equal(inert("\u2066x\u2069"), "\\u2066x\\u2069");
});

test("a message keeps its line breaks; a name shows them as \\n", () => {
  assert.equal(inert("one\ntwo", { keepNewlines: true }), "one\ntwo");
  assert.equal(inert("one\ntwo"), "one\\ntwo");
  assert.equal(inert("a\\b"), "a\\\\b");
});

test("joiners that shape ordinary text (emoji sequences) are left alone", () => {
  const family = "👨\u200d👩\u200d👧";
  assert.equal(inert(family), family);
  assert.equal(inert("plain ascii & <b>tags</b>"), "plain ascii & <b>tags</b>");
});

test("a mention is the name as a whole word, in any case", () => {
  assert.ok(mentions("alice", "hey Alice, look"));
  assert.ok(mentions("alice", "ALICE"));
  assert.ok(!mentions("alice", "malice aforethought"));
  assert.ok(!mentions("alice", "alice_bot"));
  assert.ok(mentions("Bob Smith", "ask bob smith."));
  assert.ok(!mentions(null, "alice"));
});

test("a name with regex characters matches literally", () => {
  assert.ok(mentions("a.b", "hi a.b"));
  assert.ok(!mentions("a.b", "hi axb"));
});

test("splitMentions cuts the text around each mention and loses nothing", () => {
  const parts = splitMentions("bob", "bob: hi bob!");
  assert.deepEqual(parts, [["bob", true], [": hi ", false], ["bob", true], ["!", false]]);
  assert.deepEqual(splitMentions("bob", "nobody"), [["nobody", false]]);
});

test("a name's colour is stable and ignores case", () => {
  assert.equal(nameColour("Alice"), nameColour("alice"));
  assert.ok(nameColour("alice") >= 0 && nameColour("alice") < 12);
});

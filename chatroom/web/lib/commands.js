// What a line typed into the composer means: a message, a slash command, or nothing.
// Pure, as chatroom/tui/commands.py, whose rules it follows: the app only maps the
// result to a request or an action.

import { MODERATION_COMMANDS, MODERATION_WORDS, parseModeration } from "./moderation.js";

/** For the help view: how each command is typed, and what it does. */
export const COMMANDS = [
  ["/help", "show this help"],
  ["/join ROOM", "join a room (made if new) and switch to it; a leading # is fine"],
  ["/part [ROOM]", "leave this room (or ROOM); in a private conversation, close it"],
  ["/rooms", "list the server's rooms with their members and topics (also /list)"],
  ["/who", "list the people in this room (also /names)"],
  ["/msg NAME TEXT", 'a private message (quote a name with spaces: "Bob Smith")'],
  ["/query NAME [TEXT]", "open the private conversation with NAME and switch to it"],
  ["/me TEXT", "send an action: * you TEXT"],
  ["/topic [TEXT]", "show this room's topic, or set it to TEXT"],
  ["/nick NAME", "change your name"],
  ["/notify", "ask to show desktop notifications for mentions and private messages"],
  ["/clear", "clear this conversation's messages on this page"],
  ["/quit", "leave the chat (also /exit); Reconnect comes back"],
  ...MODERATION_COMMANDS,
  ["//text", "send text that starts with a slash"],
];

/** For the help view: the keys. */
export const KEYS = [
  ["Enter", "send"],
  ["Shift+Enter", "a new line in the message"],
  ["Alt+Up / Alt+Down", "previous / next conversation"],
  ["Esc", "mark this conversation read"],
  ["Up", "in an empty message box: the last line sent"],
  ["Page Up / scrolling up", "older messages"],
];

const NO_ARGUMENT = {
  help: { kind: "help" },
  "?": { kind: "help" },
  who: { kind: "who" },
  names: { kind: "who" },
  rooms: { kind: "rooms" },
  list: { kind: "rooms" },
  clear: { kind: "clear" },
  quit: { kind: "quit" },
  exit: { kind: "quit" },
  notify: { kind: "notify" },
};

const USAGE = {
  me: "/me TEXT",
  msg: "/msg NAME TEXT",
  query: "/query NAME [TEXT]",
  nick: "/nick NAME",
  topic: "/topic [TEXT]",
  join: "/join ROOM",
  j: "/join ROOM",
  part: "/part [ROOM]",
  leave: "/part [ROOM]",
  close: "/part [ROOM]",
};

// Only the ASCII blanks separate a command from its words, as in the terminal client's
// \s: a name may hold other spaces the server allows.
const COMMAND_WORD = /^\/(\S+)\s*/u;

function isBlank(text) {
  return text.trim() === "";
}

/** `NAME TEXT` or `"NAME WITH SPACES" TEXT` -> [name, text]. */
function splitName(rest) {
  if (rest.startsWith('"')) {
    const end = rest.indexOf('"', 1);
    if (end > 0) return [rest.slice(1, end), rest.slice(end + 1).replace(/^ +/, "")];
  }
  const space = rest.indexOf(" ");
  if (space < 0) return [rest, ""];
  return [rest.slice(0, space), rest.slice(space + 1).replace(/^ +/, "")];
}

// IRC users type rooms with a #; here the # is how rooms are shown, not part of the name.
function roomWord(rest) {
  const trimmed = rest.trim();
  return (trimmed.startsWith("#") ? trimmed.slice(1) : trimmed).trim();
}

/**
 * Classify one line of input: `{kind, ...}`. Kinds: account {what, secret, old} and
 * moderate {what, ...} (see moderation.js), send {text}, action {text},
 * msg {to, text}, query {name, text}, nick {name}, setTopic {text}, showTopic, join {room},
 * part {room|null}, rooms, who, help, clear, quit, notify, unknown {name}, usage {hint},
 * empty. The command word is case-insensitive; "//" escapes the slash; a blank line is
 * empty; anything else is sent exactly as typed, spaces and newlines included.
 */
export function parseCommand(line) {
  if (isBlank(line)) return { kind: "empty" };
  if (line.startsWith("//")) return { kind: "send", text: line.slice(1) };
  if (!line.startsWith("/")) return { kind: "send", text: line };
  if (line.length === 1 || /\s/u.test(line[1])) {
    return { kind: "unknown", name: "" }; // a slash and a space reads as a typo
  }
  const match = COMMAND_WORD.exec(line);
  const name = match[1];
  const rest = line.slice(match[0].length);
  const word = name.toLowerCase();
  if (Object.hasOwn(NO_ARGUMENT, word)) return { ...NO_ARGUMENT[word] };
  if (MODERATION_WORDS.has(word)) {
    const hint = MODERATION_COMMANDS.find(([usage]) => usage.split(" ")[0] === `/${word}`);
    return parseModeration(word, rest) ?? { kind: "usage", hint: hint ? hint[0] : `/${word} NAME` };
  }
  if (!Object.hasOwn(USAGE, word)) return { kind: "unknown", name };
  const usage = { kind: "usage", hint: USAGE[word] };
  switch (word) {
    case "msg": {
      const [to, text] = splitName(rest);
      return !to || isBlank(text) ? usage : { kind: "msg", to, text };
    }
    case "query": {
      const [who, text] = splitName(rest);
      return !who ? usage : { kind: "query", name: who, text: isBlank(text) ? "" : text };
    }
    case "part":
    case "leave":
    case "close":
      return { kind: "part", room: roomWord(rest) || null };
    case "topic":
      return isBlank(rest) ? { kind: "showTopic" } : { kind: "setTopic", text: rest };
    default:
      break;
  }
  if (isBlank(rest)) return usage;
  if (word === "join" || word === "j") {
    const room = roomWord(rest);
    return room ? { kind: "join", room } : usage;
  }
  if (word === "me") return { kind: "action", text: rest };
  return { kind: "nick", name: rest.trim() };
}

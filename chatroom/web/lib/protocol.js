// The wire as the browser speaks it: NDJSON splitting of what the server sends, and one
// builder per request. No socket and no DOM, so the same functions serve tests.
// The full reference is docs/protocol.md.

export const PROTOCOL_VERSION = 1;
export const DEFAULT_ROOM = "lobby";
// One page of older events: a few screenfuls (the server caps pages at 500).
export const HISTORY_PAGE_EVENTS = 100;

/**
 * The frames in one WebSocket text message: one JSON object per line, each ended by "\n".
 * Splits on "\n" only (JSON leaves U+2028 unescaped inside strings), tolerates a "\r"
 * before it, skips blank lines. Lines that are no JSON object with a string `type` are
 * returned in `bad` instead of stopping the rest.
 */
export function splitFrames(data) {
  const frames = [];
  const bad = [];
  for (const raw of String(data).split("\n")) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line.trim() === "") continue;
    let value;
    try {
      value = JSON.parse(line);
    } catch {
      bad.push(line);
      continue;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      bad.push(line);
    } else if (typeof value.type !== "string") {
      bad.push(line);
    } else {
      frames.push(value);
    }
  }
  return { frames, bad };
}

/** One frame as the text of one WebSocket message (no newline needed that way). */
export function encode(frame) {
  return JSON.stringify(frame);
}

// Optional fields go on the wire only when set: a server that predates them never sees them.
function frame(type, fields) {
  const out = { type };
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || value === null || value === false) continue;
    out[key] = value;
  }
  return out;
}

export function hello({ name, password, resumeAfter, lazyMembers = true, accountPassword }) {
  return frame("hello", {
    protocol: PROTOCOL_VERSION,
    name,
    password: password || null,
    resume_after: resumeAfter,
    lazy_members: lazyMembers,
    account_password: accountPassword || null,
  });
}

export function say({ text, room = DEFAULT_ROOM, nonce, action = false }) {
  return frame("say", { room, text, nonce, action });
}

export function dm({ to, text, nonce, action = false }) {
  return frame("dm", { to, text, nonce, action });
}

export function join(room, resumeAfter = null, key = null) {
  return frame("join", { room, resume_after: resumeAfter, key: key || null });
}

export function part(room) {
  return frame("part", { room });
}

export function who(room = DEFAULT_ROOM) {
  return frame("who", { room });
}

export function rooms() {
  return frame("rooms", {});
}

export function topic(room, text) {
  return { type: "topic", room, text };
}

export function nick(name) {
  return frame("nick", { name });
}

export function history(room, before = null, limit = HISTORY_PAGE_EVENTS) {
  return frame("history", { room, before, limit });
}

export function ping(token = "") {
  return { type: "ping", token };
}

export function pong(token = "") {
  return { type: "pong", token: typeof token === "string" ? token : "" };
}

export function bye() {
  return { type: "bye" };
}

/** The WebSocket address on the page's own host: wss: when the page came over https:. */
export function socketUrl(location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

/** Event frames: they carry an id and belong to a room (or, for dm, to two people). */
export const EVENT_TYPES = new Set(["message", "join", "leave", "topic", "nick", "dm", "mod"]);

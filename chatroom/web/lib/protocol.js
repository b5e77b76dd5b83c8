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

export function hello({
  name,
  password,
  resumeAfter,
  lazyMembers = true,
  accountPassword,
  session,
}) {
  return frame("hello", {
    protocol: PROTOCOL_VERSION,
    name,
    password: password || null,
    resume_after: resumeAfter,
    lazy_members: lazyMembers,
    account_password: accountPassword || null,
    // A cluster node's welcome.session: any node then gives our name back at once.
    session: session || null,
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

// One server of a cluster as the page's `servers` parameter names it: HOST:PORT, the
// host of letters, digits, dots and hyphens, or an IPv6 address in brackets. Nothing
// else, so the parameter can only ever name a host, never a path, a user or a scheme.
const SERVER_ITEM = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/;

/**
 * The valid HOST:PORT items of a comma-separated list, in their order, each once.
 * Invalid items are left out: a mistyped one must not stop the others from working.
 */
export function parseServers(text) {
  const found = [];
  for (const raw of String(text ?? "").split(",")) {
    const item = raw.trim();
    const match = SERVER_ITEM.exec(item);
    if (match === null) continue;
    const port = Number(match[1]);
    if (port < 1 || port > 65535) continue;
    if (!found.includes(item)) found.push(item);
  }
  return found;
}

/**
 * The WebSocket addresses to try, the preferred first: the servers the page's
 * `?servers=HOST:PORT,...` parameter names (same scheme as the page), or, without
 * any valid one, the page's own host.
 */
export function socketUrls(location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const servers = parseServers(new URLSearchParams(location.search ?? "").get("servers"));
  if (servers.length === 0) return [socketUrl(location)];
  return servers.map((server) => `${scheme}//${server}/ws`);
}

/** HOST:PORT of a WebSocket address, as the page shows it. */
export function serverOf(url) {
  return String(url).replace(/^wss?:\/\//, "").replace(/\/ws$/, "");
}

/** Event frames: they carry an id and belong to a room (or, for dm, to two people). */
export const EVENT_TYPES = new Set(["message", "join", "leave", "topic", "nick", "dm", "mod"]);

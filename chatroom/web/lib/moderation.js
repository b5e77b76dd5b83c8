// Accounts and moderation in the browser: the slash commands, their requests, and how
// roles and moderation events read. Pure, as chatroom/tui/moderating.py, whose rules it
// follows. Lines that carry a password are never kept for Up to bring back (isSecret).

/** For the help view, after the other commands. */
export const MODERATION_COMMANDS = [
  ["/register PASSWORD", "register your name as an account (8 to 256 characters)"],
  ["/login PASSWORD", "log in to the account of your name (joins again)"],
  ["/password OLD NEW", "change your account's password (your other sessions end)"],
  ["/kick NAME [REASON]", "put NAME out of this room (ops)"],
  [
    "/ban [-s] NAME [TIME] [REASON]",
    "keep NAME out of this room, or the server with -s (staff); TIME like 600, 10m, 2h, 1d; none: until /unban",
  ],
  ["/unban [-s] NAME", "lift a ban"],
  ["/bans [-s]", "list this room's bans, or the server's"],
  ["/mute NAME [TIME] [REASON]", "NAME stays but may not speak here"],
  ["/unmute NAME", "lift a mute"],
  ["/op NAME", "make NAME an op of this room (/deop takes it back)"],
  ["/voice NAME", "let NAME speak in a moderated room (/devoice takes it back)"],
  [
    "/mode moderated on|off",
    "change this room's modes, several at once: also invite on|off, key WORD|off, registered on|off, slow SECONDS",
  ],
  ["/invite NAME", "let NAME into this room past invite-only and its key"],
];

export const MODERATION_WORDS = new Set([
  ...MODERATION_COMMANDS.map(([usage]) => usage.split(" ")[0].slice(1)),
  "deop",
  "devoice",
]);
const SECRET_WORDS = new Set(["register", "login", "password"]);
const ROLES = { op: "op", deop: "none", voice: "voice", devoice: "none" };
const UNITS_S = { "": 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
const ON_OFF = { on: true, off: false, yes: true, no: false };
const MODE_FIELDS = { invite: "invite_only", moderated: "moderated", registered: "registered_only" };

/** Whether `line` carries a password: never kept for the Up key. */
export function isSecret(line) {
  if (!line.startsWith("/")) return false;
  const word = line.slice(1).split(/\s+/u, 1)[0].toLowerCase();
  return SECRET_WORDS.has(word);
}

function nameAndRest(rest) {
  const text = rest.trim();
  if (text.startsWith('"')) {
    const end = text.indexOf('"', 1);
    if (end > 0) return [text.slice(1, end), text.slice(end + 1).trim()];
  }
  const space = text.indexOf(" ");
  return space < 0 ? [text, ""] : [text.slice(0, space), text.slice(space + 1).trim()];
}

function duration(word) {
  const match = /^(\d{1,12})([smhdw]?)$/u.exec(word.toLowerCase());
  return match ? Number(match[1]) * UNITS_S[match[2]] : null;
}

function modes(rest) {
  const words = rest.split(/\s+/u).filter(Boolean);
  if (!words.length || words.length % 2) return null;
  const settings = {};
  for (let i = 0; i < words.length; i += 2) {
    const setting = words[i].toLowerCase();
    const value = words[i + 1];
    if (setting === "key") settings.key = value.toLowerCase() === "off" ? "" : value;
    else if (setting === "slow") {
      const seconds = duration(value);
      if (seconds === null) return null;
      settings.slow_s = seconds;
    } else if (Object.hasOwn(MODE_FIELDS, setting) && Object.hasOwn(ON_OFF, value.toLowerCase())) {
      settings[MODE_FIELDS[setting]] = ON_OFF[value.toLowerCase()];
    } else return null;
  }
  return { kind: "moderate", what: "mode", settings };
}

/** `/word rest` as a command, or null when it is missing what it needs. */
export function parseModeration(word, rest) {
  if (SECRET_WORDS.has(word)) {
    const parts = rest.trim().split(/\s+/u).filter(Boolean);
    if (word === "password") {
      return parts.length === 2 ? { kind: "account", what: word, old: parts[0], secret: parts[1] } : null;
    }
    return rest.trim() ? { kind: "account", what: word, secret: rest.trim() } : null;
  }
  let server = false;
  let text = rest;
  if (word === "ban" || word === "unban" || word === "bans") {
    const trimmed = rest.trim();
    if (trimmed === "-s" || trimmed.startsWith("-s ")) {
      server = true;
      text = trimmed.slice(2);
    }
  }
  if (word === "bans") return { kind: "moderate", what: word, server };
  if (word === "mode") return modes(rest);
  let [name, tail] = nameAndRest(text);
  if (!name) return null;
  let seconds = null;
  if ((word === "ban" || word === "mute") && tail) {
    const space = tail.indexOf(" ");
    const first = space < 0 ? tail : tail.slice(0, space);
    seconds = duration(first);
    if (seconds !== null) tail = space < 0 ? "" : tail.slice(space + 1).trim();
  }
  if (Object.hasOwn(ROLES, word)) return { kind: "moderate", what: word, name };
  return { kind: "moderate", what: word, name, server, duration: seconds, reason: tail };
}

function optional(frame) {
  for (const key of Object.keys(frame)) {
    if (frame[key] === null || frame[key] === undefined || frame[key] === "") {
      if (key !== "key") delete frame[key];
    }
  }
  return frame;
}

/** The request for an account or moderation command typed in `room` (null: /login). */
export function requestFor(command, room) {
  if (command.kind === "account") {
    if (command.what === "register") return { type: "register", password: command.secret };
    if (command.what === "password") {
      return { type: "password", old_password: command.old, password: command.secret };
    }
    return null;
  }
  const where = command.server ? null : room;
  const { name, reason, duration: seconds } = command;
  switch (command.what) {
    case "mode":
      return { type: "mode", room, ...command.settings };
    case "kick":
      return optional({ type: "kick", room, name, reason });
    case "ban":
      return optional({ type: "ban", name, room: where, duration_s: seconds, reason });
    case "unban":
      return optional({ type: "unban", name, room: where });
    case "bans":
      return optional({ type: "bans", room: where });
    case "mute":
      return optional({ type: "mute", room, name, duration_s: seconds, reason });
    case "unmute":
      return { type: "unmute", room, name };
    case "invite":
      return { type: "invite", room, name };
    default:
      return { type: "role", room, name, role: ROLES[command.what] };
  }
}

const ACTIONS = {
  kick: "kick",
  ban: "ban",
  unban: "unban",
  mute: "mute",
  unmute: "unmute",
  mode: "mode",
  invite: "invite",
  role: "role",
};

/** Whether `frame` answers the moderation request `request` (errors aside). */
export function answersModeration(frame, request, me) {
  if (request.type === "register" || request.type === "password") return frame.type === "registered";
  if (request.type === "bans") return frame.type === "bans";
  return frame.type === "mod" && frame.by === me && ACTIONS[request.type] === frame.action;
}

/** A room role as shown beside a name: "op", "voice" or "". */
export function roleOf(name, conv) {
  if (conv.ops && conv.ops.has(name)) return "op";
  if (conv.voices && conv.voices.has(name)) return "voice";
  return "";
}

/** A moderation event in words (plain text: the view puts it in text nodes). */
export function modWords(event) {
  let what = `${event.by} ${event.action} ${event.target}`;
  if (event.role) what += ` (${event.role})`;
  if (event.action === "mode") {
    const on = [];
    if (event.invite_only) on.push("invite-only");
    if (event.key_set) on.push("key");
    if (event.moderated) on.push("moderated");
    if (event.registered_only) on.push("registered-only");
    if (event.slow_s) on.push(`slow ${event.slow_s} s`);
    what += `: ${on.join(", ") || "open"}`;
  }
  if (event.until) what += ` until ${event.until}`;
  if (event.reason) what += `: ${event.reason}`;
  return what;
}

/** The answer to /bans as one notice. */
export function bansLine(frame) {
  const where = frame.room ? `#${frame.room}` : "the server";
  const bans = Array.isArray(frame.bans) ? frame.bans : [];
  if (!bans.length) return `Nobody is banned from ${where}.`;
  const lines = bans.map(
    (ban) => `${ban.name} by ${ban.by}, until ${ban.until ?? "lifted"}${ban.reason ? `: ${ban.reason}` : ""}`,
  );
  return `Banned from ${where}:\n${lines.join("\n")}`;
}

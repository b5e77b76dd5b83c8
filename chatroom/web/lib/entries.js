// One line of the message log as DOM, built only with createElement and textContent:
// whatever a stranger typed stays text. Every piece of it goes through inert() and into
// a <bdi>, so a right-to-left name cannot reorder the words around it and a control
// character shows as an escape instead of acting.

import { label } from "./conversation.js";
import { modWords } from "./moderation.js";
import { inert, mentions, nameColour, splitMentions } from "./text.js";

const LEAVE_WORDS = {
  quit: "quit",
  part: "left",
  disconnected: "was disconnected",
  timeout: "timed out",
  slow_consumer: "was dropped (too slow to read)",
  kicked: "was removed by the server",
  shutdown: "left: the server is stopping",
};

export function el(tag, className = "", text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}

/** Untrusted one-line text (a name, a room) isolated from what surrounds it. */
export function bdi(text, className = "") {
  return el("bdi", className, inert(text));
}

export function nameNode(name) {
  return bdi(name, `nick nc${nameColour(name)}`);
}

/** A message body: line breaks kept, controls shown, mentions of `me` marked. */
function body(text, me) {
  const node = el("bdi", "text");
  for (const [part, isMention] of splitMentions(me, inert(text, { keepNewlines: true }))) {
    node.append(isMention ? el("mark", "mention", part) : document.createTextNode(part));
  }
  return node;
}

/** HH:MM in local time, or the wire's own digits if the time does not parse. */
export function localTime(ts) {
  const moment = new Date(ts);
  if (Number.isNaN(moment.getTime())) return inert(String(ts).slice(11, 16));
  return moment.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** The local day an event belongs to, for the day separators. */
export function localDay(ts) {
  const moment = new Date(ts);
  return Number.isNaN(moment.getTime()) ? "" : moment.toDateString();
}

export function daySeparator(ts) {
  const moment = new Date(ts);
  const text = moment.toLocaleDateString([], {
    weekday: "long",
    year: "numeric",
    month: "long",
    day: "numeric",
  });
  const node = el("div", "day", text);
  node.setAttribute("role", "separator");
  node.setAttribute("aria-label", text);
  return node;
}

export function marker() {
  const node = el("div", "marker", "New messages");
  node.setAttribute("role", "separator");
  node.setAttribute("aria-label", "New messages");
  return node;
}

function stamp(ts) {
  const node = el("time", "ts", localTime(ts));
  node.dateTime = String(ts);
  return node;
}

function words(...parts) {
  return parts.map((part) => (typeof part === "string" ? document.createTextNode(part) : part));
}

/** What an event says, as nodes after its time stamp. */
function eventParts(event, me, conv) {
  switch (event.type) {
    case "message":
    case "dm":
      if (event.action) return words("* ", nameNode(event.from), " ", body(event.text, me));
      return words(nameNode(event.from), el("span", "sep", ": "), body(event.text, me));
    case "join":
      return words("→ ", nameNode(event.name), " joined ", bdi(label(conv)));
    case "leave": {
      const reason = String(event.reason ?? "disconnected");
      if (typeof event.by === "string") {
        const why = event.text ? [": ", body(String(event.text), null)] : [];
        return words("← ", nameNode(event.name), ` was ${inert(reason)} by `, nameNode(event.by), ...why);
      }
      const said = LEAVE_WORDS[reason] ?? `left (${inert(reason)})`;
      return words("← ", nameNode(event.name), ` ${said}`);
    }
    case "topic":
      return event.text
        ? words(nameNode(event.from), " set the topic: ", body(event.text, null))
        : words(nameNode(event.from), " cleared the topic");
    case "nick":
      return words(nameNode(event.old), " is now known as ", nameNode(event.new));
    case "mod":
      return words("⚑ ", bdi(modWords(event), "mod"));
    default:
      return words(inert(event.type));
  }
}

function eventClass(event, me) {
  const kinds = ["line", `ev-${event.type}`];
  if ((event.type === "message" || event.type === "dm") && event.from === me) kinds.push("own");
  if (event.action) kinds.push("action");
  return kinds.join(" ");
}

/**
 * One entry of a conversation as a node: an event is a listitem, a notice of the page's
 * own is not (the log's listitems are its messages and events, one each).
 */
export function entryNode(entry, conv, me) {
  if (entry.notice !== undefined) {
    const node = el("div", `notice ${entry.level}`, inert(entry.notice, { keepNewlines: true }));
    node.dataset.n = String(entry.n);
    return node;
  }
  const event = entry.event;
  const node = el("div", eventClass(event, me));
  node.setAttribute("role", "listitem");
  node.dataset.n = String(entry.n);
  if (entry.history) node.classList.add("history");
  const said = event.type === "message" || event.type === "dm";
  if (said && event.from !== me && mentions(me, event.text)) node.classList.add("mentioned");
  node.append(stamp(event.ts), " ", ...eventParts(event, me, conv));
  return node;
}

/** A message typed and not yet acknowledged: shown dimmed until its echo replaces it. */
export function pendingNode(item, me, online) {
  const node = el("div", "line pending own");
  node.setAttribute("role", "listitem");
  const state = el("span", "state", online && item.sent ? " (sending…)" : " (waiting to send)");
  const who = nameNode(me ?? "you");
  const parts = item.action
    ? words("* ", who, " ", body(item.text, null))
    : words(who, el("span", "sep", ": "), body(item.text, null));
  node.append(el("span", "ts", "··:··"), " ", ...parts, state);
  return node;
}

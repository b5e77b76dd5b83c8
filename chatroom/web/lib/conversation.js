// Rooms and private conversations: what the page keeps for each, and what waits to go.
// Plain data and pure functions (the terminal client's chatroom/tui/conversation.py).

import { answersModeration } from "./moderation.js";
import { DEFAULT_ROOM } from "./protocol.js";
import { fold } from "./text.js";

export function roomKey(name) {
  return "#" + fold(name);
}

/** The key of the private conversation with `name` (never equal to a room's key). */
export function privateKey(name) {
  return "@" + fold(name);
}

// A conversation keeps at most this many lines; older ones come back by paging.
export const MAX_ENTRIES = 2000;

export function newConversation(name, isPrivate) {
  return {
    key: isPrivate ? privateKey(name) : roomKey(name),
    /** The room's name as stored, or the other person's name. */
    name,
    private: isPrivate,
    members: [],
    // The room's ops and voiced members, as welcome, joined, members and mod events say.
    ops: new Set(),
    voices: new Set(),
    /** Above this many members the server sends no joins and leaves (lazy members). */
    lazyAbove: null,
    membersAt: null,
    topic: "",
    /** In the room, or meaning to be after a reconnect; false after a failed rejoin. */
    joined: true,
    /** Our own join came on this connection: any replay is over, sends may go. */
    ready: false,
    /** The last event of the room: where a rejoin resumes. */
    lastId: null,
    joins: 0,
    unread: 0,
    mentions: 0,
    /** A page of older events was asked for and has not come. */
    paging: false,
    pageBefore: null,
    /** The server said there is nothing older. */
    historyDone: false,
    /** What the page shows, oldest first: {n, event} or {n, notice, level}. */
    entries: [],
    /** "id ts" of every event in entries: a page or a replay never shows one twice. */
    seen: new Set(),
    /** The entry (by n) where unread begins: the "new messages" marker sits above it. */
    markerAt: null,
  };
}

/** How the sidebar and headings name it: `#dev`, `@bob` (untrusted: inert it to show). */
export function label(conv) {
  return (conv.private ? "@" : "#") + conv.name;
}

/** The `room` of a history request for it: private pages are `@name`. */
export function historyRoom(conv) {
  return conv.private ? "@" + conv.name : conv.name;
}

/** The key an event's identity is checked by (a server restarted without its store
 * counts ids from 1 again, so the time goes with the id). */
export function eventKey(event) {
  return `${event.id} ${event.ts}`;
}

/** The request that sends an outgoing message (the same nonce every time). */
export function outgoingFrame(item) {
  if (item.to !== null) {
    return { type: "dm", to: item.to, text: item.text, nonce: item.nonce, ...actionField(item) };
  }
  return {
    type: "say",
    room: item.room,
    text: item.text,
    nonce: item.nonce,
    ...actionField(item),
  };
}

function actionField(item) {
  return item.action ? { action: true } : {};
}

/** Whether the server frame `frame` answers the request `request` (errors aside). */
export function answers(frame, request, me) {
  switch (request.type) {
    case "join":
      return frame.type === "joined" && roomKey(frame.room) === roomKey(request.room);
    case "part":
      return (
        frame.type === "leave" &&
        frame.name === me &&
        frame.reason === "part" &&
        roomKey(frame.room) === roomKey(request.room)
      );
    case "topic":
      return (
        frame.type === "topic" &&
        frame.from === me &&
        roomKey(frame.room) === roomKey(request.room)
      );
    case "who":
      return (
        frame.type === "members" &&
        roomKey(frame.room) === roomKey(request.room ?? DEFAULT_ROOM)
      );
    case "rooms":
      return frame.type === "rooms";
    case "history":
      return frame.type === "history" && frame.room === request.room;
    case "nick":
      return frame.type === "nick" && frame.old === me;
    default:
      return answersModeration(frame, request, me);
  }
}

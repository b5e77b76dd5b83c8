// The chat's state without a page: conversations, counts, members, what waits to be sent,
// where each room resumes and what each shows. It applies server frames and the user's
// requests and records what changed; the view takes those records (takeChanges) and
// renders them. It follows the terminal client's ChatModel (chatroom/tui/model.py), so
// both clients behave alike; nothing here touches the DOM, a socket or a timer.

import { answers, eventKey, historyRoom, label, privateKey, roomKey } from "./conversation.js";
import { Conversations } from "./conversations.js";
import { DEFAULT_ROOM, EVENT_TYPES, HISTORY_PAGE_EVENTS } from "./protocol.js";
import { bansLine } from "./moderation.js";
import { mentions } from "./text.js";

// Request errors that mean the message in flight went nowhere and never will.
const REFUSED_SENDS = new Set(["too_long", "bad_request", "no_such_member", "not_joined"]);

function randomPrefix() {
  const bytes = new Uint8Array(4);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function clockNow() {
  const now = new Date();
  return `${String(now.getHours()).padStart(2, "0")}:${String(now.getMinutes()).padStart(2, "0")}`;
}

export class Store extends Conversations {
  /** `noncePrefix`: what every nonce starts with (random when null); `clock`: HH:MM. */
  constructor({ noncePrefix = null, clock = clockNow } = {}) {
    super();
    this.clock = clock;
    /** Our name as the server last confirmed it (null before the first welcome). */
    this.me = null;
    /** A cluster node's welcome.session, for the next hello (null: none given). */
    this.sessionToken = null;
    /** A connection is up and welcomed. */
    this.online = false;
    // this.outbox: typed and not yet acknowledged. Only the head is ever on the wire, and
    // only once its room's replay is over (conv.ready): one at a time keeps the order and
    // makes a rate_limited answer unambiguous; the nonce makes a resend after a reconnect
    // exactly-once.
    // Other requests (joins, parts, pages of history...) go before waiting messages, one
    // at a time as well: errors carry no request id, so what is in flight is what an
    // error is about.
    this.requests = [];
    this.inFlight = null;
    this.noncePrefix = noncePrefix ?? randomPrefix();
    this.nonces = 0;
    // Where the lobby and private messages resume (hello's resume_after); other rooms
    // keep their own conv.lastId.
    this.lastEventId = null;
    this.welcomes = 0;
    /** Rooms from the last `rooms` answer: [{name, members, topic}]. */
    this.knownRooms = [];
    /** The account we are logged in to (null: a guest) and its staff roles. */
    this.account = null;
    this.roles = [];
  }

  // ---------------------------------------------------------------- the connection

  /** The server welcomed us: back into every room we were in, each from its last event. */
  welcomed(welcome) {
    this.sessionToken = welcome.session ?? null;
    this.online = true;
    this.me = welcome.name;
    const lobby = this.lobby;
    const room = welcome.room ?? DEFAULT_ROOM;
    if (roomKey(room) !== lobby.key) this._rekey(lobby, roomKey(room));
    lobby.name = room;
    lobby.members = [...(welcome.members ?? [])];
    setRoles(lobby, welcome);
    this.account = welcome.account ?? null;
    this.roles = Array.isArray(welcome.roles) ? welcome.roles : [];
    lobby.lazyAbove = welcome.lazy_members_above ?? null;
    lobby.membersAt = this.clock();
    lobby.joined = true;
    lobby.ready = false;
    if (welcome.gap) this._gap(lobby);
    this._addHistory(lobby, welcome.history ?? [], this.welcomes > 0);
    this.welcomes += 1;
    this.requests = [];
    for (const conv of this.convs.values()) {
      if (conv !== lobby && !conv.private && conv.joined) {
        this.requests.push({
          frame: { type: "join", room: conv.name, ...resumeField(conv.lastId) },
          automatic: true,
        });
      }
    }
    this._change("name", { name: this.me });
    this._change("members", { conv: lobby });
    this._change("rooms");
  }

  /** hello's resume_after: after a loss, ask for what was missed (null at first). */
  resumeAfter() {
    return this.welcomes ? this.lastEventId : null;
  }

  /** The connection is gone: nothing is in flight, every room waits for its rejoin.
   * The outbox stays: its messages go again, with the same nonces, once reconnected. */
  lost() {
    this.online = false;
    this.inFlight = null;
    this.requests = [];
    for (const conv of this.convs.values()) {
      conv.ready = false;
      conv.paging = false;
    }
    this._change("pending");
  }

  _gap(conv) {
    this.notice(conv, "Some messages are missing here: the server no longer keeps them.", "warn");
  }

  // ---------------------------------------------------------------- frames

  /** Apply one frame from the server; returns every change since the last take. */
  receive(frame) {
    const answered = this._takeAnswer(frame);
    if (EVENT_TYPES.has(frame.type) && typeof frame.id === "number") {
      this._liveEvent(frame);
    } else if (frame.type === "joined") {
      this._joined(frame, answered !== null && !answered.automatic);
    } else if (frame.type === "history") {
      this._olderPage(frame);
    } else if (frame.type === "members") {
      this._members(frame, answered);
    } else if (frame.type === "rooms") {
      this.knownRooms = Array.isArray(frame.rooms) ? frame.rooms : [];
      if (answered !== null) this.notice(this.current, roomsLine(this.knownRooms));
    } else if (frame.type === "registered") {
      this.account = String(frame.account ?? "");
      this.notice(this.current, `Account ${this.account}: its password is set.`);
    } else if (frame.type === "bans") {
      this.notice(this.current, bansLine(frame));
    } else if (frame.type === "error") {
      this._serverError(String(frame.code ?? ""), String(frame.message ?? ""));
    }
    return this.takeChanges();
  }

  _takeAnswer(frame) {
    const request = this.inFlight;
    if (request === null || !("frame" in request) || !answers(frame, request.frame, this.me)) {
      return null;
    }
    this.requests.shift();
    this.inFlight = null;
    return request;
  }

  _liveEvent(event) {
    const me = this.me;
    const acked = this._acknowledges(event);
    if (event.type === "dm") {
      this._privateEvent(event, acked);
      return;
    }
    const conv = event.room ? this.convs.get(roomKey(event.room)) : undefined;
    if (!conv || conv.private) {
      // A room already left (its last words may still be on the way), or a rename seen
      // in no room at all.
      if (event.type === "nick") this._renamed(event);
      return;
    }
    // The latest, not the highest: a server restarted without its store counts from 1.
    if (conv === this.lobby) this.lastEventId = event.id;
    else conv.lastId = event.id;
    if (event.type === "join" && event.name === me) {
      // The room's replay (after a resume) is over: what waits for it may go.
      conv.ready = true;
      conv.joins += 1;
      this._change("rooms");
    } else if (event.type === "leave" && event.name === me && event.reason === "part") {
      if (conv.ready) {
        this.close(conv);
        this._change("left", { conv });
        return;
      }
    } else if (event.type === "leave" && event.name === me && event.reason === "kicked") {
      // Put out (kicked or banned): the entry stays with the reason; no rejoin.
      conv.joined = false;
      conv.ready = false;
      this._change("members", { conv });
      this._change("rooms");
    } else if (event.type === "mod" && event.action === "role") {
      conv.ops.delete(event.target);
      conv.voices.delete(event.target);
      if (event.role === "op") conv.ops.add(event.target);
      else if (event.role === "voice") conv.voices.add(event.target);
      this._change("members", { conv });
    } else if (event.type === "join" && conv.ready) {
      // Only live ones: a replay's comings and goings are older than the member list the
      // welcome or joined brought.
      if (!conv.members.includes(event.name)) conv.members.push(event.name);
      this._change("members", { conv });
    } else if (event.type === "leave" && conv.ready) {
      conv.members = conv.members.filter((name) => name !== event.name);
      this._change("members", { conv });
    } else if (event.type === "nick") {
      if (conv.ready) conv.members = conv.members.map((m) => (m === event.old ? event.new : m));
      for (const roles of [conv.ops, conv.voices]) {
        if (roles.delete(event.old)) roles.add(event.new);
      }
      this._renamed(event);
      this._change("members", { conv });
    } else if (event.type === "topic") {
      conv.topic = String(event.text ?? "");
      this._change("topic", { conv });
    }
    const entry = this._show(conv, event);
    if (entry && event.type === "message" && event.from !== this.me) {
      this._noteUnread(conv, entry, event, mentions(this.me, event.text));
    }
  }

  _privateEvent(event, acked) {
    const me = this.me;
    this.lastEventId = event.id;
    const other = event.from === me ? event.to : event.from;
    const conv = this.convs.get(privateKey(other)) ?? this._add(other, true);
    conv.name = other; // as the server spells it
    const entry = this._show(conv, event);
    if (entry && event.from !== me) {
      this._noteUnread(conv, entry, event, true); // addressed to you: it counts as a mention
    } else if (acked && acked.origin && acked.origin !== conv.key) {
      const origin = this.convs.get(acked.origin);
      if (origin) this.notice(origin, `→ ${other}: ${event.action ? "* " : ""}${event.text}`);
    }
    this._change("rooms");
  }

  /** Someone (maybe us) has a new name: follow it in our name and private entries. */
  _renamed(event) {
    if (event.old === this.me) {
      this.me = event.new;
      this._change("name", { name: event.new });
    }
    for (const item of this.outbox) {
      if (item.to !== null && privateKey(item.to) === privateKey(event.old)) item.to = event.new;
    }
    const conv = this.convs.get(privateKey(event.old));
    if (conv && !this.convs.has(privateKey(event.new))) {
      this._rekey(conv, privateKey(event.new));
      conv.name = event.new;
      this._show(conv, event);
      this._change("rooms");
      if (conv === this.current) this._change("switched", { conv });
    }
  }

  _joined(joined, switchTo) {
    const conv = this.convs.get(roomKey(joined.room)) ?? this._add(joined.room, false);
    conv.name = joined.room;
    conv.members = [...(joined.members ?? [])];
    setRoles(conv, joined);
    conv.lazyAbove = joined.lazy_members_above ?? null;
    conv.membersAt = this.clock();
    conv.topic = String(joined.topic ?? "");
    conv.joined = true;
    conv.ready = false;
    if (joined.gap) this._gap(conv);
    this._addHistory(conv, joined.history ?? [], conv.joins > 0);
    this._change("members", { conv });
    this._change("topic", { conv });
    if (switchTo) this.switchTo(conv.key);
    else this._change("rooms");
  }

  /** A welcome's or joined's history: resumed after, maybe our own echo, never unread. */
  _addHistory(conv, events, again) {
    const fresh = [];
    for (const event of events) {
      if (conv === this.lobby || event.type !== "dm") {
        if (conv === this.lobby) this.lastEventId = event.id;
        else conv.lastId = event.id;
      }
      this._acknowledges(event);
      const key = eventKey(event);
      if (conv.seen.has(key)) continue;
      conv.seen.add(key);
      fresh.push(this._entry({ event, history: true }));
    }
    conv.entries.push(...fresh);
    this._trim(conv);
    if (fresh.length) this._change("history", { conv, entries: fresh, again });
  }

  _olderPage(page) {
    const room = String(page.room ?? "");
    const conv = room.startsWith("@")
      ? this.convs.get(privateKey(room.slice(1)))
      : this.convs.get(roomKey(room));
    if (!conv) return; // closed while the page was on its way
    conv.paging = false;
    const before = conv.pageBefore;
    const older = [];
    for (const event of page.events ?? []) {
      const key = eventKey(event);
      if ((before !== null && event.id >= before) || conv.seen.has(key)) continue;
      conv.seen.add(key);
      older.push(this._entry({ event, history: true }));
    }
    conv.entries.unshift(...older);
    if (!page.more) conv.historyDone = true;
    this._change("older", { conv, entries: older, beginning: !page.more });
  }

  _members(frame, answered) {
    const conv = this.convs.get(roomKey(String(frame.room ?? "")));
    const members = Array.isArray(frame.members) ? frame.members : [];
    if (conv && !conv.private) {
      conv.members = [...members];
      setRoles(conv, frame);
      conv.membersAt = this.clock();
      this._change("members", { conv });
    }
    // Unasked, it says a big room became small again: only the list changes.
    if (answered !== null) {
      const where = conv ?? this.current;
      const asOf = where.lazyAbove !== null && members.length > where.lazyAbove;
      const names = members.join(", ") || "nobody";
      this.notice(where, `In #${frame.room} (${members.length}${asOf ? ", a snapshot" : ""}): ${names}`);
    }
  }

  _serverError(code, message) {
    const flight = this.inFlight;
    if (code === "rate_limited" && flight !== null) {
      this._change("rateLimited"); // not delivered; again once the server has a token
      return;
    }
    if (flight !== null && "frame" in flight) {
      this.requests.shift();
      this.inFlight = null;
      this._requestFailed(flight, code, message);
      return;
    }
    if (flight !== null && REFUSED_SENDS.has(code)) {
      const unsent = this.outbox.shift();
      this.inFlight = null;
      this._change("error", { code, message, unsent });
      this._change("pending");
      return;
    }
    this._change("error", { code, message });
  }

  _requestFailed(request, code, message) {
    const frame = request.frame;
    if (frame.type === "join" && request.automatic) {
      const conv = this.convs.get(roomKey(frame.room));
      if (conv) {
        conv.joined = false;
        conv.ready = false;
        this.notice(conv, `Could not rejoin ${label(conv)}: ${message || code}`, "warn");
        this._change("rooms");
        return;
      }
    }
    if (frame.type === "history") {
      const conv = this.find(frame.room);
      if (!conv) return;
      conv.paging = false;
      if (code === "timeout") return; // scrolling up again asks again
      conv.historyDone = true; // the server keeps nothing older for us
      return;
    }
    this._change("error", { code, message, request: frame });
  }

  // ---------------------------------------------------------------- sending

  /** Add a message to the outbox with a fresh nonce (it goes by nextToSend). */
  queue(text, { room = DEFAULT_ROOM, to = null, action = false, origin = null } = {}) {
    this.nonces += 1;
    const nonce = `${this.noncePrefix}-${this.nonces}`;
    const item = { text, nonce, to, action, room, origin, sent: false };
    this.outbox.push(item);
    this._change("pending");
    return item;
  }

  /** Queue `text` for `conv`; false when it cannot take it (a room not joined). */
  say(conv, text, { action = false } = {}) {
    if (conv.private) this.queue(text, { to: conv.name, action });
    else if (conv.joined) this.queue(text, { room: conv.name, action });
    else return false;
    if (conv.markerAt !== null) {
      conv.markerAt = null; // answering is reading
      this._change("marker", { conv });
    }
    return true;
  }

  /** Queue a request that needs a live connection; false when there is none. */
  ask(frame, { automatic = false } = {}) {
    if (!this.online) return false;
    this.requests.push({ frame, automatic });
    return true;
  }

  /** Join `room` from its last event, or make it current if already in; false: offline. */
  join(room) {
    const conv = this.convs.get(roomKey(room));
    if (conv && conv.joined && !conv.private) return this.switchTo(conv.key);
    return this.ask({ type: "join", room, ...resumeField(conv ? conv.lastId : null) });
  }

  /** Ask for the page before the oldest event shown; false when not now (or never). */
  loadOlder(conv = this.current) {
    if (conv.paging || conv.historyDone || !this.online) return false;
    if (!(conv.private ? this.lobby.ready : conv.ready)) return false;
    const before = this.oldestId(conv);
    const frame = { type: "history", room: historyRoom(conv), limit: HISTORY_PAGE_EVENTS };
    if (before !== null) frame.before = before;
    if (!this.ask(frame, { automatic: true })) return false;
    conv.paging = true;
    conv.pageBefore = before;
    return true;
  }

  /** The outbox's head if its conversation is ready for it; drops what cannot go. */
  _sendable() {
    while (this.outbox.length) {
      const head = this.outbox[0];
      if (head.to !== null) return this.lobby.ready ? head : null;
      const conv = this.convs.get(roomKey(head.room));
      if (conv && conv.joined) return conv.ready && this.lobby.ready ? head : null;
      this.outbox.shift();
      this._change("error", {
        code: "not_joined",
        message: `Not sent: you are no longer in #${head.room}`,
        unsent: head,
      });
      this._change("pending");
    }
    return null;
  }

  /** The next request, or else the outbox's head, now in flight; null: nothing may go.
   * A request is {frame, automatic}; a message is an outbox item (outgoingFrame). */
  nextToSend() {
    if (!this.online || this.inFlight !== null) return null;
    if (this.requests.length) {
      this.inFlight = this.requests[0];
    } else {
      const head = this._sendable();
      if (head === null) return null;
      head.sent = true;
      this.inFlight = head;
      this._change("pending");
    }
    return this.inFlight;
  }

  /** After rate_limited, or when the socket refused it: what was in flight may go again. */
  resend() {
    this.inFlight = null;
  }

  /** `request` had no answer in time; false if it is no longer in flight. */
  requestTimedOut(request) {
    if (this.inFlight !== request) return false;
    this.requests.shift();
    this.inFlight = null;
    this._requestFailed(request, "timeout", "no answer from the server");
    return true;
  }

  /** If `event` is the echo of the outbox's head, take the head off and return it. */
  _acknowledges(event) {
    if (!this.outbox.length || (event.type !== "message" && event.type !== "dm")) return null;
    const head = this.outbox[0];
    if (event.from !== this.me || (event.type === "dm") !== (head.to !== null)) return null;
    const matches =
      typeof event.nonce === "string"
        ? event.nonce === head.nonce
        : head.sent && event.text === head.text; // a server that echoes no nonces
    if (!matches) return null;
    this.outbox.shift();
    if (this.inFlight === head) this.inFlight = null;
    this._change("pending");
    return head;
  }
}

/** A welcome's, joined's or members' ops and voices (absent: nobody has a role). */
function setRoles(conv, frame) {
  conv.ops = new Set(Array.isArray(frame.ops) ? frame.ops : []);
  conv.voices = new Set(Array.isArray(frame.voices) ? frame.voices : []);
}

function resumeField(lastId) {
  return lastId === null || lastId === undefined ? {} : { resume_after: lastId };
}

function roomsLine(rooms) {
  if (!rooms.length) return "No rooms.";
  const lines = rooms.map((room) => {
    const count = `${room.members ?? 0} ${room.members === 1 ? "member" : "members"}`;
    return `#${room.name} (${count})${room.topic ? ` — ${room.topic}` : ""}`;
  });
  return `Rooms:\n${lines.join("\n")}`;
}

// The chat without a page: the store, the connection, and what a typed line does. It
// sends what the store lets go, one thing at a time, and hands every batch of changes
// to whoever renders them (the view, or a test).

import { parseCommand } from "./commands.js";
import { requestFor } from "./moderation.js";
import { Connection } from "./connection.js";
import { label, outgoingFrame } from "./conversation.js";
import * as wire from "./protocol.js";
import { Store } from "./store.js";

// The server refills 5 tokens a second (protocol-v1's default), so one is back in 0.2 s.
export const RATE_LIMIT_RETRY_S = 0.3;
// Every request but a message is answered within a round trip; one that never is must not
// hold up everything typed after it for longer than this.
export const REQUEST_TIMEOUT_S = 10;

export class ChatClient {
  /**
   * `render(changes)`: called with every batch of store changes and connection states
   * ({type: "connection", phase, retryAt, reason, server}, {type: "refused", code, message}).
   * `url` (or `urls`), `makeSocket`, `clock`: as Connection takes them.
   */
  constructor({ url, urls, render, makeSocket, clock = globalThis, store = new Store() }) {
    this.store = store;
    this.render = render;
    this.clock = clock;
    this.name = "";
    this.password = "";
    // The account's password, once given: kept in memory for reconnects, never stored.
    this.accountPassword = "";
    this.requestTimer = null;
    this.resendTimer = null;
    this.connection = new Connection({
      url,
      urls,
      makeSocket,
      clock,
      hello: () =>
        wire.hello({
          name: this.name,
          password: this.password,
          accountPassword: this.accountPassword,
          resumeAfter: this.store.resumeAfter(),
          session: this.store.sessionToken,
        }),
      handlers: {
        onState: (state) => this._emit([{ type: "connection", ...state }]),
        onRefused: (code, message) => this._emit([{ type: "refused", code, message }]),
        onWelcome: (frame) => {
          this.name = frame.name;
          this.store.welcomed(frame);
          this._emit([{ type: "welcome", resumed: Boolean(frame.resumed) }]);
        },
        onFrame: (frame) => {
          const changes = this.store.receive(frame);
          if (this.store.me) this.name = this.store.me; // a /nick is who we come back as
          if (changes.some((c) => c.type === "rateLimited")) this._scheduleResend();
          if (this.store.inFlight === null) this._clearRequestTimer();
          this._emit(changes);
        },
        onLost: (reason, wasJoined, nextServer) => {
          this.store.lost();
          this._clearRequestTimer();
          this._clearResend();
          if (wasJoined) {
            const moving = nextServer ? `; trying ${nextServer}…` : "";
            for (const conv of this.store.convs.values()) {
              this.store.notice(conv, `Disconnected: ${reason}${moving}`, "warn");
            }
          }
          this._emit([]);
        },
      },
    });
  }

  /** Join as `name` (first time, or again after a refusal), with the server's password
   * and the account's when given. */
  join(name, password = "", accountPassword = "") {
    this.name = name;
    if (password) this.password = password;
    if (accountPassword) this.accountPassword = accountPassword;
    if (this.connection.socket !== null && !this.connection.welcomed) {
      this.connection.sendHello();
    } else {
      this.connection.start();
    }
  }

  _emit(extra) {
    const changes = [...this.store.takeChanges(), ...extra];
    this.render(changes);
    this._pump();
  }

  // ---------------------------------------------------------------- sending

  _pump() {
    const item = this.store.nextToSend();
    if (item === null) return;
    const isRequest = "frame" in item;
    const frame = isRequest ? item.frame : outgoingFrame(item);
    if (!this.connection.send(frame)) {
      this.store.resend(); // the socket is closing; the loss resets everything anyway
      return;
    }
    if (isRequest) {
      this._clearRequestTimer();
      this.requestTimer = this.clock.setTimeout(() => {
        this.requestTimer = null;
        if (this.store.requestTimedOut(item)) this._emit([]);
      }, REQUEST_TIMEOUT_S * 1000);
    }
    const changes = this.store.takeChanges();
    if (changes.length) this.render(changes);
  }

  _scheduleResend() {
    this._clearResend();
    this.resendTimer = this.clock.setTimeout(() => {
      this.resendTimer = null;
      this.store.resend();
      this._emit([]);
    }, RATE_LIMIT_RETRY_S * 1000);
  }

  _clearResend() {
    if (this.resendTimer !== null) this.clock.clearTimeout(this.resendTimer);
    this.resendTimer = null;
  }

  _clearRequestTimer() {
    if (this.requestTimer !== null) this.clock.clearTimeout(this.requestTimer);
    this.requestTimer = null;
  }

  // ---------------------------------------------------------------- what the user asks

  _error(message, code = "client") {
    return { type: "error", code, message };
  }

  _offline() {
    return this._error("Not connected; try again once reconnected.", "offline");
  }

  /** Ask the server for `frame` (join, who, topic...); an alert when offline. */
  ask(frame) {
    this._emit(this.store.ask(frame) ? [] : [this._offline()]);
  }

  /** Render whatever changed outside a frame (visibility, a read marker). */
  update() {
    this._emit([]);
  }

  markRead() {
    this.store.markRead();
    this._emit([]);
  }

  switchBy(step) {
    this.store.switchBy(step);
    this._emit([]);
  }

  openPrivate(name) {
    this.store.openPrivate(name);
    this._emit([]);
  }

  switchTo(key) {
    this.store.switchTo(key);
    this._emit([]);
  }

  joinRoom(room) {
    this._emit(this.store.join(room) ? [] : [this._offline()]);
  }

  /** Leave `conv`: a room is parted on the server; a private conversation just closes. */
  part(conv) {
    const store = this.store;
    if (conv === store.lobby) {
      this._emit([this._error(`Everyone stays in #${conv.name}: the server puts each connection there.`)]);
    } else if (conv.private || !conv.joined || !store.online) {
      store.close(conv);
      this._emit([]);
    } else {
      this.ask(wire.part(conv.name));
    }
  }

  loadOlder(conv = this.store.current) {
    if (this.store.loadOlder(conv)) this._emit([]);
  }

  /**
   * Do what a line typed in the current conversation asks. Returns what the page has to
   * do itself: "help", "notify", "quit", or null.
   */
  runLine(line) {
    const store = this.store;
    const conv = store.current;
    const command = parseCommand(line);
    const emit = (...changes) => this._emit(changes);
    switch (command.kind) {
      case "send":
      case "action":
        if (!store.say(conv, command.text, { action: command.kind === "action" })) {
          emit(this._error(`Not sent: you are not in #${conv.name}; /join ${conv.name} to go back.`));
        } else {
          emit();
        }
        return null;
      case "msg":
        store.queue(command.text, { to: command.to, origin: conv.key });
        emit();
        return null;
      case "query": {
        const target = store.openPrivate(command.name);
        if (command.text) store.say(target, command.text);
        emit();
        return null;
      }
      case "join":
        this.joinRoom(command.room);
        return null;
      case "part": {
        const target = store.find(command.room);
        if (target === null) emit(this._error(`You are not in #${command.room}.`));
        else this.part(target);
        return null;
      }
      case "rooms":
        this.ask(wire.rooms());
        return null;
      case "who":
        if (conv.private) {
          store.notice(conv, `A private conversation with ${conv.name}.`);
          emit();
        } else if (!store.online) {
          const names = conv.members.join(", ") || "none";
          store.notice(conv, `Not connected; last known members: ${names}`);
          emit();
        } else {
          this.ask(wire.who(conv.name));
        }
        return null;
      case "nick":
        if (command.name.normalize("NFC") === store.me) {
          emit(this._error(`You are already called ${command.name}.`));
        } else {
          this.ask(wire.nick(command.name));
        }
        return null;
      case "setTopic":
        if (conv.private) emit(this._error("A private conversation has no topic."));
        else this.ask(wire.topic(conv.name, command.text));
        return null;
      case "showTopic":
        store.notice(conv, topicLine(conv));
        emit();
        return null;
      case "clear":
        store.clear(conv);
        emit();
        return null;
      case "usage":
        emit(this._error(`Usage: ${command.hint}`, "usage"));
        return null;
      case "unknown":
        emit(this._error(`Unknown command /${command.name}; /help lists them (//text sends /text).`, "usage"));
        return null;
      case "help":
      case "notify":
        return command.kind;
      case "quit":
        this.connection.stop("you left");
        return "quit";
      case "account":
      case "moderate": {
        const needsRoom = command.kind === "moderate" && !command.server;
        if (needsRoom && conv.private) {
          emit(this._error("Type that in the room it is about."));
          return null;
        }
        const frame = requestFor(command, conv.name);
        if (frame !== null) {
          this.ask(frame);
          return null;
        }
        // /login: join again with the account's password.
        this.accountPassword = command.secret;
        store.notice(conv, "Logging in: joining again with the account's password.");
        emit();
        this.connection.stop("logging in");
        this.connection.start();
        return null;
      }
      default:
        return null;
    }
  }
}

/** How /topic and the room heading word a topic (untrusted: the view makes it inert). */
export function topicLine(conv) {
  if (conv.private) return `A private conversation with ${conv.name}.`;
  return conv.topic ? `Topic of ${label(conv)}: ${conv.topic}` : `${label(conv)} has no topic.`;
}

// One WebSocket to the server at a time: connect, say hello, hand frames on, and after a
// loss back off and connect again. Given several servers (nodes of one cluster) it tries
// them in order and after a loss goes straight on to the next; the backoff waits only
// once every server failed in a round. Event ids are the cluster's, so the resume
// position the hello carries is right on any node. What the frames mean is the store's
// business; what the page shows is the view's. Timers and the socket come in from
// outside, so tests can drive it without a browser.

import { encode, pong, ping, serverOf, splitFrames } from "./protocol.js";

// Reconnect pacing: 1 s doubling to 30 s, as the terminal client and most chat clients
// do, with jitter so that everyone dropped by one server restart does not come back in
// the same instant.
export const RECONNECT_INITIAL_S = 1;
export const RECONNECT_MAX_S = 30;
export const RECONNECT_JITTER = 0.2;
// A server that accepts the socket but never answers the hello is as good as gone.
export const JOIN_TIMEOUT_S = 15;
// Browsers hide WebSocket pings, so a dead link (a laptop that slept, a dropped Wi-Fi)
// shows only as silence: after this long without a frame we ping, and a ping without an
// answer for DEAD_AFTER_S more means the link is gone.
export const QUIET_S = 45;
export const DEAD_AFTER_S = 20;
const WATCH_EVERY_S = 5;

// Refusals that the user has to answer (another name, a password) before trying again.
const NEEDS_USER = new Set([
  "name_taken",
  "invalid_name",
  "auth_failed",
  "unsupported_protocol",
  "name_registered",
  "banned",
]);

/** Seconds before attempt `failures + 1`: doubling from `initial`, capped, with jitter. */
export function backoffDelay(failures, { initial = RECONNECT_INITIAL_S, max = RECONNECT_MAX_S, rand = Math.random } = {}) {
  const base = Math.min(max, initial * 2 ** Math.max(0, failures - 1));
  const jittered = base * (1 + RECONNECT_JITTER * (2 * rand() - 1));
  return Math.max(0, Math.min(max, jittered));
}

export class Connection {
  /**
   * `url`: the WebSocket address, or `urls`: several, the preferred first. `hello()`: the
   * hello frame to send (it reads the store's resume position each time). `handlers`:
   * onState({phase, retryAt, reason, server}), onRefused(code, message),
   * onWelcome(frame), onFrame(frame), onLost(reason, wasJoined, nextServer).
   * `server` is the HOST:PORT in use when there are several ("" otherwise);
   * `nextServer` the one tried at once after a loss, or null.
   */
  constructor({ url, urls, hello, handlers, makeSocket = (u) => new WebSocket(u), clock = globalThis }) {
    this.urls = urls && urls.length ? [...urls] : [url];
    // Which of `urls` the current (or next) attempt is for.
    this.index = 0;
    // Servers not yet found failing in this round: while one is left, the next attempt
    // goes to it at once.
    this.untried = this.urls.length;
    this.hello = hello;
    this.handlers = handlers;
    this.makeSocket = makeSocket;
    this.clock = clock;
    this.socket = null;
    this.welcomed = false;
    this.failures = 0;
    this.retryTimer = null;
    this.joinTimer = null;
    this.watchTimer = null;
    this.lastHeard = 0;
    this.pingSent = null;
    this.refusal = null;
    this.stopped = true;
    this.phase = "offline";
  }

  /** The WebSocket address of the current (or next) attempt. */
  get url() {
    return this.urls[this.index];
  }

  /** HOST:PORT of the current (or next) attempt when there are several, else "". */
  get server() {
    return this.urls.length > 1 ? serverOf(this.url) : "";
  }

  _state(phase, fields = {}) {
    this.phase = phase;
    this.handlers.onState?.({ phase, retryAt: null, reason: "", server: this.server, ...fields });
  }

  /** Connect now (cancelling any wait), unless a socket is already open or opening. */
  start() {
    this.stopped = false;
    this.refusal = null;
    this._clearRetry();
    if (this.socket !== null) return;
    this._connect();
  }

  /** Try again at once (the "Reconnect now" button). */
  retryNow() {
    this.failures = 0;
    this.start();
  }

  _connect() {
    this._state("connecting");
    this.welcomed = false;
    let socket;
    try {
      socket = this.makeSocket(this.url);
    } catch (error) {
      this._closed(null, `cannot connect: ${error.message}`);
      return;
    }
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      if (socket !== this.socket) return;
      this.lastHeard = Date.now();
      this.sendHello();
    };
    socket.onmessage = (message) => {
      if (socket !== this.socket) return;
      this.lastHeard = Date.now();
      this.pingSent = null;
      for (const frame of splitFrames(message.data).frames) this._frame(frame);
    };
    socket.onclose = (close) => {
      if (socket === this.socket) this._closed(socket, closeReason(close, this.welcomed));
    };
    socket.onerror = () => {
      // Once open, a close follows with what there is to say. Before that, a connection
      // the page's Content-Security-Policy blocks (a server not of this cluster) only
      // ever reports this error, and no close would come to move on to the next server.
      if (socket === this.socket && !opened) this._drop(closeReason(null, false));
    };
  }

  /** Send hello on the open socket (again after name_taken), or connect to send it. */
  sendHello() {
    this.refusal = null;
    const socket = this.socket;
    if (socket === null || socket.readyState !== 1) {
      this.start();
      return;
    }
    this._raw(this.hello());
    this.clock.clearTimeout(this.joinTimer);
    this.joinTimer = this.clock.setTimeout(() => {
      if (socket === this.socket && !this.welcomed) {
        this._drop(`no welcome from the server in ${JOIN_TIMEOUT_S} s`);
      }
    }, JOIN_TIMEOUT_S * 1000);
  }

  _frame(frame) {
    if (frame.type === "ping") {
      this._raw(pong(frame.token));
      return;
    }
    if (frame.type === "pong") return;
    if (!this.welcomed) {
      if (frame.type === "welcome") {
        this.welcomed = true;
        this.failures = 0;
        this.clock.clearTimeout(this.joinTimer);
        this._watch();
        this._state("connected");
        this.handlers.onWelcome?.(frame);
      } else if (frame.type === "error") {
        const code = String(frame.code ?? "");
        const message = String(frame.message || code);
        this.clock.clearTimeout(this.joinTimer);
        // The server gave up waiting while the user picks another name or a password:
        // the question still stands, and connecting again would only ask it again.
        if (code === "handshake_timeout" && this.refusal && NEEDS_USER.has(this.refusal.code)) {
          return;
        }
        this.refusal = { code, message };
        this.handlers.onRefused?.(code, message);
      }
      return;
    }
    this.handlers.onFrame?.(frame);
  }

  _watch() {
    this.clock.clearInterval(this.watchTimer);
    const socket = this.socket;
    this.watchTimer = this.clock.setInterval(() => {
      if (socket !== this.socket) return;
      const now = Date.now();
      if (this.pingSent !== null && now - this.pingSent > DEAD_AFTER_S * 1000) {
        this._drop("no answer from the server");
      } else if (this.pingSent === null && now - this.lastHeard > QUIET_S * 1000) {
        this.pingSent = now;
        this._raw(ping("keepalive"));
      }
    }, WATCH_EVERY_S * 1000);
  }

  _raw(frame) {
    const socket = this.socket;
    if (socket === null || socket.readyState !== 1) return false;
    socket.send(encode(frame));
    return true;
  }

  /** Send one frame once welcomed; false when there is no welcomed connection. */
  send(frame) {
    return this.welcomed && this._raw(frame);
  }

  /** Leave for good (the user quit or the page goes): bye, and no reconnecting. */
  stop(reason = "you left") {
    this.stopped = true;
    this._clearRetry();
    if (this.socket !== null) {
      this._raw({ type: "bye" });
      this._drop(reason);
    } else {
      this._state("offline", { reason });
    }
  }

  _drop(reason) {
    const socket = this.socket;
    if (socket === null) return;
    try {
      socket.close(1000);
    } catch {
      // already closing: the reason below is what counts
    }
    this._closed(socket, reason);
  }

  _closed(socket, reason) {
    const wasJoined = this.welcomed;
    this.socket = null;
    this.welcomed = false;
    this.clock.clearTimeout(this.joinTimer);
    this.clock.clearInterval(this.watchTimer);
    if (socket) socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    const refusal = this.refusal;
    const why = refusal ? refusal.message : reason;
    const needsUser = refusal !== null && NEEDS_USER.has(refusal.code);
    // Where to go next is decided first, so the notice of the loss can name it. A
    // refusal the user must answer stays with this server: any node would ask the same.
    let nextServer = null;
    if (!this.stopped && !needsUser) {
      if (wasJoined) this.untried = this.urls.length;
      this.untried -= 1;
      this.index = (this.index + 1) % this.urls.length;
      if (this.untried > 0) nextServer = serverOf(this.url);
    }
    this.handlers.onLost?.(why, wasJoined, nextServer);
    if (this.stopped) {
      this._state("offline", { reason: why });
      return;
    }
    if (needsUser) {
      this.stopped = true; // the join form asks, and start() comes back with the answer
      this._state("offline", { reason: why });
      return;
    }
    if (nextServer !== null) {
      this._connect();
      return;
    }
    this.untried = this.urls.length;
    this.failures = wasJoined ? 1 : this.failures + 1;
    const delay = backoffDelay(this.failures);
    const retryAt = Date.now() + delay * 1000;
    this._state("reconnecting", { retryAt, reason: why });
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped && this.socket === null) this._connect();
    }, delay * 1000);
  }

  _clearRetry() {
    if (this.retryTimer !== null) this.clock.clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }
}

function closeReason(close, wasJoined) {
  if (close && close.reason) return String(close.reason);
  return wasJoined ? "the connection was lost" : "cannot reach the server";
}

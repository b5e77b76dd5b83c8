// The conversations a page shows: the list, which one is current, what each shows and
// how much of it is unread. The Store (store.js) builds on it with frames and sending;
// split off so that each part reads on its own. No DOM, no socket, no timer.

import { MAX_ENTRIES, eventKey, newConversation, privateKey, roomKey } from "./conversation.js";
import { DEFAULT_ROOM } from "./protocol.js";

export class Conversations {
  constructor() {
    this.changes = [];
    /** The page is shown: the current conversation's new messages are being read. */
    this.visible = true;
    this.convs = new Map();
    this.lobby = this._new(DEFAULT_ROOM, false);
    this.current = this.lobby;
    this.serial = 0;
    /** Messages typed and not yet acknowledged, oldest first (see Store). */
    this.outbox = [];
  }

  /** What changed since the last call, oldest first. */
  takeChanges() {
    const changes = this.changes;
    this.changes = [];
    return changes;
  }

  _change(type, fields = {}) {
    this.changes.push({ type, ...fields });
  }

  // ---------------------------------------------------------------- conversations

  _new(name, isPrivate) {
    const conv = newConversation(name, isPrivate);
    this.convs.set(conv.key, conv);
    return conv;
  }

  _add(name, isPrivate) {
    const conv = this._new(name, isPrivate);
    this._change("added", { conv });
    this._change("rooms");
    return conv;
  }

  /** The conversation `name` names (`dev`, `#dev`, `@bob`, `bob`); null: the current one. */
  find(name) {
    if (name === null || name === undefined) return this.current;
    if (name.startsWith("@")) return this.convs.get(privateKey(name.slice(1))) ?? null;
    const room = name.startsWith("#") ? name.slice(1) : name;
    return this.convs.get(roomKey(room)) ?? this.convs.get(privateKey(name)) ?? null;
  }

  /** The private conversation with `name`, added if new, made current. */
  openPrivate(name) {
    const conv = this.convs.get(privateKey(name)) ?? this._add(name, true);
    this.switchTo(conv.key);
    return conv;
  }

  _rekey(conv, key) {
    this.convs = new Map([...this.convs].map(([k, c]) => [k === conv.key ? key : k, c]));
    conv.key = key;
  }

  /** Take `conv` off the list; the one before it is current if it was. */
  close(conv) {
    const keys = [...this.convs.keys()];
    const index = keys.indexOf(conv.key);
    if (index < 0 || conv === this.lobby) return;
    this.convs.delete(conv.key);
    if (conv === this.current) this.switchTo([...this.convs.keys()][Math.max(0, index - 1)]);
    this._change("closed", { conv });
    this._change("rooms");
  }

  /** Make `key` current and clear its counts; the one left keeps no marker (it was read). */
  switchTo(key) {
    const conv = this.convs.get(key);
    if (!conv) return false;
    if (conv !== this.current) this.current.markerAt = null;
    this.current = conv;
    conv.unread = 0;
    conv.mentions = 0;
    this._change("switched", { conv });
    this._change("rooms");
    return true;
  }

  /** The next (1) or previous (-1) conversation, wrapping around. */
  switchBy(step) {
    const keys = [...this.convs.keys()];
    const index = keys.indexOf(this.current.key);
    this.switchTo(keys[(index + step + keys.length) % keys.length]);
  }

  /** Esc: the conversation is read; its marker goes. */
  markRead(conv = this.current) {
    conv.unread = 0;
    conv.mentions = 0;
    conv.markerAt = null;
    this._change("marker", { conv });
    this._change("rooms");
  }

  /** The page was hidden or shown again: what comes while hidden is unread. */
  setVisible(visible) {
    if (visible === this.visible) return;
    this.visible = visible;
    const conv = this.current;
    if (!visible) {
      conv.markerAt = null; // the marker shows what came while away, not before
      this._change("marker", { conv });
    } else if (conv.unread) {
      conv.unread = 0;
      conv.mentions = 0;
      this._change("rooms");
    }
  }

  /** Unread messages in every conversation (the page title shows it). */
  unreadTotal() {
    let total = 0;
    for (const conv of this.convs.values()) total += conv.unread;
    return total;
  }

  _noteUnread(conv, entry, event, mention) {
    if (mention || event.type === "dm") this._change("notify", { conv, event, mention });
    if (conv === this.current && this.visible) return;
    conv.unread += 1;
    if (mention) conv.mentions += 1;
    if (conv.markerAt === null) conv.markerAt = entry.n;
    this._change("rooms");
  }

  // ---------------------------------------------------------------- what each shows

  _entry(fields) {
    this.serial += 1;
    return { n: this.serial, ...fields };
  }

  /** Show `event` at the end of `conv` unless it is there already; the entry or null. */
  _show(conv, event) {
    const key = eventKey(event);
    if (conv.seen.has(key)) return null;
    conv.seen.add(key);
    const entry = this._entry({ event });
    conv.entries.push(entry);
    this._trim(conv);
    this._change("appended", { conv, entry });
    return entry;
  }

  /** A line of the page's own (an answer, a warning) at the end of `conv`. */
  notice(conv, text, level = "info") {
    const entry = this._entry({ notice: text, level });
    conv.entries.push(entry);
    this._trim(conv);
    this._change("appended", { conv, entry });
    return entry;
  }

  /** /clear: the page forgets what `conv` showed (paging back brings it again). */
  clear(conv) {
    conv.entries = [];
    conv.seen = new Set();
    conv.markerAt = null;
    conv.historyDone = false;
    this._change("cleared", { conv });
  }

  _trim(conv) {
    const extra = conv.entries.length - MAX_ENTRIES;
    if (extra <= 0) return;
    for (const entry of conv.entries.splice(0, extra)) {
      if (entry.event) conv.seen.delete(eventKey(entry.event));
    }
    conv.historyDone = false;
  }

  /** The id of the oldest event `conv` shows: where a page of older ones ends. */
  oldestId(conv) {
    const first = conv.entries.find((entry) => entry.event);
    return first ? first.event.id : null;
  }

  /** Messages typed for `conv` that the server has not acknowledged yet. */
  pendingFor(conv) {
    return this.outbox.filter((item) =>
      conv.private
        ? item.to !== null && privateKey(item.to) === conv.key
        : item.to === null && roomKey(item.room) === conv.key,
    );
  }
}

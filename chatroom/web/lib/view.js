// The page: renders the store's state and its changes into the DOM. Only createElement,
// textContent and attributes: no string of anyone's ever becomes markup. It decides
// nothing about the chat; app.js wires what the user does back to the client.

import { label } from "./conversation.js";
import { bdi, daySeparator, el, entryNode, localDay, marker, nameNode, pendingNode } from "./entries.js";
import { roleOf } from "./moderation.js";
import { inert } from "./text.js";

// How close to the bottom still counts as "at the bottom" (a line and a bit).
const STICK_PX = 48;
// How close to the top starts loading older messages.
const LOAD_OLDER_PX = 120;

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

/** The accessible name of a sidebar entry: `dev`, `dev, 3 unread, 1 mention`. */
export function entryName(conv) {
  const parts = [conv.name];
  if (conv.unread) parts.push(`${conv.unread} unread`);
  if (conv.mentions) parts.push(plural(conv.mentions, "mention"));
  return parts.join(", ");
}

export class View {
  constructor(doc = document) {
    const $ = (id) => doc.getElementById(id);
    this.doc = doc;
    this.joinScreen = $("join-screen");
    this.joinForm = $("join-form");
    this.joinAlert = $("join-alert");
    this.joinName = $("join-name");
    this.passwordRow = $("password-row");
    this.joinPassword = $("join-password");
    this.accountRow = $("account-row");
    this.joinAccountPassword = $("join-account-password");
    this.chat = $("chat");
    this.status = $("status");
    this.statusReason = $("status-reason");
    this.reconnect = $("reconnect");
    this.convList = $("conv-list");
    this.title = $("conv-title");
    this.topic = $("conv-topic");
    this.alert = $("chat-alert");
    this.alertClose = $("alert-close");
    this.log = $("log");
    this.lines = $("lines");
    this.older = $("older");
    this.jump = $("jump");
    this.composer = $("message");
    this.members = $("members");
    this.membersTitle = $("members-title");
    this.membersNote = $("members-note");
    this.memberList = $("member-list");
    this.topicButton = $("set-topic");
    this.leaveButton = $("leave");
    this.countdown = null;
    this.alertTimer = null;
    this.renderedKey = null;
  }

  // ---------------------------------------------------------------- screens

  /** The join form, with the server's refusal if there is one. */
  showJoin({ name = "", error = "", needPassword = false, needAccount = false } = {}) {
    this.joinScreen.hidden = false;
    this.chat.hidden = true;
    if (name && !this.joinName.value) this.joinName.value = name;
    this.joinAlert.textContent = inert(error);
    this.joinAlert.hidden = !error;
    if (needPassword) this.passwordRow.hidden = false;
    if (needAccount) this.accountRow.hidden = false;
    let field = needPassword ? this.joinPassword : this.joinName;
    if (needAccount) field = this.joinAccountPassword;
    field.focus();
    if (field === this.joinName) this.joinName.select();
  }

  showChat() {
    const wasHidden = this.chat.hidden;
    this.joinScreen.hidden = true;
    this.chat.hidden = false;
    if (wasHidden) this.composer.focus();
  }

  // ---------------------------------------------------------------- connection

  setStatus({ phase, retryAt, reason, server = "" }) {
    clearInterval(this.countdown);
    this.countdown = null;
    this.doc.body.dataset.connection = phase;
    const show = () => {
      const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      this.status.textContent = `Reconnecting in ${seconds} s`;
    };
    // With several servers, which one: a node that went away is then easy to tell.
    const where = server ? ` to ${inert(server)}` : "";
    if (phase === "connected") this.status.textContent = `Connected${where}`;
    else if (phase === "connecting") this.status.textContent = `Connecting${where}…`;
    else if (phase === "reconnecting") {
      show();
      this.countdown = setInterval(show, 1000);
    } else this.status.textContent = "Offline";
    this.statusReason.textContent = phase === "connected" || !reason ? "" : inert(reason);
    this.reconnect.hidden = phase === "connected" || phase === "connecting";
  }

  // ---------------------------------------------------------------- alerts

  showAlert(message) {
    clearTimeout(this.alertTimer);
    this.alert.textContent = inert(message);
    this.alert.hidden = false;
    this.alertClose.hidden = false;
    // Long enough to read, short enough not to pile up against the next one.
    this.alertTimer = setTimeout(() => this.clearAlert(), 15000);
  }

  clearAlert() {
    clearTimeout(this.alertTimer);
    this.alert.textContent = "";
    this.alert.hidden = true;
    this.alertClose.hidden = true;
  }

  // ---------------------------------------------------------------- sidebar, heading, members

  renderSidebar(store) {
    const items = [];
    for (const conv of store.convs.values()) {
      const button = el("button", "conv");
      button.type = "button";
      button.dataset.key = conv.key;
      button.setAttribute("aria-label", entryName(conv));
      if (conv === store.current) button.setAttribute("aria-current", "page");
      if (!conv.joined) button.classList.add("parted");
      if (conv.unread) button.classList.add("unread");
      const sigil = el("span", "sigil", conv.private ? "@" : "#");
      sigil.setAttribute("aria-hidden", "true");
      button.append(sigil, bdi(conv.name, "conv-name"));
      if (conv.unread) {
        const badge = el("span", conv.mentions ? "badge mention" : "badge", String(conv.unread));
        badge.setAttribute("aria-hidden", "true");
        button.append(badge);
      }
      const item = el("li");
      item.append(button);
      items.push(item);
    }
    this.convList.replaceChildren(...items);
  }

  renderHeader(store) {
    const conv = store.current;
    this.title.replaceChildren(bdi(label(conv)));
    this.topic.replaceChildren();
    if (conv.private) this.topic.append("Private conversation with ", nameNode(conv.name));
    else if (conv.topic) this.topic.append(bdi(conv.topic, "topic-text"));
    else this.topic.append(el("span", "muted", "No topic"));
    this.topicButton.hidden = conv.private;
    this.leaveButton.hidden = conv === store.lobby;
    this.leaveButton.textContent = conv.private ? "Close" : "Leave";
  }

  renderMembers(store) {
    const conv = store.current;
    const names = conv.private ? [store.me ?? "", conv.name] : conv.members;
    this.membersTitle.textContent = `Members (${names.length})`;
    const snapshot = conv.lazyAbove !== null && names.length > conv.lazyAbove;
    this.membersNote.textContent = snapshot ? `As of ${conv.membersAt}; /who refreshes` : "";
    this.membersNote.hidden = !snapshot;
    const sorted = [...names].sort((a, b) => a.localeCompare(b, undefined, { sensitivity: "base" }));
    this.memberList.replaceChildren(
      ...sorted.map((name) => {
        const item = el("li");
        // The name stays the item's accessible name; the role is a description, and a
        // mark (@ op, + voice) beside it for the eye, as IRC clients show it.
        const role = conv.private ? "" : roleOf(name, conv);
        if (role) {
          const mark = el("span", `role role-${role}`, role === "op" ? "@" : "+");
          mark.setAttribute("aria-hidden", "true");
          mark.title = role;
          item.append(mark);
          item.setAttribute("aria-description", role);
          item.dataset.role = role;
        }
        item.append(nameNode(name));
        if (name === store.me) item.classList.add("me");
        return item;
      }),
    );
  }

  updateTitle(store) {
    const total = store.unreadTotal();
    this.doc.title = total ? `(${total}) chatroom` : "chatroom";
  }

  // ---------------------------------------------------------------- the log

  atBottom() {
    const log = this.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight < STICK_PX;
  }

  nearTop() {
    return this.log.scrollTop < LOAD_OLDER_PX;
  }

  scrollToBottom() {
    this.log.scrollTop = this.log.scrollHeight;
    this.jump.hidden = true;
  }

  /** Everything the current conversation shows, keeping the reader where they were. */
  renderLog(store, { anchor = "auto" } = {}) {
    const conv = store.current;
    const switched = this.renderedKey !== conv;
    const stick = switched || anchor === "bottom" || this.atBottom();
    const fromBottom = this.log.scrollHeight - this.log.scrollTop;
    const nodes = [];
    let day = null;
    for (const entry of conv.entries) {
      if (entry.n === conv.markerAt) nodes.push(marker());
      if (entry.event) {
        const thisDay = localDay(entry.event.ts);
        if (thisDay && thisDay !== day) nodes.push(daySeparator(entry.event.ts));
        day = thisDay || day;
      }
      nodes.push(entryNode(entry, conv, store.me));
    }
    this.lastDay = day;
    this.lines.replaceChildren(...nodes);
    this.renderPending(store);
    this.renderOlder(conv);
    this.renderedKey = conv;
    if (stick) this.scrollToBottom();
    else this.log.scrollTop = this.log.scrollHeight - fromBottom; // older lines above
  }

  /** One new entry at the end of the current conversation. */
  appendEntry(store, entry) {
    const conv = store.current;
    const stick = this.atBottom();
    const nodes = [];
    if (entry.n === conv.markerAt) nodes.push(marker());
    if (entry.event) {
      const day = localDay(entry.event.ts);
      if (day && day !== this.lastDay) nodes.push(daySeparator(entry.event.ts));
      this.lastDay = day || this.lastDay;
    }
    nodes.push(entryNode(entry, conv, store.me));
    const firstPending = this.lines.querySelector(".pending");
    for (const node of nodes) this.lines.insertBefore(node, firstPending);
    if (stick || (entry.event && entry.event.from === store.me)) this.scrollToBottom();
    else this.jump.hidden = false;
  }

  renderPending(store) {
    const stick = this.atBottom();
    for (const node of this.lines.querySelectorAll(".pending")) node.remove();
    for (const item of store.pendingFor(store.current)) {
      this.lines.append(pendingNode(item, store.me, store.online));
    }
    if (stick) this.scrollToBottom();
  }

  renderOlder(conv) {
    this.older.hidden = conv.historyDone;
    this.older.disabled = conv.paging;
    this.older.textContent = conv.paging ? "Loading older messages…" : "Load older messages";
  }

  // ---------------------------------------------------------------- changes

  /** Render a batch of store changes; returns whether the log was rebuilt. */
  apply(store, changes) {
    const current = store.current;
    let log = false;
    let sidebar = false;
    let header = false;
    let members = false;
    let pending = false;
    const appended = [];
    for (const change of changes) {
      switch (change.type) {
        case "switched":
        case "closed":
        case "cleared":
        case "marker":
        case "older":
        case "history":
        case "name":
          log = true;
          header = members = sidebar = true;
          break;
        case "appended":
          if (change.conv === current) appended.push(change.entry);
          break;
        case "rooms":
        case "added":
          sidebar = true;
          break;
        case "topic":
          header = true;
          break;
        case "members":
          members = true;
          break;
        case "pending":
        case "welcome":
        case "connection":
          pending = true;
          break;
        case "error":
          this.showAlert(change.unsent ? `Not sent: ${change.message}` : change.message);
          break;
        default:
          break;
      }
    }
    if (log) this.renderLog(store);
    else for (const entry of appended) this.appendEntry(store, entry);
    if (pending && !log) this.renderPending(store);
    if (!log) this.renderOlder(current);
    if (sidebar) this.renderSidebar(store);
    if (header) this.renderHeader(store);
    if (members) this.renderMembers(store);
    this.updateTitle(store);
    return log;
  }
}

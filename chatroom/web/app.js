// The entry point: wires the page's controls to the chat client and the client's changes
// to the view. Everything that decides something lives in lib/; this file only listens.

import { ChatClient } from "./lib/client.js";
import { COMMANDS, KEYS } from "./lib/commands.js";
import { el } from "./lib/entries.js";
import { isSecret } from "./lib/moderation.js";
import * as wire from "./lib/protocol.js";
import { inert } from "./lib/text.js";
import { View } from "./lib/view.js";

// The name comes back on the next visit; the password never is stored.
const NAME_KEY = "chatroom.name";

const $ = (id) => document.getElementById(id);
const view = new View(document);
let lastSent = "";

function remembered() {
  try {
    return localStorage.getItem(NAME_KEY) ?? "";
  } catch {
    return ""; // storage off (private mode, a locked-down browser): just ask
  }
}

function remember(name) {
  try {
    localStorage.setItem(NAME_KEY, name);
  } catch {
    // nothing to do: the form asks again next time
  }
}

// ------------------------------------------------------------------ notifications

function canNotify() {
  return "Notification" in window && window.isSecureContext;
}

function renderNotifyButton() {
  $("notify").hidden = !canNotify() || Notification.permission !== "default";
}

async function askNotifications() {
  if (!canNotify()) {
    view.showAlert("Desktop notifications need a secure (https) page; the title shows the unread count.");
    return;
  }
  await Notification.requestPermission();
  renderNotifyButton();
}

function notify(change) {
  if (!document.hidden || !canNotify() || Notification.permission !== "granted") return;
  const event = change.event;
  const title = event.type === "dm" ? `${inert(event.from)} (private)` : `${inert(event.from)} in #${inert(change.conv.name)}`;
  const note = new Notification(title, {
    body: inert(event.text, { keepNewlines: true }).slice(0, 200),
    tag: change.conv.key,
  });
  note.onclick = () => {
    window.focus();
    client.switchTo(change.conv.key);
    note.close();
  };
}

// ------------------------------------------------------------------ the client

function render(changes) {
  for (const change of changes) {
    if (change.type === "connection") view.setStatus(change);
    else if (change.type === "welcome") {
      view.showChat();
      remember(client.store.me);
    } else if (change.type === "name" && client.store.me) remember(client.store.me);
    else if (change.type === "refused") refused(change);
    else if (change.type === "notify") notify(change);
  }
  const rebuilt = view.apply(client.store, changes);
  if (rebuilt) fillLog();
}

function refused({ code, message }) {
  if (code === "name_taken" || code === "invalid_name") {
    view.showJoin({ error: message });
  } else if (code === "name_registered") {
    view.showJoin({ error: message, needAccount: true });
  } else if (code === "auth_failed" && client.accountPassword) {
    // The account's password was wrong (the server's, if any, was right to get this far).
    client.accountPassword = "";
    view.showJoin({ error: message, needAccount: true });
  } else if (code === "auth_failed") {
    view.showJoin({ error: message, needPassword: true });
  } else if (view.chat.hidden) {
    view.showJoin({ error: message });
  } else {
    view.showAlert(message);
  }
}

/** A conversation too short to scroll cannot be scrolled up: ask for older lines now. */
function fillLog() {
  const log = view.log;
  if (log.scrollHeight <= log.clientHeight + 8) client.loadOlder();
}

// ?servers=HOST:PORT,... names the nodes of a cluster to try in turn; without it, this page's own.
const client = new ChatClient({ urls: wire.socketUrls(window.location), render });

// ------------------------------------------------------------------ join form

view.joinName.value = remembered();
view.showJoin();

view.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = view.joinName.value.trim();
  if (!name) {
    view.showJoin({ error: "Enter a name to join." });
    return;
  }
  view.joinAlert.hidden = true;
  client.join(name, view.joinPassword.value, view.joinAccountPassword.value);
  view.joinPassword.value = "";
  view.joinAccountPassword.value = "";
});

// ------------------------------------------------------------------ composer

const composer = view.composer;

function send() {
  const line = composer.value;
  if (!line.trim()) return;
  if (!isSecret(line)) lastSent = line; // a password is never brought back by Up
  composer.value = "";
  resizeComposer();
  const outcome = client.runLine(line);
  if (outcome === "help") openHelp();
  else if (outcome === "notify") askNotifications();
  composer.focus();
}

function resizeComposer() {
  composer.rows = Math.min(8, Math.max(1, composer.value.split("\n").length));
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});

composer.addEventListener("input", resizeComposer);
composer.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  } else if (event.key === "ArrowUp" && !event.altKey && composer.value === "" && lastSent) {
    event.preventDefault();
    composer.value = lastSent;
    resizeComposer();
  }
});

document.addEventListener("keydown", (event) => {
  if (view.chat.hidden) return;
  if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
    event.preventDefault();
    client.switchBy(event.key === "ArrowUp" ? -1 : 1);
    composer.focus();
  } else if (event.key === "Escape") {
    if (!$("help").hidden) closeHelp();
    else {
      client.markRead();
      view.clearAlert();
    }
  } else if (event.key === "PageUp" && view.nearTop()) {
    client.loadOlder();
  }
});

// ------------------------------------------------------------------ conversations

view.convList.addEventListener("click", (event) => {
  const button = event.target.closest("button.conv");
  if (!button) return;
  client.switchTo(button.dataset.key);
  document.body.classList.remove("show-sidebar");
  $("toggle-sidebar").setAttribute("aria-expanded", "false");
  composer.focus();
});

view.log.addEventListener("scroll", () => {
  if (view.atBottom()) view.jump.hidden = true;
  if (view.nearTop()) client.loadOlder();
});

view.older.addEventListener("click", () => client.loadOlder());
view.jump.addEventListener("click", () => {
  view.scrollToBottom();
  composer.focus();
});
view.alertClose.addEventListener("click", () => view.clearAlert());
view.reconnect.addEventListener("click", () => client.connection.retryNow());

// A small modal form for what the buttons ask (a room, a name, a topic).
function promptFor(title, labelText, value = "") {
  const dialog = $("prompt");
  $("prompt-title").textContent = title;
  $("prompt-label").textContent = labelText;
  const input = $("prompt-input");
  input.value = value;
  dialog.showModal();
  input.focus();
  return new Promise((resolve) => {
    const form = $("prompt-form");
    const done = (answer) => {
      form.removeEventListener("submit", onSubmit);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      resolve(answer);
      composer.focus();
    };
    const onSubmit = (event) => {
      event.preventDefault();
      done(input.value);
    };
    const onClose = () => done(null);
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener("close", onClose);
  });
}

$("prompt-cancel").addEventListener("click", () => $("prompt").close());

$("add-room").addEventListener("click", async () => {
  const room = await promptFor("Join a room", "Room name");
  const name = (room ?? "").trim().replace(/^#/, "").trim();
  if (name) client.joinRoom(name);
});

$("new-private").addEventListener("click", async () => {
  const name = ((await promptFor("Private message", "Person's name")) ?? "").trim();
  if (name) client.openPrivate(name);
});

$("list-rooms").addEventListener("click", () => client.ask(wire.rooms()));

$("set-topic").addEventListener("click", async () => {
  const conv = client.store.current;
  const text = await promptFor(`Topic of #${inert(conv.name)}`, "Topic", conv.topic);
  if (text !== null && text.trim()) client.ask(wire.topic(conv.name, text));
});

$("leave").addEventListener("click", () => {
  client.part(client.store.current);
  composer.focus();
});

$("notify").addEventListener("click", askNotifications);
renderNotifyButton();

// ------------------------------------------------------------------ phone layout

function toggler(buttonId, bodyClass, other) {
  $(buttonId).addEventListener("click", () => {
    const open = document.body.classList.toggle(bodyClass);
    $(buttonId).setAttribute("aria-expanded", String(open));
    document.body.classList.remove(other);
  });
}
toggler("toggle-sidebar", "show-sidebar", "show-members");
toggler("toggle-members", "show-members", "show-sidebar");

// ------------------------------------------------------------------ help

function fillHelp() {
  const list = (rows) =>
    rows.flatMap(([what, meaning]) => [el("dt", "", what), el("dd", "", meaning)]);
  $("help-commands").replaceChildren(...list(COMMANDS));
  $("help-keys").replaceChildren(...list(KEYS));
}

function openHelp() {
  if (!$("help-commands").childElementCount) fillHelp();
  $("help").hidden = false;
  $("help-close").focus();
}

function closeHelp() {
  $("help").hidden = true;
  composer.focus();
}

$("show-help").addEventListener("click", openHelp);
$("help-close").addEventListener("click", closeHelp);

// ------------------------------------------------------------------ the page's life

document.addEventListener("visibilitychange", () => {
  client.store.setVisible(!document.hidden);
  client.update();
});
client.store.visible = !document.hidden;

window.addEventListener("pagehide", (event) => {
  if (!event.persisted) client.connection.stop("the page was closed");
});
window.addEventListener("pageshow", (event) => {
  if (event.persisted && client.store.me) client.connection.retryNow();
});
window.addEventListener("online", () => {
  if (client.connection.phase === "reconnecting") client.connection.retryNow();
});

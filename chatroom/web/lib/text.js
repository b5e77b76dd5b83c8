// Untrusted text made safe to look at: the browser's counterpart of chatroom/text.py.
//
// The DOM never parses this text as markup (the view only uses textContent), but a bidi
// override or an invisible control still changes what a reader sees around it. So every
// name, message, topic and server string passes through inert() before it is shown, and
// each such character becomes a visible escape like \x1b or \u202e, as in the terminal.

// Controls (C0, DEL, C1), format characters (bidi controls among them), line and paragraph
// separators, lone surrogates, private use and unassigned code points.
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}\\]/gu;
// Format characters that shape ordinary writing (emoji sequences, Indic and Arabic
// joining, the soft hyphen) and never move anything: escaping them would garble text.
const HARMLESS_FORMAT = new Set(["\u00ad", "\u200c", "\u200d", "\u2060", "\ufe0f"]);

function hex(code, width) {
  return code.toString(16).padStart(width, "0");
}

/**
 * `text` with every control, format or reordering character made visible.
 * With `keepNewlines` (a message body), "\n" stays a line break and a tab four spaces;
 * otherwise they show as \n and \t so a name or a status stays on one line, and a
 * backslash is doubled so that the escapes read back exactly.
 */
export function inert(text, { keepNewlines = false } = {}) {
  const value = String(text ?? "");
  return value.replace(UNSAFE, (char) => {
    if (char === "\n") return keepNewlines ? "\n" : "\\n";
    if (char === "\t") return keepNewlines ? "    " : "\\t";
    if (char === "\\") return keepNewlines ? "\\" : "\\\\";
    if (HARMLESS_FORMAT.has(char)) return char;
    const code = char.codePointAt(0);
    if (code <= 0xff) return `\\x${hex(code, 2)}`;
    if (code <= 0xffff) return `\\u${hex(code, 4)}`;
    return `\\U${hex(code, 8)}`;
  });
}

/** How names and rooms compare: NFC, case-insensitive, as on the server. */
export function fold(name) {
  return String(name).normalize("NFC").toLowerCase();
}

// Letters, marks, digits and the underscore: what Python's \w counts as part of a word.
const WORD = "[\\p{L}\\p{M}\\p{N}_]";

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

/** The pattern of `me` as a whole word, case-insensitive, or null without a name. */
export function mentionPattern(me) {
  if (!me) return null;
  return new RegExp(`(?<!${WORD})${escapeRegExp(inert(me))}(?!${WORD})`, "giu");
}

/** Whether `text` names `me` as a word (what makes a message a mention). */
export function mentions(me, text) {
  const pattern = mentionPattern(me);
  return pattern !== null && pattern.test(inert(text, { keepNewlines: true }));
}

/**
 * `text` cut into [part, isMention] pieces around each mention of `me`, for highlighting.
 * The text is already inert, so the pieces join back to exactly what is shown.
 */
export function splitMentions(me, text) {
  const pattern = mentionPattern(me);
  if (pattern === null) return [[text, false]];
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    if (match.index > last) parts.push([text.slice(last, match.index), false]);
    parts.push([match[0], true]);
    last = match.index + match[0].length;
  }
  if (last < text.length || parts.length === 0) parts.push([text.slice(last), false]);
  return parts;
}

export const NAME_COLOURS = 12;

/** A stable colour slot for `name` (FNV-1a of its folded UTF-8, as the terminal client). */
export function nameColour(name) {
  let digest = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(fold(name))) {
    digest = Math.imul(digest ^ byte, 0x01000193) >>> 0;
  }
  return digest % NAME_COLOURS;
}

// How a name looks in the chat, the same in the terminal client (client/ui.ts imports this)
// and on the web page: which colour it gets, and whether a message mentions it. Plain
// JavaScript, so that the page needs no build step.

/** How many name colours there are. */
export const NAME_COLOUR_COUNT = 6;

/**
 * Which of the name colours a name gets, the same in every client and every
 * session: a hash of its UTF-16 code units.
 *
 * @example
 * ```ts
 * import { nameColourIndex } from "./names.js";
 * nameColourIndex("ada") === nameColourIndex("ada"); // true
 * ```
 * @param {string} name
 * @returns {number}
 */
export function nameColourIndex(name) {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
  return h % NAME_COLOUR_COUNT;
}

/**
 * Whether `text` mentions `name`: the name as a word of its own, in any case.
 *
 * @example
 * ```ts
 * import { mentions } from "./names.js";
 * mentions("ada: can you look?", "Ada"); // true
 * mentions("adamant", "ada"); // false
 * ```
 * @param {string} text
 * @param {string} name
 * @returns {boolean}
 */
export function mentions(text, name) {
  // A loop, not recursion: a long message full of the name must not exhaust the stack.
  const hay = text.toLowerCase();
  const needle = name.toLowerCase();
  if (needle === "") return false;
  const word = /[\p{L}\p{N}_]/u;
  for (let at = hay.indexOf(needle); at !== -1; at = hay.indexOf(needle, at + 1)) {
    const before = hay[at - 1] ?? " ";
    const after = hay[at + needle.length] ?? " ";
    if (!word.test(before) && !word.test(after)) return true;
  }
  return false;
}

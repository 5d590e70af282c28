/**
 * Long messages cut to fit the server's frame limit.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * Splits text into pieces whose `msg` frames fit in `maxFrameBytes`, never
 * inside a character, so that a long pasted line is sent whole in parts
 * rather than refused.
 *
 * @example
 * ```ts
 * import { splitText } from "./split_text.ts";
 * splitText("x".repeat(600), 256).length; // 4: each piece leaves room for the frame around it
 * ```
 */
export function splitText(text: string, maxFrameBytes: number): string[] {
  // Room for {"type":"msg","text":"","ref":9007199254740991} around the text.
  const budget = maxFrameBytes - 64;
  const pieces: string[] = [];
  let rest = text;
  while (rest.length > 0) {
    let take = Math.min(rest.length, budget);
    for (;;) {
      const size = encoder.encode(JSON.stringify(rest.slice(0, take))).length;
      if (size <= budget) break;
      take = Math.max(1, Math.floor(take * (budget / size) * 0.95));
    }
    // Keep a surrogate pair together.
    const code = rest.charCodeAt(take - 1);
    if (take < rest.length && take > 1 && code >= 0xd800 && code <= 0xdbff) take--;
    pieces.push(rest.slice(0, take));
    rest = rest.slice(take);
  }
  return pieces;
}

/**
 * Server frames as lines a person reads, such as `[14:02] alice: hello`.
 *
 * Used by the terminal client and by the server for plain-text (nc, telnet)
 * sessions. Every piece of text that came from a peer goes through
 * {@linkcode neutralize}, so nobody can send escape sequences to anyone's
 * terminal.
 *
 * @module
 */

import type { ServerFrame } from "../protocol.ts";

/** How names are decorated; the terminal client colours them. */
export interface RenderOptions {
  /** Wraps a user's name, for colour. */
  name?: (name: string) => string;
  /** Wraps a notice line (joins, leaves, errors), for colour. */
  notice?: (line: string) => string;
}

/**
 * A count and its noun, in the singular for one.
 *
 * @example
 * ```ts
 * import { count } from "./render.ts";
 * count(1, "minute"); // "1 minute"
 * count(5, "minute"); // "5 minutes"
 * ```
 */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/**
 * `HH:MM` of a timestamp in local time.
 *
 * @example
 * ```ts
 * import { clock } from "./render.ts";
 * clock(Date.now()); // e.g. "14:02"
 * ```
 */
export function clock(ms: number): string {
  const date = new Date(ms);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}`;
}

/**
 * Renders a server frame as one line without a line ending, or undefined for
 * frames a person need not see (pongs).
 *
 * @example
 * ```ts
 * import { renderFrame } from "./render.ts";
 * const ts = Date.now();
 * renderFrame({ type: "msg", id: 1, ts, room: "lobby", seq: 1, from: "alice", text: "hi" });
 * // "[14:02] alice: hi"
 * ```
 */
export function renderFrame(frame: ServerFrame, options: RenderOptions = {}): string | undefined {
  const name = (n: string) => (options.name ?? String)(neutralize(n));
  const notice = options.notice ?? String;
  switch (frame.type) {
    case "msg":
      return frame.action
        ? `[${clock(frame.ts)}] * ${name(frame.from)} ${neutralize(frame.text)}`
        : `[${clock(frame.ts)}] ${name(frame.from)}: ${neutralize(frame.text)}`;
    case "dm":
      return `[${clock(frame.ts)}] (private) ${name(frame.from)} → ${name(frame.to)}: ${
        neutralize(frame.text)
      }`;
    case "event": {
      const time = `[${clock(frame.ts)}]`;
      switch (frame.event) {
        case "join":
          return notice(`${time} * ${name(frame.name)} joined ${neutralize(frame.room)}`);
        case "rename":
          return notice(`${time} * ${name(frame.from ?? "?")} is now ${name(frame.name)}`);
        case "topic":
          return notice(
            `${time} * ${name(frame.name)} set the topic: ${neutralize(frame.topic ?? "")}`,
          );
        case "leave": {
          const why = frame.reason ? ` (${neutralize(frame.reason)})` : "";
          return notice(`${time} * ${name(frame.name)} left${why}`);
        }
        case "op":
          return notice(`${time} * ${name(frame.name)} is now an operator`);
        case "motd":
          return notice(
            `${time} * ${name(frame.by ?? frame.name)} set the message of the day: ${
              neutralize(frame.text ?? "")
            }`,
          );
        case "kick":
        case "mute":
        case "ban":
        case "unban": {
          const verb =
            { kick: "removed", mute: "muted", ban: "banned", unban: "lifted the ban on" }[
              frame.event
            ];
          const time2 = frame.minutes === undefined ? "" : ` for ${count(frame.minutes, "minute")}`;
          const why = frame.reason ? ` (${neutralize(frame.reason)})` : "";
          return notice(
            `${time} * ${name(frame.by ?? "?")} ${verb} ${name(frame.name)}${time2}${why}`,
          );
        }
      }
      return undefined;
    }
    case "history": {
      const gone = frame.gone > 0 ? `; ${frame.gone} older ones are no longer kept` : "";
      return notice(`* ${frame.count} earlier message(s) in ${neutralize(frame.room)}${gone}:`);
    }
    case "who": {
      const more = frame.online > frame.users.length
        ? ` and ${frame.online - frame.users.length} more`
        : "";
      // Operators are marked with @, as on IRC.
      const ops = new Set(frame.ops);
      const shown = frame.users.map((user) => (ops.has(user) ? "@" : "") + name(user));
      return notice(`* in ${neutralize(frame.room)} (${frame.online}): ${shown.join(", ")}${more}`);
    }
    case "room":
      return notice(
        `* you are in ${neutralize(frame.room)} (${frame.online} here)${topicOf(frame.topic)}`,
      );
    case "rooms":
      return notice(
        "* rooms: " +
          frame.rooms.map((r) => `${neutralize(r.name)} (${r.members})${topicOf(r.topic)}`)
            .join(", "),
      );
    case "welcome":
      return notice(
        `* connected to ${neutralize(frame.server)} as ${name(frame.name)}, in ` +
          `${neutralize(frame.room)} (${frame.online} here)${topicOf(frame.topic)}. ` +
          `${frame.op ? "You are an operator. " : ""}Type /help for commands.` +
          (frame.motd ? `\n* message of the day: ${neutralize(frame.motd)}` : ""),
      );
    case "error":
      return notice(`! ${neutralize(frame.message)}`);
    case "ping":
    case "pong":
      return undefined;
  }
}

function topicOf(topic: string): string {
  return topic === "" ? "" : ` — topic: ${neutralize(topic)}`;
}

/**
 * Makes text safe to print on a terminal: control characters (escape
 * sequences among them), bidirectional overrides and other invisible format
 * characters become U+FFFD, so a peer cannot clear a screen, move the cursor
 * or retitle a window. Tabs become a space.
 *
 * @example
 * ```ts
 * import { neutralize } from "./render.ts";
 * neutralize("hi\x1b[2J"); // "hi\uFFFD[2J"
 * ```
 */
export function neutralize(text: string): string {
  return text.replace(/\t/g, " ").replace(UNSAFE, "\uFFFD");
}
// \p{Cc}: C0/C1 controls incl. ESC, CR, LF; \p{Cf}: bidi overrides, zero-width.
const UNSAFE = /[\p{Cc}\p{Cf}\u2028\u2029]/gu;

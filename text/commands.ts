/**
 * What a person types, read as a command or a message.
 *
 * Both the terminal client and plain-text (nc, telnet) sessions on the server
 * take the same slash commands, so they are parsed in one place.
 *
 * @module
 */
import type { ClientFrame, HelloFrame, PingFrame, PongFrame, QuitFrame } from "../protocol.ts";

/** One line of input, understood. */
export type Input =
  | { kind: "say"; text: string }
  | { kind: "me"; text: string }
  | { kind: "msg"; to: string; text: string }
  | { kind: "join"; room: string }
  | { kind: "rooms" }
  | { kind: "topic"; text: string; room?: string }
  | { kind: "op"; token: string }
  | { kind: "kick"; name: string; reason?: string }
  | { kind: "mute"; name: string; minutes?: number }
  | { kind: "ban"; name: string; minutes?: number; reason?: string }
  | { kind: "unban"; name: string }
  | { kind: "motd"; text: string }
  | { kind: "nick"; name: string }
  | { kind: "who" }
  | { kind: "help" }
  | { kind: "quit" }
  | { kind: "empty" }
  | { kind: "unknown"; command: string }
  | { kind: "usage"; message: string };

/** A frame a typed command asks the server for: any client frame but the session's own. */
export type Request = Exclude<ClientFrame, HelloFrame | PingFrame | PongFrame | QuitFrame>;

/** The help text for everyone's commands, one line each. */
export const COMMAND_HELP: readonly string[] = [
  "/join ROOM      go to a room (it is created if need be)",
  "/rooms          list the rooms",
  "/topic TEXT     set the topic of this room",
  "/msg NAME TEXT  send a message to one person only",
  "/me ACTION      say what you do, shown as: * you ACTION",
  "/nick NAME      change your name",
  "/who            list who is in this room",
  "/quit           leave (also !DISCONNECT, Ctrl-D)",
  "/help           show this help",
  "//text          send a message that starts with /",
];

/** The operators' commands, one line each, after a heading. */
export const OPERATOR_HELP: readonly string[] = [
  "For operators:",
  "/op TOKEN                    become an operator (the token chat serve printed)",
  "/kick NAME [REASON]          disconnect someone",
  "/mute NAME [MINUTES]         silence someone (default 10 minutes)",
  "/ban NAME [MINUTES] [REASON] keep a name and its address out (default: until /unban)",
  "/unban NAME                  lift a ban or a mute",
  "/topic #ROOM TEXT            set the topic of any room",
  "/motd TEXT                   set the message of the day, shown to everyone joining",
];

/**
 * Reads one line of input. `!DISCONNECT` (the lab exercise's way out) quits.
 *
 * @example
 * ```ts
 * import { parseInput } from "./commands.ts";
 * parseInput("/nick ada"); // { kind: "nick", name: "ada" }
 * parseInput("/msg bob hi there"); // { kind: "msg", to: "bob", text: "hi there" }
 * parseInput("hello"); // { kind: "say", text: "hello" }
 * ```
 */
export function parseInput(line: string): Input {
  if (line.trim() === "") return { kind: "empty" };
  if (line.trim() === "!DISCONNECT") return { kind: "quit" };
  if (line.startsWith("//")) return { kind: "say", text: line.slice(1) };
  if (!line.startsWith("/")) return { kind: "say", text: line };
  const match = /^\/(\S+)\s*(.*)$/s.exec(line.trimEnd())!;
  const command = match[1];
  const rest = match[2];
  const words = rest === "" ? [] : rest.split(/\s+/);
  switch (command.toLowerCase()) {
    case "nick":
      if (words.length !== 1) return { kind: "usage", message: "usage: /nick NAME" };
      return { kind: "nick", name: words[0] };
    case "join":
      if (words.length !== 1) return { kind: "usage", message: "usage: /join ROOM" };
      return { kind: "join", room: words[0].replace(/^#/, "") };
    case "msg": {
      const dm = /^(\S+)\s+(.+)$/s.exec(rest);
      if (!dm) return { kind: "usage", message: "usage: /msg NAME TEXT" };
      return { kind: "msg", to: dm[1], text: dm[2] };
    }
    case "me":
      if (rest.trim() === "") return { kind: "usage", message: "usage: /me ACTION" };
      return { kind: "me", text: rest };
    case "topic": {
      const other = /^#(\S+)\s*(.*)$/s.exec(rest);
      return other
        ? { kind: "topic", room: other[1], text: other[2] }
        : { kind: "topic", text: rest };
    }
    case "op":
      if (words.length !== 1) return { kind: "usage", message: "usage: /op TOKEN" };
      return { kind: "op", token: words[0] };
    case "kick": {
      if (words.length === 0) return { kind: "usage", message: "usage: /kick NAME [REASON]" };
      const reason = words.slice(1).join(" ");
      return { kind: "kick", name: words[0], ...(reason ? { reason } : {}) };
    }
    case "mute": {
      const minutes = words.length === 2 ? wholeNumber(words[1]) : undefined;
      if (words.length === 0 || words.length > 2 || (words.length === 2 && minutes === undefined)) {
        return { kind: "usage", message: "usage: /mute NAME [MINUTES]" };
      }
      return { kind: "mute", name: words[0], ...(minutes === undefined ? {} : { minutes }) };
    }
    case "ban": {
      if (words.length === 0) {
        return { kind: "usage", message: "usage: /ban NAME [MINUTES] [REASON]" };
      }
      const minutes = words.length > 1 ? wholeNumber(words[1]) : undefined;
      const reason = words.slice(minutes === undefined ? 1 : 2).join(" ");
      return {
        kind: "ban",
        name: words[0],
        ...(minutes === undefined ? {} : { minutes }),
        ...(reason ? { reason } : {}),
      };
    }
    case "unban":
      if (words.length !== 1) return { kind: "usage", message: "usage: /unban NAME" };
      return { kind: "unban", name: words[0] };
    case "motd":
      return { kind: "motd", text: rest };
    case "rooms":
      return { kind: "rooms" };
    case "who":
      return { kind: "who" };
    case "help":
      return { kind: "help" };
    case "quit":
    case "exit":
      return { kind: "quit" };
    default:
      return { kind: "unknown", command };
  }
}

/**
 * The request a command makes of the server, or undefined for one handled
 * where it was typed (help, quit, mistakes).
 *
 * @example
 * ```ts
 * import { parseInput, requestFrame } from "./commands.ts";
 * requestFrame(parseInput("/msg bob hi")); // { type: "dm", to: "bob", text: "hi" }
 * requestFrame(parseInput("/help")); // undefined
 * ```
 */
export function requestFrame(input: Input): Request | undefined {
  switch (input.kind) {
    case "say":
      return { type: "msg", text: input.text };
    case "me":
      return { type: "msg", text: input.text, action: true };
    case "msg":
      return { type: "dm", to: input.to, text: input.text };
    case "join":
      return { type: "join", room: input.room };
    case "rooms":
      return { type: "rooms" };
    case "topic":
      return input.room === undefined
        ? { type: "topic", text: input.text }
        : { type: "topic", text: input.text, room: input.room };
    case "op":
      return { type: "op", token: input.token };
    case "kick":
    case "mute":
    case "ban":
    case "unban":
    case "motd": {
      const { kind, ...fields } = input;
      return { type: kind, ...fields } as Request;
    }
    case "nick":
      return { type: "nick", name: input.name };
    case "who":
      return { type: "who" };
    default:
      return undefined;
  }
}

function wholeNumber(word: string): number | undefined {
  return /^\d{1,6}$/.test(word) ? Number(word) : undefined;
}

/**
 * What a person types, read as a command or a message.
 *
 * Both the terminal client and plain-text (nc, telnet) sessions on the server
 * take the same slash commands, so they are parsed in one place.
 *
 * @module
 */

/** One line of input, understood. */
export type Input =
  | { kind: "say"; text: string }
  | { kind: "nick"; name: string }
  | { kind: "who" }
  | { kind: "help" }
  | { kind: "quit" }
  | { kind: "empty" }
  | { kind: "unknown"; command: string }
  | { kind: "usage"; message: string };

/** The help text for the commands, one line each. */
export const COMMAND_HELP: readonly string[] = [
  "/nick NAME   change your name",
  "/who         list who is online",
  "/quit        leave (also !DISCONNECT, Ctrl-D)",
  "/help        show this help",
  "//text       send a message that starts with /",
];

/**
 * Reads one line of input. `!DISCONNECT` (the lab exercise's way out) quits.
 *
 * @example
 * ```ts
 * import { parseInput } from "./commands.ts";
 * parseInput("/nick ada"); // { kind: "nick", name: "ada" }
 * parseInput("hello"); // { kind: "say", text: "hello" }
 * ```
 */
export function parseInput(line: string): Input {
  if (line.trim() === "") return { kind: "empty" };
  if (line.trim() === "!DISCONNECT") return { kind: "quit" };
  if (line.startsWith("//")) return { kind: "say", text: line.slice(1) };
  if (!line.startsWith("/")) return { kind: "say", text: line };
  const [command, ...rest] = line.slice(1).trim().split(/\s+/);
  switch (command.toLowerCase()) {
    case "nick":
      if (rest.length !== 1) return { kind: "usage", message: "usage: /nick NAME" };
      return { kind: "nick", name: rest[0] };
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

/**
 * What the `chat` commands share: exit codes, usage errors, flag checks and
 * address parsing.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";

/** Exit codes of every `chat` command; the README lists them for users. */
export const ExitCode = {
  ok: 0,
  /** Something unexpected; a bug worth reporting. */
  internal: 1,
  /** Bad command line. */
  usage: 2,
  /** Could not connect, or the server could not listen or was full. */
  unavailable: 3,
  /** The server refused the name. */
  nameRefused: 4,
  /** The other side broke the protocol or speaks another version. */
  protocol: 5,
  /** The connection was lost or the server ended it. */
  disconnected: 6,
  /** The server refused the password, or one was needed and none given. */
  authFailed: 7,
  /** `chat join --send`: the server refused the message. */
  sendRefused: 8,
  /** Stopped by a second Ctrl-C. */
  interrupted: 130,
} as const;

/**
 * A mistake on the command line: printed with a hint, exit code 2.
 *
 * @example
 * ```ts
 * import { UsageError } from "./cli.ts";
 * throw new UsageError("--port must be a whole number", "chat serve --help");
 * ```
 */
export class UsageError extends Error {
  constructor(message: string, readonly help: string) {
    super(message);
  }
}

/**
 * A failure the user can act on: printed as is, with its exit code.
 *
 * @example
 * ```ts
 * import { ExitCode, Failure } from "./cli.ts";
 * throw new Failure("could not connect", ExitCode.unavailable);
 * ```
 */
export class Failure extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    /** How long the other side asked to wait before trying again, if it did. */
    readonly retryMs?: number,
  ) {
    super(message);
  }
}

/**
 * Reads an integer flag value within bounds, or throws a {@linkcode UsageError}.
 *
 * @example
 * ```ts
 * import { integerFlag } from "./cli.ts";
 * integerFlag("port", "5050", { min: 0, max: 65535, help: "chat serve --help" }); // 5050
 * ```
 */
export function integerFlag(
  name: string,
  value: string,
  options: { min: number; max: number; help: string },
): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) {
    throw new UsageError(`--${name} must be a whole number, not "${value}"`, options.help);
  }
  if (n < options.min || n > options.max) {
    throw new UsageError(
      `--${name} must be between ${options.min} and ${options.max}, not ${n}`,
      options.help,
    );
  }
  return n;
}

/**
 * Splits `HOST[:PORT]` (IPv6 as `[::1]:5050`) into its parts.
 *
 * @example
 * ```ts
 * import { parseAddress } from "./cli.ts";
 * parseAddress("lab-pc:6000", 5050); // { hostname: "lab-pc", port: 6000 }
 * parseAddress("[::1]", 5050); // { hostname: "::1", port: 5050 }
 * ```
 */
export function parseAddress(
  text: string,
  defaultPort: number,
): { hostname: string; port: number } | undefined {
  const match = /^\[([0-9a-fA-F:.%\w]+)\](?::(\d+))?$/.exec(text) ??
    /^([^:\[\]\s]+)(?::(\d+))?$/.exec(text);
  if (!match) {
    // A bare IPv6 address without brackets: no port can follow it.
    return /^[0-9a-fA-F:]+$/.test(text) && text.includes("::")
      ? { hostname: text, port: defaultPort }
      : undefined;
  }
  const port = match[2] === undefined ? defaultPort : Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { hostname: match[1], port };
}

/**
 * Formats a host and port for people, bracketing IPv6.
 *
 * @example
 * ```ts
 * import { formatAddress } from "./cli.ts";
 * formatAddress("::1", 5050); // "[::1]:5050"
 * ```
 */
export function formatAddress(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/**
 * `parseArgs` in strict mode, with its complaints turned into a
 * {@linkcode UsageError} that carries `help`.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./cli.ts";
 * const { values } = parseFlags(["--db", "x"], { db: { type: "string" } }, false, "see --help");
 * ```
 */
export function parseFlags<T extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  options: T,
  allowPositionals: boolean,
  help: string,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error), help);
  }
}

/**
 * `chat log`: export what a server stored with `--db`, as text or JSON lines.
 *
 * It opens the database read-only, so it is safe to run beside the server
 * that writes it, and streams rows, so a long day's transcript never sits in
 * memory whole.
 *
 * @module
 */

import { escapeJsonLine } from "./text/names.ts";
import { ExitCode, Failure, parseFlags, UsageError } from "./common/cli.ts";
import { validateName } from "./protocol.ts";
import { neutralize } from "./text/render.ts";
import { DatabaseError, readTranscript, type StoredMessage } from "./store/sqlite.ts";

/** `chat log --help`. */
export const LOG_HELP = `Usage: chat log --db FILE [options]

Prints the messages a server stored with "chat serve --db FILE", oldest first.

Options:
  --db FILE               the database (required)
  --room NAME             only this room (default: every room)
  --since TIME            only messages from this time on: a date or time such
                          as 2026-11-27 or 2026-11-27T14:00, or an age such as
                          90m, 2h or 1d
  --format text|jsonl     text lines (default), or one JSON object per line
  -h, --help              show this help

Exit codes: 0 done, 2 bad command line, 3 cannot open the database.`;

/**
 * Reads a `--since` value: an ISO date or time (local time when no zone is
 * given), or an age like `90m`, `2h`, `1d` before `now`.
 *
 * @example
 * ```ts
 * import { parseSince } from "./transcript.ts";
 * parseSince("2h", 10_000_000); // 2_800_000
 * ```
 */
export function parseSince(text: string, now: number): number | undefined {
  const age = /^(\d+)\s*([smhd])$/.exec(text.trim());
  if (age) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[age[2] as "s"];
    return now - Number(age[1]) * unit;
  }
  if (!/^\d{4}-\d{2}-\d{2}/.test(text)) return undefined;
  // A date alone would be read as UTC midnight; people mean their own midnight.
  const ms = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00` : text);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Formats one stored message as a transcript line.
 *
 * @example
 * ```ts
 * import { formatLine } from "./transcript.ts";
 * formatLine({ room: "lobby", seq: 1, id: 1, ts: 0, from: "ada", text: "hi" }, "jsonl");
 * ```
 */
export function formatLine(message: StoredMessage, format: "text" | "jsonl"): string {
  if (format === "jsonl") {
    const { room, seq, id, ts, from, text } = message;
    const line = { room, seq, id, ts, from, text, ...(message.action ? { action: true } : {}) };
    return escapeJsonLine(JSON.stringify(line));
  }
  const date = new Date(message.ts);
  const two = (n: number) => String(n).padStart(2, "0");
  const when = `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ` +
    `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
  const who = message.action ? `* ${neutralize(message.from)}` : `${neutralize(message.from)}:`;
  return `${when} [${neutralize(message.room)}] ${who} ${neutralize(message.text)}`;
}

/**
 * Runs `chat log`; resolves to the exit code.
 *
 * @example
 * ```ts
 * import { runLog } from "./transcript.ts";
 * Deno.exit(await runLog(["--db", "chat.db", "--format", "jsonl"]));
 * ```
 */
export async function runLog(args: string[]): Promise<number> {
  const help = "Run 'chat log --help' for the options.";
  const { values } = parseFlags(
    args,
    {
      db: { type: "string" },
      room: { type: "string" },
      since: { type: "string" },
      format: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    false,
    help,
  );
  if (values.help) {
    console.log(LOG_HELP);
    return ExitCode.ok;
  }
  if (values.db === undefined) throw new UsageError("--db FILE is required", help);
  const format = values.format ?? "text";
  if (format !== "text" && format !== "jsonl") {
    throw new UsageError(`--format must be text or jsonl, not "${format}"`, help);
  }
  const room = values.room?.replace(/^#/, "");
  if (room !== undefined && !validateName(room, 256).ok) {
    throw new UsageError(`"${room}" is not a room name`, help);
  }
  const sinceMs = values.since === undefined ? undefined : parseSince(values.since, Date.now());
  if (values.since !== undefined && sinceMs === undefined) {
    throw new UsageError(`--since: "${values.since}" is neither a date nor an age like 2h`, help);
  }
  try {
    await Deno.stat(values.db);
  } catch {
    throw new Failure(`no database at ${values.db}: check the path`, ExitCode.unavailable);
  }
  const out = Deno.stdout.writable.getWriter();
  const encoder = new TextEncoder();
  try {
    let lines: string[] = [];
    for (const message of readTranscript(values.db, { room, sinceMs })) {
      lines.push(formatLine(message, format));
      if (lines.length === 1000) {
        await out.write(encoder.encode(lines.join("\n") + "\n"));
        lines = [];
      }
    }
    if (lines.length > 0) await out.write(encoder.encode(lines.join("\n") + "\n"));
  } catch (error) {
    if (error instanceof DatabaseError) {
      throw new Failure(`${error.message}: is it a chat database?`, ExitCode.unavailable);
    }
    throw error;
  } finally {
    out.releaseLock();
  }
  return ExitCode.ok;
}

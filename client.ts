/**
 * `chat join`: connect, say hello, then send and receive at the same time.
 *
 * One task reads frames from the server and shows them; input (a terminal
 * line editor, or lines piped on stdin) feeds an {@linkcode Outbox} that
 * sends messages one at a time, each waiting for the server's echo before
 * the next goes. The echo is the server's confirmation, so the order of what
 * the user wrote is kept, a `rate_limited` refusal is simply retried, and at
 * the end of piped input the client knows that every line was accepted
 * before it quits. The outbox also paces itself to the limits the server
 * announced, so refusals are rare. Pacing costs nothing the user can see:
 * one round trip on a LAN is far below the server's rate limit.
 *
 * @module
 */

import * as readline from "node:readline";
import process from "node:process";
import { parseArgs, styleText } from "node:util";
import { ExitCode, Failure, formatAddress, parseAddress, UsageError } from "./cli.ts";
import { COMMAND_HELP, parseInput } from "./commands.ts";
import {
  type ClientFrame,
  encodeFrame,
  LineDecoder,
  parseServerFrame,
  PROTOCOL_VERSION,
  type ServerFrame,
  splitText,
  type WelcomeFrame,
} from "./protocol.ts";
import { renderFrame, type RenderOptions } from "./render.ts";
import { TokenBucket } from "./token_bucket.ts";

/** Options of `chat join`. */
export interface JoinOptions {
  hostname: string;
  port: number;
  name?: string;
  json: boolean;
}

const DEFAULT_PORT = 5050;
/** Server frames can be larger than client frames (a who list, say). */
const MAX_SERVER_FRAME_BYTES = 1024 * 1024;
const HANDSHAKE_TIMEOUT_MS = 10_000;
const QUIT_TIMEOUT_MS = 2000;

/** `chat join --help`. */
export const JOIN_HELP = `Usage: chat join [HOST[:PORT]] [options]

Joins a chat server (default 127.0.0.1:${DEFAULT_PORT}). In a terminal, type
messages and press Enter; /help lists the commands. With stdin piped, every
line is sent as a message and the client quits once the server has accepted
them all.

Options:
  --name NAME    the name to use (default: the server picks guestN)
  --json         print every event as one JSON object per line
  -h, --help     show this help

Exit codes: 0 left normally, 2 bad command line, 3 could not connect or the
server is full, 4 name refused, 5 protocol error, 6 connection lost or ended
by the server, 130 interrupted while sending piped input.`;

/** Reads `chat join` arguments; throws {@linkcode UsageError}. */
export function parseJoinArgs(args: string[]): JoinOptions | "help" {
  const help = "Run 'chat join --help' for the options.";
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        name: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error), help);
  }
  const { values, positionals } = parsed;
  if (values.help) return "help";
  if (positionals.length > 1) {
    throw new UsageError(`expected one address, got ${positionals.join(" ")}`, help);
  }
  const address = parseAddress(positionals[0] ?? "127.0.0.1", DEFAULT_PORT);
  if (address === undefined) {
    throw new UsageError(`"${positionals[0]}" is not HOST or HOST:PORT`, help);
  }
  return { ...address, name: values.name, json: values.json ?? false };
}

/**
 * Runs `chat join`; resolves to the exit code.
 *
 * @example
 * ```ts
 * import { runJoin } from "./client.ts";
 * Deno.exit(await runJoin(["127.0.0.1:5050", "--name", "ada"]));
 * ```
 */
export async function runJoin(args: string[]): Promise<number> {
  const options = parseJoinArgs(args);
  if (options === "help") {
    console.log(JOIN_HELP);
    return ExitCode.ok;
  }
  const where = formatAddress(options.hostname, options.port);
  const conn = await connect(options.hostname, options.port, where);
  const link = new Link(conn, where);
  try {
    const welcome = await link.hello(options.name);
    const interactive = Deno.stdin.isTerminal() && !options.json;
    const ui = interactive ? new TerminalUi(welcome) : new StreamUi(options.json);
    ui.show(welcome);
    return await chat(link, welcome, ui, interactive);
  } finally {
    link.close();
  }
}

async function connect(hostname: string, port: number, where: string): Promise<Deno.TcpConn> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const conn = await Promise.race([
      Deno.connect({ hostname, port }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Deno.errors.TimedOut()), HANDSHAKE_TIMEOUT_MS);
      }),
    ]);
    conn.setNoDelay(true);
    return conn;
  } catch (error) {
    throw new Failure(connectFailure(error, where), ExitCode.unavailable);
  } finally {
    clearTimeout(timer);
  }
}

function connectFailure(error: unknown, where: string): string {
  const prefix = `could not connect to ${where}`;
  if (error instanceof Deno.errors.ConnectionRefused) {
    return `${prefix}: connection refused. Is "chat serve" running there, on that port?`;
  }
  if (error instanceof Deno.errors.TimedOut) {
    return `${prefix}: no answer in ${HANDSHAKE_TIMEOUT_MS / 1000} s. ` +
      "Check the address, and that no firewall blocks the port.";
  }
  const message = error instanceof Error ? error.message : String(error);
  return `${prefix}: ${message}. Check the address.`;
}

/** The connection as frames: send one, or wait for the next. */
class Link {
  readonly #conn: Deno.TcpConn;
  readonly #where: string;
  readonly #frames: AsyncGenerator<ServerFrame>;
  #writing: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(conn: Deno.TcpConn, where: string) {
    this.#conn = conn;
    this.#where = where;
    this.#frames = this.#read();
  }

  /** Sends a frame; writes are kept in order. */
  send(frame: ClientFrame): Promise<unknown> {
    const bytes = encodeFrame(frame);
    this.#writing = this.#writing.then(() => writeAll(this.#conn, bytes)).catch(() => {});
    return this.#writing;
  }

  /** The next frame, or undefined when the server closed the connection. */
  async next(): Promise<ServerFrame | undefined> {
    const result = await this.#frames.next();
    return result.done ? undefined : result.value;
  }

  /** Says hello and waits for the welcome; throws a {@linkcode Failure}. */
  async hello(name?: string): Promise<WelcomeFrame> {
    this.send({ type: "hello", version: PROTOCOL_VERSION, ...(name ? { name } : {}) });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const frame = await Promise.race([
      this.next(),
      new Promise<"timeout">((resolve) =>
        timer = setTimeout(() => resolve("timeout"), HANDSHAKE_TIMEOUT_MS)
      ),
    ]).finally(() => clearTimeout(timer));
    if (frame === "timeout") {
      throw new Failure(
        `${this.#where} did not answer the greeting: is it a chat server?`,
        ExitCode.protocol,
      );
    }
    if (frame?.type === "welcome") return frame;
    if (frame?.type === "error") {
      const code = frame.code === "name_taken" || frame.code === "bad_name"
        ? ExitCode.nameRefused
        : frame.code === "server_full"
        ? ExitCode.unavailable
        : frame.code === "server_shutdown"
        ? ExitCode.disconnected
        : ExitCode.protocol;
      throw new Failure(`${this.#where} refused to let you in: ${frame.message}`, code);
    }
    throw new Failure(
      frame === undefined
        ? `${this.#where} closed the connection during the greeting`
        : `${this.#where} answered with a "${frame.type}" frame instead of a welcome`,
      frame === undefined ? ExitCode.disconnected : ExitCode.protocol,
    );
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  async *#read(): AsyncGenerator<ServerFrame> {
    const decoder = new LineDecoder({ maxLineBytes: MAX_SERVER_FRAME_BYTES });
    try {
      for await (const chunk of this.#conn.readable) {
        for (const line of decoder.push(chunk)) {
          const frame = line instanceof Uint8Array ? parseServerFrame(line) : line;
          if (frame.type === "frame_error") {
            throw new Failure(
              `${this.#where} sent something this client cannot read (${frame.message}); ` +
                "is it a chat server of the same release?",
              ExitCode.protocol,
            );
          }
          yield frame;
        }
      }
    } catch (error) {
      if (error instanceof Failure) throw error;
      // A reset, or our own close: the stream simply ends.
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/**
 * Sends messages in order, one at a time, each confirmed by the server's
 * echo before the next; retries refusals for rate; paces to the limits.
 */
class Outbox {
  readonly #link: Link;
  readonly #bucket: TokenBucket;
  readonly #maxFrameBytes: number;
  readonly #queue: string[] = [];
  #inFlight: { ref: number; text: string } | undefined;
  #nextRef = 1;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #idle = Promise.withResolvers<void>();
  #paceTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(link: Link, welcome: WelcomeFrame) {
    this.#link = link;
    // A little under the server's pace, so its bucket is never the one to say no.
    this.#bucket = new TokenBucket({
      rate: welcome.limits.rate * 0.95,
      burst: Math.max(1, welcome.limits.burst - 1),
    });
    this.#maxFrameBytes = welcome.limits.maxFrameBytes;
    this.#idle.resolve();
  }

  /** Messages not yet confirmed, the one in flight included. */
  get pending(): number {
    return this.#queue.length + (this.#inFlight ? 1 : 0);
  }

  /** Queues a message (split into parts if it is too long for one frame). */
  add(text: string): void {
    if (this.pending === 0) this.#idle = Promise.withResolvers<void>();
    this.#queue.push(...splitText(text, this.#maxFrameBytes));
    this.#pump();
  }

  /** Resolves once every queued message is confirmed. */
  idle(): Promise<void> {
    return this.#idle.promise;
  }

  /**
   * Follows the server's answers to our messages (`me` is our name now).
   * Returns true for a refusal for rate that will be retried: nothing for
   * the user to see.
   */
  receive(frame: ServerFrame, me: string): boolean {
    const flight = this.#inFlight;
    if (flight === undefined || !("ref" in frame) || frame.ref !== flight.ref) return false;
    if (frame.type === "msg" && frame.from !== me) return false; // someone else's ref
    if (frame.type === "error" && frame.code === "rate_limited") {
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        this.#link.send({ type: "msg", text: flight.text, ref: flight.ref });
      }, frame.retryMs ?? 1000);
      return true;
    }
    // Confirmed, or refused for good (an error the user is shown).
    this.#inFlight = undefined;
    this.#pump();
    return false;
  }

  /** Stops timers; for the end of the session. */
  stop(): void {
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#paceTimer);
  }

  #pump(): void {
    if (this.#inFlight !== undefined || this.#paceTimer !== undefined) return;
    const text = this.#queue.shift();
    if (text === undefined) return this.#idle.resolve();
    const wait = this.#bucket.take(performance.now());
    if (wait > 0) {
      this.#queue.unshift(text);
      this.#paceTimer = setTimeout(() => {
        this.#paceTimer = undefined;
        this.#pump();
      }, wait);
      return;
    }
    this.#inFlight = { ref: this.#nextRef++, text };
    this.#link.send({ type: "msg", text, ref: this.#inFlight.ref });
  }
}

/** Where received frames are shown. */
interface Ui {
  show(frame: ServerFrame): void;
  say(line: string): void;
  close(): void;
}

/** Output for pipes and scripts: text lines, or JSON lines with --json. */
class StreamUi implements Ui {
  constructor(readonly json: boolean) {}
  show(frame: ServerFrame): void {
    if (frame.type === "pong") return;
    const line = this.json ? JSON.stringify(frame) : renderFrame(frame);
    if (line !== undefined) console.log(line);
  }
  say(line: string): void {
    console.error(line);
  }
  close(): void {}
}

const NAME_COLOURS = ["cyan", "green", "yellow", "magenta", "blue", "red"] as const;

/** A terminal: received lines appear above the line being typed. */
class TerminalUi implements Ui {
  readonly rl: readline.Interface;
  readonly #render: RenderOptions;

  constructor(welcome: WelcomeFrame) {
    this.rl = readline.createInterface({
      input: process.stdin,
      output: process.stdout,
      terminal: true,
      historySize: 100,
    });
    this.setName(welcome.name);
    const colour = Deno.stdout.isTerminal() && !Deno.noColor;
    this.#render = colour
      ? {
        name: (name) =>
          styleText(NAME_COLOURS[hash(name) % NAME_COLOURS.length], name, {
            validateStream: false,
          }),
        notice: (line) => styleText("dim", line, { validateStream: false }),
      }
      : {};
  }

  setName(name: string): void {
    this.rl.setPrompt(`${name}> `);
  }

  show(frame: ServerFrame): void {
    const line = renderFrame(frame, this.#render);
    if (line !== undefined) this.say(line);
  }

  /** Prints above the input line, then redraws the prompt and what was typed. */
  say(line: string): void {
    readline.clearLine(process.stdout, 0);
    readline.cursorTo(process.stdout, 0);
    process.stdout.write(line + "\n");
    this.rl.prompt(true);
  }

  /** Erases the line just entered: the server's echo will show it. */
  eraseEntered(): void {
    readline.moveCursor(process.stdout, 0, -1);
    readline.clearLine(process.stdout, 0);
  }

  close(): void {
    this.rl.close();
    process.stdout.write("\n"); // leave the shell prompt on a line of its own
  }
}

function hash(text: string): number {
  let h = 0;
  for (let i = 0; i < text.length; i++) h = (h * 31 + text.charCodeAt(i)) >>> 0;
  return h;
}

/** Runs the session after the welcome; resolves to the exit code. */
async function chat(
  link: Link,
  welcome: WelcomeFrame,
  ui: Ui,
  interactive: boolean,
): Promise<number> {
  const outbox = new Outbox(link, welcome);
  let name = welcome.name;
  let leaving: number | undefined; // the exit code once we chose to leave
  let ended: string | undefined; // why the server ended the session

  let quitTimer: ReturnType<typeof setTimeout> | undefined;
  const leave = async (code: number) => {
    if (leaving !== undefined) return;
    leaving = code;
    await link.send({ type: "quit" });
    // The server answers a quit by sending what it still owes us, then closing:
    // that ends the reading loop below. Don't wait for a silent server forever.
    quitTimer = setTimeout(() => link.close(), QUIT_TIMEOUT_MS);
  };

  if (interactive) readTerminal(ui as TerminalUi, outbox, link, leave);
  else {
    readPipe(outbox, leave).catch((error) => {
      console.error(`chat: cannot read standard input: ${error}`);
      leave(ExitCode.internal);
    });
  }

  let readToEnd = false;
  try {
    for (;;) {
      const frame = await link.next();
      if (frame === undefined) break;
      if (outbox.receive(frame, name)) continue;
      if (frame.type === "event" && frame.event === "rename" && frame.from === name) {
        name = frame.name;
        if (ui instanceof TerminalUi) ui.setName(name);
      }
      if (
        frame.type === "error" &&
        (frame.code === "slow_consumer" || frame.code === "server_shutdown")
      ) {
        ended = frame.message;
      }
      ui.show(frame);
    }
    readToEnd = true;
  } finally {
    clearTimeout(quitTimer);
    const unconfirmed = outbox.pending;
    leaving ??= ExitCode.disconnected; // nothing may send a quit any more
    outbox.stop();
    ui.close();
    if (readToEnd && leaving === ExitCode.disconnected) {
      const lost = unconfirmed > 0 ? `; ${unconfirmed} message(s) were not confirmed` : "";
      console.error(`chat: disconnected: ${ended ?? "the connection was lost"}${lost}`);
    }
  }
  return leaving;
}

function readTerminal(
  ui: TerminalUi,
  outbox: Outbox,
  link: Link,
  leave: (code: number) => Promise<void>,
): void {
  ui.rl.on("line", (line: string) => {
    ui.eraseEntered();
    const input = parseInput(line);
    switch (input.kind) {
      case "say":
        return outbox.add(input.text);
      case "nick":
        link.send({ type: "nick", name: input.name });
        return;
      case "who":
        link.send({ type: "who" });
        return;
      case "help":
        return COMMAND_HELP.forEach((help) => ui.say(`* ${help}`));
      case "quit":
        leave(ExitCode.ok);
        return;
      case "empty":
        return ui.rl.prompt();
      case "unknown":
        return ui.say(`! unknown command /${input.command}; try /help`);
      case "usage":
        return ui.say(`! ${input.message}`);
    }
  });
  ui.rl.on("SIGINT", () => leave(ExitCode.ok));
  ui.rl.on("close", () => leave(ExitCode.ok)); // Ctrl-D
  ui.rl.prompt();
}

/** Sends each piped line, then quits once all are confirmed. */
async function readPipe(outbox: Outbox, leave: (code: number) => Promise<void>): Promise<void> {
  const onSignal = () => leave(ExitCode.interrupted);
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  try {
    for await (const line of stdinLines()) {
      if (line.trim() !== "") outbox.add(line);
      // Keep only a little of the input in memory when the server is slower.
      if (outbox.pending > 100) await outbox.idle();
    }
    await outbox.idle();
    await leave(ExitCode.ok);
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
  }
}

/** Stdin as lines; a line with no end in sight is passed on in parts. */
async function* stdinLines(): AsyncGenerator<string> {
  const MAX_HELD = 64 * 1024;
  let held = "";
  for await (const text of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    held += text;
    let newline: number;
    while ((newline = held.indexOf("\n")) !== -1) {
      yield held.slice(0, newline).replace(/\r$/, "");
      held = held.slice(newline + 1);
    }
    if (held.length > MAX_HELD) {
      yield held;
      held = "";
    }
  }
  if (held !== "") yield held.replace(/\r$/, "");
}

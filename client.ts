/**
 * `chat join`: connect, say hello, then send and receive at the same time,
 * and come back by itself when the connection drops.
 *
 * One loop reads frames from the server and shows them; input (a terminal
 * line editor, or lines piped on stdin) feeds an {@linkcode Outbox} that
 * sends messages one at a time, each waiting for the server's echo before
 * the next goes. The echo is the server's confirmation, so the order of what
 * the user wrote is kept, a `rate_limited` refusal is simply retried, and at
 * the end of piped input the client knows every line was accepted before it
 * quits. The outbox paces itself to the limits the server announced, so
 * refusals are rare; one round trip on a LAN is far below the rate limit.
 *
 * When the connection drops, the client reconnects with exponential backoff
 * and jitter, presents the token of its welcome to take its name back, and
 * asks for the messages after the last `seq` it saw in its room: the server
 * replays exactly those, so nothing is missing and nothing doubled. A
 * message that was in flight is looked for in that replay and sent again
 * only if it is not there.
 *
 * @module
 */

import * as readline from "node:readline";
import process from "node:process";
import { styleText } from "node:util";
import {
  ExitCode,
  Failure,
  formatAddress,
  integerFlag,
  parseAddress,
  parseFlags,
  UsageError,
} from "./cli.ts";
import { COMMAND_HELP, OPERATOR_HELP, parseInput, requestFrame } from "./commands.ts";
import {
  type ClientFrame,
  encodeFrame,
  LineDecoder,
  neutralize,
  parseServerFrame,
  PROTOCOL_VERSION,
  type ServerFrame,
  splitText,
  type WelcomeFrame,
} from "./protocol.ts";
import { renderFrame, type RenderOptions } from "./render.ts";
import { escapeJsonLine } from "./text/names.ts";
import { TIMED_OUT, within } from "./timeout.ts";
import { TokenBucket } from "./token_bucket.ts";

/** Options of `chat join`. */
export interface JoinOptions {
  hostname: string;
  port: number;
  name?: string;
  room?: string;
  /** Earlier messages to be shown on entering a room. */
  history: number;
  json: boolean;
  /** How long to keep trying to reconnect, in seconds; 0 never tries. */
  retryFor: number;
  /** Silence from the server after which it is pinged (at half) and given up on, in ms. */
  idleTimeoutMs: number;
  /** Speak TLS, trusting these PEM certificates besides the system's (`--ca`). */
  tls?: { caFile?: string };
  /** The environment variables holding the password and the operator token. */
  passwordEnv?: string;
  opTokenEnv?: string;
}

const DEFAULT_PORT = 5050;
/** Server frames can be larger than client frames (a who list, say). */
const MAX_SERVER_FRAME_BYTES = 1024 * 1024;
const HANDSHAKE_TIMEOUT_MS = 10_000;
const QUIT_TIMEOUT_MS = 2000;
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 10_000;

/** `chat join --help`. */
export const JOIN_HELP = `Usage: chat join [HOST[:PORT]] [options]

Joins a chat server (default 127.0.0.1:${DEFAULT_PORT}). In a terminal, type
messages and press Enter; /help lists the commands. With stdin piped, every
line is sent as a message and the client quits once the server has accepted
them all. If the connection drops, the client reconnects by itself and gets
what it missed.

Options:
  --name NAME       the name to use (default: the server picks guestN)
  --room ROOM       the room to enter (default lobby)
  --history N       earlier messages to show on entering a room (default 50)
  --json            print every event as one JSON object per line
  --retry-for SECS  keep trying to reconnect this long (default 300; 0: never)
  --idle-timeout SECS  ping a server that has been quiet for half this, and
                    reconnect if it stays quiet this long (default 60)
  --tls             connect with TLS, checking the server's certificate
  --ca FILE         trust this PEM certificate too (a lab's own; implies --tls)
  --password-env VAR  the server's password is in this environment variable
                    (in a terminal, chat asks for it when the server wants one)
  --op-token-env VAR  join as an operator with the token in this variable
  -h, --help        show this help

Exit codes: 0 left normally, 2 bad command line, 3 could not connect or the
server is full, 4 name refused, 5 protocol error, 6 connection lost (and not
regained) or name taken over by another client with the same token, 7 password
refused, 130 interrupted while sending piped input.`;

/** Reads `chat join` arguments; throws {@linkcode UsageError}. */
export function parseJoinArgs(args: string[]): JoinOptions | "help" {
  const help = "Run 'chat join --help' for the options.";
  const parsed = parseFlags(
    args,
    {
      name: { type: "string" },
      room: { type: "string" },
      history: { type: "string" },
      json: { type: "boolean" },
      "retry-for": { type: "string" },
      "idle-timeout": { type: "string" },
      tls: { type: "boolean" },
      ca: { type: "string" },
      "password-env": { type: "string" },
      "op-token-env": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    true,
    help,
  );
  const { values, positionals } = parsed;
  if (values.help) return "help";
  if (positionals.length > 1) {
    throw new UsageError(`expected one address, got ${positionals.join(" ")}`, help);
  }
  const address = parseAddress(positionals[0] ?? "127.0.0.1", DEFAULT_PORT);
  if (address === undefined) {
    throw new UsageError(`"${positionals[0]}" is not HOST or HOST:PORT`, help);
  }
  const int = (name: string, value: string | undefined, fallback: number, max: number) =>
    value === undefined ? fallback : integerFlag(name, value, { min: 0, max, help });
  return {
    ...address,
    name: values.name,
    room: values.room?.replace(/^#/, ""),
    history: int("history", values.history, 50, 100_000),
    json: values.json ?? false,
    retryFor: int("retry-for", values["retry-for"], 300, 86_400),
    idleTimeoutMs: 1000 * integerFlag("idle-timeout", values["idle-timeout"] ?? "60", {
      min: 2,
      max: 86_400,
      help,
    }),
    ...(values.tls || values.ca !== undefined ? { tls: { caFile: values.ca } } : {}),
    passwordEnv: values["password-env"],
    opTokenEnv: values["op-token-env"],
  };
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
  const interactive = Deno.stdin.isTerminal() && !options.json;
  const client = new Client(options, interactive, readJoinSecrets(options));
  try {
    return await client.run();
  } finally {
    client.dispose();
  }
}

/** What `chat join` reads from files and the environment, named by its flags. */
interface JoinSecrets {
  caCerts?: string[];
  password?: string;
  opToken?: string;
}

function readJoinSecrets(options: JoinOptions): JoinSecrets {
  const env = (flag: string, name: string) => {
    const value = Deno.env.get(name);
    if (!value) {
      throw new UsageError(
        `${flag} ${name}: the environment variable ${name} is not set`,
        "Set it first, or leave out the flag to be asked in the terminal.",
      );
    }
    return value;
  };
  const secrets: JoinSecrets = {};
  if (options.tls?.caFile !== undefined) {
    try {
      secrets.caCerts = [Deno.readTextFileSync(options.tls.caFile)];
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Failure(`cannot read --ca ${options.tls.caFile}: ${reason}`, ExitCode.unavailable);
    }
  }
  if (options.passwordEnv !== undefined) {
    secrets.password = env("--password-env", options.passwordEnv);
  }
  if (options.opTokenEnv !== undefined) secrets.opToken = env("--op-token-env", options.opTokenEnv);
  return secrets;
}

/** Asks for a secret on the terminal without showing what is typed. */
async function promptHidden(question: string): Promise<string> {
  const encoder = new TextEncoder();
  await Deno.stderr.write(encoder.encode(question));
  const bytes: number[] = [];
  const buffer = new Uint8Array(256);
  Deno.stdin.setRaw(true);
  try {
    reading: for (;;) {
      const n = await Deno.stdin.read(buffer);
      if (n === null) break;
      for (const byte of buffer.subarray(0, n)) {
        if (byte === 13 || byte === 10) break reading;
        if (byte === 3 || byte === 4) {
          throw new Failure("no password given", ExitCode.authFailed); // Ctrl-C, Ctrl-D
        }
        if (byte === 127 || byte === 8) {
          // Backspace: drop one whole UTF-8 character.
          while (bytes.length > 0 && (bytes[bytes.length - 1] & 0xc0) === 0x80) bytes.pop();
          bytes.pop();
        } else if (byte >= 0x20) {
          bytes.push(byte);
        }
      }
    }
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(encoder.encode("\n"));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

// ---------------------------------------------------------------- the link

/** One connection as frames: send one, or wait for the next. */
class Link {
  readonly #conn: Deno.Conn;
  readonly #where: string;
  readonly #frames: AsyncGenerator<ServerFrame>;
  #writing: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** The first line of text skipped while waiting for the welcome. */
  #skipped: string | undefined;
  readonly #tls: boolean;
  #heardAt = performance.now();
  #watch: ReturnType<typeof setInterval> | undefined;
  /** Set when the link was closed because the server went quiet. */
  silentFor: number | undefined;

  private constructor(conn: Deno.Conn, where: string, tls: boolean) {
    this.#tls = tls;
    this.#conn = conn;
    this.#where = where;
    this.#frames = this.#read();
  }

  /** Connects; throws a {@linkcode Failure} that says what went wrong. */
  static async open(
    hostname: string,
    port: number,
    tls?: { caCerts?: string[] },
  ): Promise<Link> {
    const where = formatAddress(hostname, port);
    let conn: Deno.Conn<Deno.NetAddr> | undefined;
    try {
      const connecting: Promise<Deno.Conn<Deno.NetAddr>> = tls
        ? Deno.connectTls({ hostname, port, caCerts: tls.caCerts })
        : Deno.connect({ hostname, port });
      const connected = await within(connecting, HANDSHAKE_TIMEOUT_MS);
      if (connected === TIMED_OUT) {
        connecting.then((late) => late.close(), () => {});
        throw new Deno.errors.TimedOut();
      }
      conn = connected;
      if (tls) {
        // Check the certificate now, so that a bad one is reported as such.
        const shaken = await within((conn as Deno.TlsConn).handshake(), HANDSHAKE_TIMEOUT_MS);
        if (shaken === TIMED_OUT) throw new Deno.errors.TimedOut();
      } else {
        (conn as Deno.TcpConn).setNoDelay(true);
      }
      return new Link(conn, where, tls !== undefined);
    } catch (error) {
      try {
        conn?.close();
      } catch {
        // Never opened.
      }
      throw new Failure(connectFailure(error, where, tls !== undefined), ExitCode.unavailable);
    }
  }

  /** Sends a frame; writes are kept in order, and fail quietly once closed. */
  send(frame: ClientFrame): void {
    const bytes = encodeFrame(frame);
    this.#writing = this.#writing.then(() => writeAll(this.#conn, bytes)).catch(() => {});
  }

  /** The next frame, or undefined when the connection has ended. */
  async next(): Promise<ServerFrame | undefined> {
    const result = await this.#frames.next();
    return result.done ? undefined : result.value;
  }

  /** Says hello and waits for the welcome; throws a {@linkcode Failure}. */
  async hello(hello: Omit<Extract<ClientFrame, { type: "hello" }>, "type">): Promise<WelcomeFrame> {
    this.send({ type: "hello", ...hello });
    const frame = await within(this.next(), HANDSHAKE_TIMEOUT_MS);
    if ((frame === TIMED_OUT || frame === undefined) && this.#skipped !== undefined) {
      throw new Failure(
        `${this.#where} answered "${this.#skipped}" instead of a welcome: is it a chat server?`,
        ExitCode.protocol,
      );
    }
    if (frame === TIMED_OUT) {
      throw new Failure(
        `${this.#where} did not answer the greeting: is it a chat server?`,
        ExitCode.protocol,
      );
    }
    if (frame?.type === "welcome") return frame;
    if (frame?.type === "error") {
      const code = frame.code === "name_taken" || frame.code === "bad_name"
        ? ExitCode.nameRefused
        : frame.code === "auth_failed"
        ? ExitCode.authFailed
        : frame.code === "server_full" || frame.code === "too_many_connections"
        ? ExitCode.unavailable
        : frame.code === "server_shutdown" || frame.code === "replaced" || frame.code === "banned"
        ? ExitCode.disconnected
        : ExitCode.protocol;
      throw new Failure(
        `${this.#where} refused to let you in: ${frame.message}`,
        code,
        frame.retryMs,
      );
    }
    throw new Failure(
      frame === undefined
        ? `${this.#where} closed the connection during the greeting` +
          (this.#tls ? "" : " (if it speaks TLS, as chat serve --tls-cert does, add --tls)")
        : `${this.#where} answered with a "${frame.type}" frame instead of a welcome`,
      frame === undefined ? ExitCode.disconnected : ExitCode.protocol,
    );
  }

  /**
   * Pings the server once it has been quiet for half `idleMs`, and closes the
   * link if it stays quiet for `idleMs`: a dead server or network is noticed
   * even when nobody is talking.
   */
  watch(idleMs: number): void {
    let pinged = false;
    this.#watch = setInterval(() => {
      const silent = performance.now() - this.#heardAt;
      if (silent < idleMs / 2) {
        pinged = false;
      } else if (silent >= idleMs) {
        this.silentFor = silent;
        this.close();
      } else if (!pinged) {
        pinged = true;
        this.send({ type: "ping", data: "idle" });
      }
    }, Math.min(1000, idleMs / 4));
  }

  close(): void {
    clearInterval(this.#watch);
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
    let welcomed = false;
    try {
      for await (const chunk of this.#conn.readable) {
        this.#heardAt = performance.now();
        for (const line of decoder.push(chunk)) {
          // A server that took a slow hello for a plain-text client has sent text first.
          if (!welcomed && line instanceof Uint8Array && line[0] !== 0x7b /* { */) {
            this.#skipped ??= neutralize(new TextDecoder().decode(line.subarray(0, 60)));
            continue;
          }
          welcomed = true;
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

function connectFailure(error: unknown, where: string, tls: boolean): string {
  const prefix = `could not connect to ${where}`;
  const message = error instanceof Error ? error.message : String(error);
  if (tls && /certificate|UnknownIssuer|NotValidForName|handshake|tls|corrupt/i.test(message)) {
    return `${prefix} over TLS: ${message}. If the server uses a lab certificate, pass it ` +
      "with --ca FILE; if it does not speak TLS, leave out --tls.";
  }
  if (error instanceof Deno.errors.ConnectionRefused) {
    return `${prefix}: connection refused (is "chat serve" running there, on that port?)`;
  }
  if (error instanceof Deno.errors.TimedOut) {
    return `${prefix}: no answer in ${HANDSHAKE_TIMEOUT_MS / 1000} s. ` +
      "Check the address, and that no firewall blocks the port.";
  }
  return `${prefix}: ${message}. Check the address.`;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

// ---------------------------------------------------------------- the outbox

type Outgoing = { to?: string; text: string };

/**
 * Sends messages in order, one at a time, each confirmed by the server's
 * echo before the next; retries refusals for rate; paces to the limits.
 * It outlives connections: what is queued waits through a reconnect.
 */
class Outbox {
  #link: Link | undefined;
  #bucket = new TokenBucket({ rate: 1, burst: 1 });
  #maxFrameBytes = 1024;
  readonly #queue: Outgoing[] = [];
  #inFlight: (Outgoing & { ref: number }) | undefined;
  // Refs unlike those of an earlier run under the same name, which a replay may show.
  #nextRef = Date.now() * 1000;
  #awaitingReplay = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #idle = Promise.withResolvers<void>();

  constructor() {
    this.#idle.resolve();
  }

  /** Messages not yet confirmed, the one in flight included. */
  get pending(): number {
    return this.#queue.length + (this.#inFlight ? 1 : 0);
  }

  /** Starts sending on a new connection, with that server's limits. */
  attach(link: Link, welcome: WelcomeFrame): void {
    this.#link = link;
    // A little under the server's pace, so its bucket is never the one to say no.
    this.#bucket = new TokenBucket({
      rate: welcome.limits.rate * 0.95,
      burst: Math.max(1, welcome.limits.burst - 1),
    });
    this.#maxFrameBytes = welcome.limits.maxFrameBytes;
    this.#awaitingReplay = true;
  }

  /** The connection is gone: hold everything until the next one. */
  detach(): void {
    this.#link = undefined;
    this.stop();
  }

  /**
   * After the replay that follows a welcome: send again what was in flight
   * and not seen in it, then go on with the queue.
   */
  resume(): void {
    if (!this.#awaitingReplay) return;
    this.#awaitingReplay = false;
    const flight = this.#inFlight;
    if (flight) this.#link?.send(messageFrame(flight));
    else this.#pump();
  }

  /** Queues a message, or a direct one with `to` (split if too long for a frame). */
  add(text: string, to?: string): void {
    if (this.pending === 0) this.#idle = Promise.withResolvers<void>();
    // A dm frame carries "to" besides the text: leave room for it, counted in bytes as sent.
    const toBytes = to === undefined ? 0 : new TextEncoder().encode(JSON.stringify(to)).length + 8;
    for (const piece of splitText(text, this.#maxFrameBytes - toBytes)) {
      this.#queue.push({ to, text: piece });
    }
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
    if ((frame.type === "msg" || frame.type === "dm") && frame.from !== me) return false;
    if (frame.type === "error" && frame.code === "rate_limited") {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#link?.send(messageFrame(flight));
      }, frame.retryMs ?? 1000);
      return true;
    }
    // Confirmed, or refused for good (an error the user is shown).
    this.#inFlight = undefined;
    this.#pump();
    return false;
  }

  /** Stops timers. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #pump(): void {
    if (this.#inFlight || this.#timer !== undefined || !this.#link || this.#awaitingReplay) return;
    const next = this.#queue[0];
    if (next === undefined) return this.#idle.resolve();
    const wait = this.#bucket.take(performance.now());
    if (wait > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#pump();
      }, wait);
      return;
    }
    this.#queue.shift();
    this.#inFlight = { ...next, ref: this.#nextRef++ };
    this.#link.send(messageFrame(this.#inFlight));
  }
}

function messageFrame(message: Outgoing & { ref: number }): ClientFrame {
  return message.to === undefined
    ? { type: "msg", text: message.text, ref: message.ref }
    : { type: "dm", to: message.to, text: message.text, ref: message.ref };
}

// ---------------------------------------------------------------- output

/** Where frames and status lines are shown. */
interface Ui {
  show(frame: ServerFrame): void;
  /** Marks where replayed messages end and the live ones begin. */
  endOfHistory(): void;
  /** A line of the client's own (status, help). */
  say(line: string): void;
  setPrompt(name: string, room: string): void;
  close(): void;
}

/** Output for pipes and scripts: text lines, or JSON lines with --json. */
class StreamUi implements Ui {
  constructor(readonly json: boolean) {}
  show(frame: ServerFrame): void {
    if (frame.type === "pong") return;
    if (frame.type === "history" && !this.json && frame.count === 0 && frame.gone === 0) return;
    // Escaped, so that nothing reading the output meets raw control or bidi characters.
    const line = this.json ? escapeJsonLine(JSON.stringify(frame)) : renderFrame(frame);
    if (line !== undefined) console.log(line);
  }
  endOfHistory(): void {
    if (!this.json) console.log("* (end of earlier messages)");
  }
  say(line: string): void {
    console.error(line);
  }
  setPrompt(): void {}
  close(): void {}
}

const NAME_COLOURS = ["cyan", "green", "yellow", "magenta", "blue", "red"] as const;

/** A terminal: received lines appear above the line being typed. */
class TerminalUi implements Ui {
  readonly rl: readline.Interface;
  readonly #render: RenderOptions;
  readonly #dim: (text: string) => string;

  constructor() {
    this.rl = readline.createInterface({
      input: process.stdin,
      output: process.stdout,
      terminal: true,
      historySize: 100,
    });
    const colour = Deno.stdout.isTerminal() && !Deno.noColor;
    // validateStream: false, or styleText would read the environment.
    const style = (format: Parameters<typeof styleText>[0], text: string) =>
      colour ? styleText(format, text, { validateStream: false }) : text;
    this.#dim = (text) => style("dim", text);
    this.#render = {
      name: (name) => style(NAME_COLOURS[hash(name) % NAME_COLOURS.length], name),
      notice: this.#dim,
    };
  }

  setPrompt(name: string, room: string): void {
    this.rl.setPrompt(`${name}@${room}> `);
  }

  show(frame: ServerFrame): void {
    if (frame.type === "history" && frame.count === 0 && frame.gone === 0) return;
    const line = renderFrame(frame, this.#render);
    if (line === undefined) return;
    this.say(frame.type === "msg" && frame.replay ? this.#dim(line) : line);
  }

  endOfHistory(): void {
    this.say(this.#dim("* (end of earlier messages)"));
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

// ---------------------------------------------------------------- the client

/** How a connection ended. */
type End =
  | { kind: "left"; code: number }
  | { kind: "lost"; reason: string };

/** The client: its identity and place, which outlive any one connection. */
class Client {
  readonly #options: JoinOptions;
  readonly #secrets: JoinSecrets;
  readonly #interactive: boolean;
  /** Plain output until the first welcome; a terminal UI from then on, if interactive. */
  #ui: Ui;
  readonly #outbox = new Outbox();
  #name: string | undefined;
  #room: string | undefined;
  #token: string | undefined;
  /** The last seq seen in #room, and the epoch it counts in; undefined before the first welcome. */
  #seq: number | undefined;
  #epoch: string | undefined;
  /** The id of the last private message seen, to or from us. */
  #dmSeen: number | undefined;
  #link: Link | undefined;
  /** Set once the user asked to leave, with the exit code to leave with. */
  #leaving: number | undefined;
  #leaveAsked = Promise.withResolvers<void>();
  #quitTimer: ReturnType<typeof setTimeout> | undefined;
  #signals: Deno.Signal[] = [];
  /** Why the last try to reconnect failed, for the final message. */
  #lastTry: string | undefined;
  readonly #onSignal = () => this.leave(ExitCode.interrupted);

  constructor(options: JoinOptions, interactive: boolean, secrets: JoinSecrets) {
    this.#options = options;
    this.#secrets = secrets;
    this.#interactive = interactive;
    this.#name = options.name;
    this.#room = options.room;
    this.#ui = new StreamUi(options.json);
  }

  /** Connects, chats, reconnects as needed; resolves to the exit code. */
  async run(): Promise<number> {
    // The first connection's failures are final: the user is there to fix them.
    const welcome = await this.#firstConnect();
    if (this.#interactive) {
      this.#ui = new TerminalUi();
      this.#ui.setPrompt(welcome.name, welcome.room);
    }
    this.#startInput();
    let current: Link | undefined = this.#link;
    let first: WelcomeFrame | undefined = welcome;
    for (;;) {
      const end = await this.#chat(current!, first);
      first = undefined;
      this.#outbox.detach();
      if (end.kind === "left") return end.code;
      if (this.#options.retryFor === 0) return this.#lost(end.reason);
      current = await this.#reconnect(end.reason);
      if (current === undefined) return this.#lost(end.reason);
    }
  }

  /** Asks to leave: quits politely if connected, else stops trying. */
  leave(code: number): void {
    if (this.#leaving !== undefined) return;
    this.#leaving = code;
    this.#leaveAsked.resolve();
    const link = this.#link;
    if (!link) return;
    link.send({ type: "quit" });
    // The server answers a quit by sending what it still owes, then closing;
    // that ends the reading loop. Don't wait for a silent server forever.
    this.#quitTimer = setTimeout(() => link.close(), QUIT_TIMEOUT_MS);
  }

  dispose(): void {
    clearTimeout(this.#quitTimer);
    this.#outbox.stop();
    this.#link?.close();
    for (const signal of this.#signals) Deno.removeSignalListener(signal, this.#onSignal);
    this.#ui.close();
  }

  /** The first connection: in a terminal, asks for the password if the server wants one. */
  async #firstConnect(): Promise<WelcomeFrame> {
    for (;;) {
      try {
        return await this.#connect();
      } catch (error) {
        const askable = error instanceof Failure && error.exitCode === ExitCode.authFailed &&
          this.#interactive && this.#options.passwordEnv === undefined;
        if (!askable) throw error;
        if (this.#secrets.password !== undefined) this.#ui.say(`! ${error.message}`);
        // Asking before the server will listen again would only be refused unchecked.
        if (error.retryMs) await new Promise((resolve) => setTimeout(resolve, error.retryMs));
        const where = formatAddress(this.#options.hostname, this.#options.port);
        this.#secrets.password = await promptHidden(`Password for ${where}: `);
      }
    }
  }

  /** Opens a connection and says hello; throws a {@linkcode Failure}. */
  async #connect(): Promise<WelcomeFrame> {
    const tls = this.#options.tls ? { caCerts: this.#secrets.caCerts } : undefined;
    const link = await Link.open(this.#options.hostname, this.#options.port, tls);
    let welcome: WelcomeFrame;
    try {
      welcome = await link.hello({
        version: PROTOCOL_VERSION,
        ...(this.#name === undefined ? {} : { name: this.#name }),
        ...(this.#room === undefined ? {} : { room: this.#room }),
        history: this.#options.history,
        ...(this.#seq === undefined ? {} : { since: this.#seq, epoch: this.#epoch }),
        ...(this.#token === undefined ? {} : { token: this.#token }),
        ...(this.#dmSeen === undefined ? {} : { dmSince: this.#dmSeen }),
        ...(this.#secrets.password === undefined ? {} : { password: this.#secrets.password }),
        ...(this.#secrets.opToken === undefined ? {} : { op: this.#secrets.opToken }),
      });
    } catch (error) {
      link.close();
      throw error;
    }
    this.#link = link;
    this.#name = welcome.name;
    this.#room = welcome.room;
    this.#token = welcome.token;
    this.#seq = welcome.seq;
    this.#epoch = welcome.epoch;
    this.#dmSeen ??= 0; // from here on, every private message is ours to see
    this.#outbox.attach(link, welcome);
    link.watch(this.#options.idleTimeoutMs);
    this.#ui.setPrompt(welcome.name, welcome.room);
    return welcome;
  }

  /** Tries to connect again with backoff; undefined when giving up. */
  async #reconnect(reason: string): Promise<Link | undefined> {
    const until = Date.now() + this.#options.retryFor * 1000;
    for (let attempt = 0; this.#leaving === undefined; attempt++) {
      // Exponential backoff with "equal jitter": half fixed, half random.
      const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
      const delay = Math.round(cap / 2 + Math.random() * cap / 2);
      if (Date.now() + delay > until) return undefined;
      this.#ui.say(
        `! ${reason}; reconnecting in ${(delay / 1000).toFixed(1)} s ` +
          `(attempt ${attempt + 1}; Ctrl-C to stop)`,
      );
      await within(this.#leaveAsked.promise, delay); // the delay, unless the user leaves first
      if (this.#leaving !== undefined) return undefined;
      try {
        await this.#connect();
        this.#lastTry = undefined;
        this.#ui.say(`* reconnected`);
        return this.#link;
      } catch (error) {
        if (!(error instanceof Failure)) throw error;
        // Someone else has the name now, or we are refused: trying again won't help.
        if (
          error.exitCode === ExitCode.nameRefused || error.exitCode === ExitCode.protocol ||
          error.exitCode === ExitCode.authFailed
        ) {
          throw error;
        }
        reason = this.#lastTry = error.message;
      }
    }
    return undefined;
  }

  #lost(reason: string): number {
    const unconfirmed = this.#outbox.pending;
    const lost = unconfirmed > 0 ? `; ${unconfirmed} message(s) were not confirmed` : "";
    const tried = this.#lastTry === undefined ? "" : `; could not reconnect: ${this.#lastTry}`;
    this.#ui.say(`chat: disconnected: ${reason}${tried}${lost}`);
    return ExitCode.disconnected;
  }

  /** Shows frames from one connection until it ends. */
  async #chat(link: Link, welcome?: WelcomeFrame): Promise<End> {
    let reason = "the connection was lost";
    let replaying = 0; // replayed messages still to come after a history frame
    if (welcome) this.#ui.show(welcome);
    for (;;) {
      const frame = await link.next();
      if (frame === undefined) break;
      if (frame.type === "ping") {
        link.send({ type: "pong", ...(frame.data === undefined ? {} : { data: frame.data }) });
        continue;
      }
      if (this.#outbox.receive(frame, this.#name!)) continue;
      this.#follow(frame);
      if (
        frame.type === "error" &&
        (frame.code === "slow_consumer" || frame.code === "server_shutdown" ||
          frame.code === "timeout")
      ) {
        reason = frame.message;
      }
      // Replaced by our own token elsewhere, or removed by an operator: coming back would not do.
      if (frame.type === "error" && ["replaced", "kicked", "banned"].includes(frame.code)) {
        this.#leaving ??= ExitCode.disconnected;
      }
      if (frame.type === "history" && frame.restarted) {
        this.#ui.say(
          `* the server's numbering of ${frame.room} started again (it was restarted without ` +
            "its history), so what you missed meanwhile cannot be told apart; here are its " +
            "latest messages",
        );
      }
      this.#ui.show(frame);
      if (frame.type === "history") replaying = frame.count;
      else if (frame.type === "msg" && frame.replay) replaying--;
      if ((frame.type === "history" || frame.type === "msg") && replaying === 0) {
        if (frame.type === "msg" && frame.replay) this.#ui.endOfHistory();
        if (frame.type === "history" || frame.replay) this.#outbox.resume();
      }
    }
    clearTimeout(this.#quitTimer);
    link.close();
    this.#link = undefined;
    if (link.silentFor !== undefined) {
      reason = `the server has not answered for ${Math.round(link.silentFor / 1000)} s`;
    }
    if (this.#leaving !== undefined) return { kind: "left", code: this.#leaving };
    return { kind: "lost", reason };
  }

  /** Keeps name, room and last seq up to date. */
  #follow(frame: ServerFrame): void {
    if (frame.type === "event" && frame.event === "rename" && frame.from === this.#name) {
      this.#name = frame.name;
      this.#ui.setPrompt(this.#name, this.#room!);
    } else if (frame.type === "room") {
      this.#room = frame.room;
      this.#seq = frame.seq;
      this.#epoch = frame.epoch;
      this.#ui.setPrompt(this.#name!, this.#room);
    } else if (frame.type === "msg" && frame.room === this.#room) {
      this.#seq = Math.max(this.#seq ?? 0, frame.seq);
    } else if (frame.type === "dm") {
      this.#dmSeen = Math.max(this.#dmSeen ?? 0, frame.id);
    }
  }

  #startInput(): void {
    if (this.#ui instanceof TerminalUi) return this.#readTerminal(this.#ui);
    this.#signals = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    for (const signal of this.#signals) Deno.addSignalListener(signal, this.#onSignal);
    this.#readPipe().catch((error) => {
      this.#ui.say(`chat: cannot read standard input: ${error}`);
      this.leave(ExitCode.internal);
    });
  }

  #readTerminal(ui: TerminalUi): void {
    ui.rl.on("line", (line: string) => {
      ui.eraseEntered();
      const input = parseInput(line);
      const request = requestFrame(input);
      // Messages go through the outbox, which confirms them; the rest is sent as is.
      if (request?.type === "msg") return this.#outbox.add(request.text);
      if (request?.type === "dm") return this.#outbox.add(request.text, request.to);
      // A token typed with /op is given again in the hello after a reconnect.
      if (request?.type === "op") this.#secrets.opToken = request.token;
      if (request !== undefined) return this.#link?.send(request);
      switch (input.kind) {
        case "help":
          return [...COMMAND_HELP, ...OPERATOR_HELP].forEach((help) => ui.say(`* ${help}`));
        case "quit":
          return this.leave(ExitCode.ok);
        case "empty":
          return ui.rl.prompt();
        case "unknown":
          return ui.say(`! unknown command /${input.command}; try /help`);
        case "usage":
          return ui.say(`! ${input.message}`);
      }
    });
    ui.rl.on("SIGINT", () => this.leave(ExitCode.ok));
    ui.rl.on("close", () => this.leave(ExitCode.ok)); // Ctrl-D
    ui.rl.prompt();
  }

  /** Sends each piped line, then leaves once all are confirmed. */
  async #readPipe(): Promise<void> {
    for await (const line of stdinLines()) {
      if (line.trim() !== "") this.#outbox.add(line);
      // Keep only a little of the input in memory when the server is slower.
      if (this.#outbox.pending > 100) await this.#outbox.idle();
    }
    await this.#outbox.idle();
    this.leave(ExitCode.ok);
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

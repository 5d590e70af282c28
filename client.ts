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

import {
  ExitCode,
  Failure,
  formatAddress,
  integerFlag,
  parseAddress,
  parseFlags,
  UsageError,
} from "./common/cli.ts";
import { COMMAND_HELP, OPERATOR_HELP, parseInput, requestFrame } from "./text/commands.ts";
import { PROTOCOL_VERSION, type ServerFrame, type WelcomeFrame } from "./protocol.ts";
import { within } from "./common/timeout.ts";
import { Link } from "./client/link.ts";
import { Outbox } from "./client/outbox.ts";
import { type JoinSecrets, promptHidden, readJoinSecrets } from "./client/secrets.ts";
import { StreamUi, TerminalUi, type Ui } from "./client/ui.ts";
import { Completer, type Known } from "./client/complete.ts";

/** Lines typed closer together than this are one paste. */
const PASTE_GAP_MS = 30;
/** A paste of more lines than this is sent only once confirmed. */
const PASTE_CONFIRM_LINES = 5;
/** The `ref` of requests the client makes for itself, whose answers it does not show. */
const QUIET_REF = -1;
/** The most names kept for Tab completion. */
const MAX_COMPLETED_NAMES = 10_000;
/** Every slash command, for Tab completion. */
const COMMANDS = [...COMMAND_HELP, ...OPERATOR_HELP]
  .map((line) => line.split(/\s+/)[0])
  .filter((word) => /^\/[a-z]+$/.test(word));

/** Options of `chat join`. */
export interface JoinOptions {
  /** The servers to try, in turn, on connecting and on reconnecting. */
  addresses: { hostname: string; port: number }[];
  name?: string;
  room?: string;
  /** Earlier messages to be shown on entering a room. */
  history: number;
  json: boolean;
  /** How long to keep trying to reconnect, in seconds; 0 never tries. */
  retryFor: number;
  /** Silence from the server after which it is pinged (at half) and given up on, in ms. */
  idleTimeoutMs: number;
  /** Send this one message, wait for the server to accept it, and leave. */
  send?: string;
  /** Colours in the terminal: always, never, or when stdout is a terminal and NO_COLOR unset. */
  color: "auto" | "always" | "never";
  /** Ring the terminal bell for a mention or a private message. */
  bell: boolean;
  /** Speak TLS, trusting these PEM certificates besides the system's (`--ca`). */
  tls?: { caFile?: string };
  /** The environment variables holding the password and the operator token. */
  passwordEnv?: string;
  opTokenEnv?: string;
}

const DEFAULT_PORT = 5050;
const QUIT_TIMEOUT_MS = 2000;
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 10_000;

/** `chat join --help`. */
export const JOIN_HELP = `Usage: chat join [HOST[:PORT][,HOST[:PORT]...]] [options]

Joins a chat server (default 127.0.0.1:${DEFAULT_PORT}). In a terminal, type
messages and press Enter; /help lists the commands. With stdin piped, every
line is sent as a message and the client quits once the server has accepted
them all. If the connection drops, the client reconnects by itself and gets
what it missed. Given several addresses, it tries them in turn, on
connecting and on reconnecting.

Options:
  --name NAME          the name to use (default: the server picks guestN)
  --room ROOM          the room to enter (default lobby)
  --history N          earlier messages to show on entering a room (default 50)
  --json               print every event as one JSON object per line
  --retry-for SECS     keep trying to reconnect this long (default 300; 0: never)
  --color WHEN         colours in the terminal: auto (when stdout is a terminal
                       and NO_COLOR is not set; the default), always or never
  --no-bell            no bell for a mention of your name or a private message
  --send TEXT          send this one message, wait until the server accepts it,
                       and leave (with --json, print the accepted message)
  --idle-timeout SECS  ping a server that has been quiet for half this, and
                       reconnect if it stays quiet this long (default 60)
  --tls                connect with TLS, checking the server's certificate
  --ca FILE            trust this PEM certificate too (a lab's own; implies --tls)
  --password-env VAR   the server's password is in this environment variable
                       (in a terminal, chat asks for it when the server wants one)
  --op-token-env VAR   join as an operator with the token in this variable
  -h, --help           show this help

Exit codes: 0 left normally, 2 bad command line, 3 could not connect or the
server is full (or cannot store messages), 4 name refused, 5 protocol error,
6 connection lost (and not regained), name taken over by another client with
the same token, or removed or banned by an operator, 7 password refused,
8 (--send) the server refused the message, 130 interrupted while sending
piped input.`;

/** Reads `chat join` arguments; throws {@linkcode UsageError}. */
export function parseJoinArgs(args: string[]): JoinOptions | "help" {
  const usage = (message: string): never => {
    throw new UsageError(message, "Run 'chat join --help' for the options.");
  };
  const help = "Run 'chat join --help' for the options.";
  const parsed = parseFlags(
    args,
    {
      name: { type: "string" },
      room: { type: "string" },
      history: { type: "string" },
      json: { type: "boolean" },
      "retry-for": { type: "string" },
      send: { type: "string" },
      color: { type: "string" },
      "no-bell": { type: "boolean" },
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
  const addresses = (positionals[0] ?? "127.0.0.1").split(",").map((text) => {
    const address = parseAddress(text.trim(), DEFAULT_PORT);
    if (address === undefined) {
      throw new UsageError(`"${text}" is not HOST or HOST:PORT`, help);
    }
    return address;
  });
  const int = (name: string, value: string | undefined, fallback: number, max: number) =>
    value === undefined ? fallback : integerFlag(name, value, { min: 0, max, help });
  return {
    addresses,
    name: values.name,
    room: values.room?.replace(/^#/, ""),
    history: int("history", values.history, 50, 100_000),
    json: values.json ?? false,
    retryFor: int("retry-for", values["retry-for"], 300, 86_400),
    send: values.send === "" ? usage("--send needs the text of a message") : values.send,
    color: values.color === undefined || ["auto", "always", "never"].includes(values.color)
      ? (values.color ?? "auto") as JoinOptions["color"]
      : usage(`--color must be auto, always or never, not "${values.color}"`),
    bell: !values["no-bell"],
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
  /** Who is in our room, and the rooms we know of, for Tab completion. */
  #present = new Set<string>();
  #knownRooms = new Set<string>();
  /** The id of the last private message seen, to or from us. */
  #dmSeen: number | undefined;
  #link: Link | undefined;
  /** Which of the addresses was reached last: tried first next time. */
  #server = 0;
  /** Set once the user asked to leave, with the exit code to leave with. */
  #leaving: number | undefined;
  #leaveAsked = Promise.withResolvers<void>();
  #quitTimer: ReturnType<typeof setTimeout> | undefined;
  /** Stops the wait that tells a paste from typing. */
  #pasteTimer = () => {};
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
    this.#outbox.onWaiting = (message) =>
      this.#ui.status(`! ${message} (your messages wait, and go as soon as it can take them)`);
  }

  /** Connects, chats, reconnects as needed; resolves to the exit code. */
  async run(): Promise<number> {
    // The first connection's failures are final: the user is there to fix them.
    const welcome = await this.#firstConnect();
    if (this.#options.send !== undefined) return await this.#sendOnce(this.#options.send);
    if (this.#interactive) {
      this.#ui = new TerminalUi({
        color: this.#options.color === "always" ||
          (this.#options.color === "auto" && Deno.stdout.isTerminal() && !Deno.noColor),
        bell: this.#options.bell,
        me: () => this.#name ?? "",
        completer: new Completer(() => this.#known()),
      });
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

  /**
   * `--send`: sends one message (in parts if it is long), waits for the
   * server to accept every part or refuse one, then leaves. Exit code 0, or
   * 8 with the server's reason.
   */
  async #sendOnce(text: string): Promise<number> {
    const link = this.#link!;
    let refusal: string | undefined;
    this.#outbox.onSettled = (frame) => {
      if (frame.type === "error") refusal ??= frame.message;
      else if (this.#options.json) this.#ui.show(frame);
    };
    this.#outbox.add(text);
    const done = this.#outbox.idle();
    for (;;) {
      const next = await Promise.race([link.next(), done.then(() => "done" as const)]);
      if (next === "done" || refusal !== undefined) break;
      if (next === undefined) {
        this.#ui.say(`chat: the connection was lost before the server accepted the message`);
        return ExitCode.disconnected;
      }
      if (next.type === "ping") {
        link.send({ type: "pong", ...(next.data ? { data: next.data } : {}) });
      }
      if (next.type === "history") this.#outbox.resume();
      this.#outbox.receive(next, this.#name!);
    }
    // Said before closing, so that the name is free at once for the next --send.
    link.send({ type: "quit" });
    await link.sent();
    link.close();
    this.#link = undefined;
    if (refusal === undefined) return ExitCode.ok;
    this.#ui.say(`chat: the server refused the message: ${refusal}`);
    return ExitCode.sendRefused;
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
    this.#pasteTimer();
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
        const { hostname, port } = this.#options.addresses[this.#server];
        const where = formatAddress(hostname, port);
        this.#secrets.password = await promptHidden(`Password for ${where}: `);
      }
    }
  }

  /** Opens a connection and says hello; throws a {@linkcode Failure}. */
  async #connect(): Promise<WelcomeFrame> {
    const link = await this.#open();
    let welcome: WelcomeFrame;
    try {
      welcome = await link.hello({
        version: PROTOCOL_VERSION,
        ...(this.#name === undefined ? {} : { name: this.#name }),
        ...(this.#room === undefined ? {} : { room: this.#room }),
        history: this.#options.send === undefined ? this.#options.history : 0,
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
    // Resuming in the same numbering, the seq moves on only as the replay arrives: a link that
    // drops again during the replay asks again for what it has not had.
    const resumed = this.#seq !== undefined && this.#epoch === welcome.epoch &&
      this.#room === welcome.room;
    if (!resumed) this.#seq = welcome.seq;
    this.#room = welcome.room;
    this.#token = welcome.token;
    this.#epoch = welcome.epoch;
    this.#dmSeen ??= 0; // from here on, every private message is ours to see
    this.#outbox.attach(link, welcome);
    link.watch(this.#options.idleTimeoutMs);
    this.#present = new Set(welcome.users);
    this.#knownRooms.add(welcome.room);
    link.send({ type: "rooms", ref: QUIET_REF }); // for Tab completion of room names
    this.#ui.setPrompt(welcome.name, welcome.room);
    return welcome;
  }

  /**
   * Connects to the first of the addresses that answers, starting from the
   * one reached last; throws the failures of all of them.
   */
  async #open(): Promise<Link> {
    const tls = this.#options.tls ? { caCerts: this.#secrets.caCerts } : undefined;
    const { addresses } = this.#options;
    const failures: string[] = [];
    for (let i = 0; i < addresses.length; i++) {
      const at = (this.#server + i) % addresses.length;
      try {
        const link = await Link.open(addresses[at].hostname, addresses[at].port, tls);
        this.#server = at;
        return link;
      } catch (error) {
        // Not there: try the next address. Anything else (a bad certificate) is final.
        const next = error instanceof Failure && error.exitCode === ExitCode.unavailable;
        if (!next || addresses.length === 1) throw error;
        failures.push((error as Failure).message);
      }
    }
    throw new Failure(failures.join("; "), ExitCode.unavailable);
  }

  /** Tries to connect again with backoff; undefined when giving up. */
  async #reconnect(reason: string): Promise<Link | undefined> {
    const until = Date.now() + this.#options.retryFor * 1000;
    for (let attempt = 0; this.#leaving === undefined; attempt++) {
      // Exponential backoff with "equal jitter": half fixed, half random.
      const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
      const delay = Math.round(cap / 2 + Math.random() * cap / 2);
      if (Date.now() + delay > until) return undefined;
      this.#ui.status(
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
      if (frame.type === "rooms") this.#knownRooms = new Set(frame.rooms.map((room) => room.name));
      if ("ref" in frame && frame.ref === QUIET_REF) continue; // asked for by the client itself
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
    if (frame.type === "event") this.#followPresence(frame);
    if (frame.type === "event" && frame.event === "rename" && frame.from === this.#name) {
      this.#name = frame.name;
      this.#ui.setPrompt(this.#name, this.#room!);
    } else if (frame.type === "who" && frame.users.length === frame.online) {
      this.#present = new Set(frame.users);
    } else if (frame.type === "room") {
      this.#present = new Set(frame.users);
      this.#knownRooms.add(frame.room);
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

  /** Who is in the room, for Tab completion. */
  #followPresence(event: Extract<ServerFrame, { type: "event" }>): void {
    if (event.room !== this.#room) return;
    // Bounded whatever a server sends: a room's names beyond this are not offered.
    if (event.event === "join" && this.#present.size < MAX_COMPLETED_NAMES) {
      this.#present.add(event.name);
    } else if (["leave", "kick", "ban"].includes(event.event)) this.#present.delete(event.name);
    else if (event.event === "rename") {
      this.#present.delete(event.from ?? "");
      this.#present.add(event.name);
    }
  }

  /** What Tab completes from: commands, people in the room but us, rooms. */
  #known(): Known {
    const names = [...this.#present].filter((name) => name !== this.#name).sort();
    return { commands: COMMANDS, names, rooms: [...this.#knownRooms].sort() };
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
    // Lines that come within a moment of each other are a paste: a long one is confirmed first.
    let burst: string[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    let confirming: string[] | undefined;
    ui.rl.on("line", (line: string) => {
      ui.eraseEntered(line);
      if (confirming !== undefined) {
        const lines = confirming;
        confirming = undefined;
        if (/^y(es)?$/i.test(line.trim())) return lines.forEach((l) => this.#typed(ui, l));
        return ui.say(`* the ${lines.length} pasted lines were not sent`);
      }
      burst.push(line);
      clearTimeout(timer);
      timer = setTimeout(() => {
        const lines = burst;
        burst = [];
        if (lines.length <= PASTE_CONFIRM_LINES) return lines.forEach((l) => this.#typed(ui, l));
        confirming = lines;
        ui.say(`* send these ${lines.length} pasted lines as ${lines.length} messages? (y/n)`);
      }, PASTE_GAP_MS);
      this.#pasteTimer = () => clearTimeout(timer);
    });
    ui.rl.on("SIGINT", () => this.leave(ExitCode.ok));
    ui.rl.on("close", () => this.leave(ExitCode.ok)); // Ctrl-D
    ui.rl.prompt();
  }

  /** One line typed in the terminal: a message, or a command. */
  #typed(ui: TerminalUi, line: string): void {
    const input = parseInput(line);
    const request = requestFrame(input);
    // Messages go through the outbox, which confirms them; the rest is sent as is.
    if (request?.type === "msg") {
      return this.#outbox.add(request.text, undefined, request.action ?? false);
    }
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

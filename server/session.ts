/**
 * One connection to the server, from accept to close.
 *
 * A session reads with async iteration, frames the bytes with a bounded
 * {@linkcode LineDecoder}, and handles each line as it completes. The first
 * line decides what kind of client this is: a line starting with `{` must be
 * the protocol's `hello`; any other line, or a few hundred milliseconds of
 * silence, makes it a plain-text client (nc, telnet) that gets a banner and
 * a guest name. A hello that comes after that (a slow network) still turns
 * the connection into a protocol one; no line that is a JSON object is ever
 * relayed as text. Outbound bytes go through the session's own bounded
 * {@linkcode OutboundQueue}, which paces replays to the reader.
 *
 * {@linkcode Session.close} is the single way out, whatever the cause (quit,
 * end of stream, reset, slow consumer, shutdown): it runs once, removes the
 * member from the hub with a leave notice, gives queued bytes a bounded time
 * to reach the peer, then closes the socket.
 *
 * @module
 */

import { formatAddress } from "../common/cli.ts";
import { COMMAND_HELP, OPERATOR_HELP, parseInput, requestFrame } from "../text/commands.ts";
import type { Entry, Hub, Member, Room } from "./hub.ts";
import { DEFAULT_ROOM, messageFrame, WELCOME_LIMIT, WHO_LIMIT } from "./hub.ts";
import { OutboundQueue } from "./outbound_queue.ts";
import { type Codec, jsonLines, textLines } from "./codec.ts";
import type { OutboundBudget } from "./outbound_budget.ts";
import {
  type BanFrame,
  type ClientFrame,
  type DirectFrame,
  type ErrorCode,
  type ErrorFrame,
  type HelloFrame,
  type KickFrame,
  type Limits,
  type Line,
  LineDecoder,
  type MotdFrame,
  type MuteFrame,
  nameKey,
  parseClientFrame,
  PROTOCOL_VERSION,
  type ServerFrame,
  type UnbanFrame,
  validateName,
} from "../protocol.ts";
import { count, neutralize } from "../text/render.ts";
import { cleanText } from "../text/names.ts";
import { TokenBucket } from "../common/token_bucket.ts";
import { within } from "../common/timeout.ts";
import type { Gate } from "./auth.ts";
import type { AddressLimits } from "./address_limits.ts";
import { addressKey } from "./address_key.ts";

type ModerationFrame = KickFrame | MuteFrame | BanFrame | UnbanFrame | MotdFrame;

/** How a session ends, besides its reason. */
export interface CloseOptions {
  /** The last frame the peer is sent. */
  notice?: ErrorFrame;
  /** Drop what is queued and not yet written (a slow consumer would not read it). */
  dropQueued?: boolean;
  /** Replaced by the same user's new connection: no notice, private messages kept. */
  takeover?: boolean;
  /** Free the name at once rather than keep it for the token (quit, kick, ban). */
  release?: boolean;
  /** Tell the room it left; default yes, except for a takeover. */
  announce?: boolean;
}

/** What a session needs of its connection: a `Deno.TcpConn`, or TLS over one. */
export interface Connection {
  readonly remoteAddr: Deno.NetAddr;
  read(buffer: Uint8Array): Promise<number | null>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
  /** TLS only: resolves once the handshake is done. */
  handshake?(): Promise<unknown>;
  /** When the peer was last heard from below the frames (a WebSocket's pings), if known. */
  readonly heardAt?: number;
}

/** What every session shares: the hub, the limits and the log. */
export interface SessionContext {
  hub: Hub;
  serverName: string;
  limits: Limits;
  maxQueueBytes: number;
  /** Silence after which a connection counts as a plain-text client. */
  plainTextAfterMs: number;
  /** How long a closing session's queued bytes may take to leave. */
  closeGraceMs: number;
  /** Earlier messages shown on entering a room unless the hello says otherwise. */
  defaultHistory: number;
  /** Time to finish the hello (or a plain-text client's first line). */
  handshakeTimeoutMs: number;
  /** Silence after which a protocol client is pinged (at half) and then closed. */
  idleTimeoutMs: number;
  /** How long a dropped protocol client's name is kept for its token. */
  nameGraceMs: number;
  /** How long a client may take nothing of what it is owed before it is cut off. */
  stallTimeoutMs: number;
  /** A clock the server updates about once a second, cheap to read per chunk. */
  clock: { now: number };
  /** Checks passwords and operator tokens. */
  gate: Gate;
  /** Limits that follow the peer's address. */
  addressLimits: AddressLimits;
  /** The bytes queued for every peer together: past it, sessions stop reading. */
  budget: OutboundBudget;
  /** Told once a session has ended: closed, and no longer reading. */
  ended: (session: Session) => void;
  log: (line: string) => void;
}

// A waiting read holds its buffer, so idle connections get a small one; it
// grows while reads fill it (a busy sender) and shrinks back when they don't.
const MIN_READ_BYTES = 512;
const MAX_READ_BYTES = 16 * 1024; // what one read can make others queue at once
const MAX_TOPIC_LENGTH = 200;
const textDecoder = new TextDecoder(); // lenient: plain clients may send anything
const textEncoder = new TextEncoder();

type Mode = "undecided" | "protocol" | "plain";

/** A connected client, joined or not. */
export class Session implements Member {
  name = "";
  codec: Codec = jsonLines;
  directs: Member["directs"];
  op = false;
  room: Room | undefined;
  /** Proves, in a later hello, that a new connection is this same user. */
  readonly token = crypto.randomUUID();
  /** The peer's address as per-address limits and bans count it (see `addressKey`). */
  readonly address: string;
  /** A plain-text client still to type the server's password. */
  #awaitingPassword = false;
  readonly #conn: Connection;
  readonly #ctx: SessionContext;
  readonly #queue: OutboundQueue;
  readonly #decoder: LineDecoder;
  // Rate limits are made at first use (a bucket starts full) and forgotten once full again:
  // an idle connection holds none.
  /** Messages. */
  #bucket: TokenBucket | undefined;
  /** Bytes of messages, by the length of their lines. */
  #byteBucket: TokenBucket | undefined;
  /** Renames, room changes and topics. */
  #actions: TokenBucket | undefined;
  /** Rooms this client creates. */
  #roomCreations: TokenBucket | undefined;
  /** The length in bytes of the line being handled. */
  #lineBytes = 0;
  /** The room whose earlier messages are still being sent, if any. */
  #replaying: string | undefined;
  #mode: Mode = "undecided";
  #plainTimer: ReturnType<typeof setTimeout> | undefined;
  #joined = false;
  #history: number;
  #closing: Promise<void> | undefined;
  readonly #connectedAt: number;
  /** When something last came from the peer, on the server's coarse clock. */
  #heardAt: number;
  #pinged = false;
  /** An asynchronous step under way that the next line must wait for. */
  #step: Promise<void> | undefined;

  /**
   * `plainText: false` for a transport that only speaks the protocol (a
   * WebSocket): its first line must be the hello, however long it takes.
   */
  constructor(conn: Connection, ctx: SessionContext, { plainText = true } = {}) {
    this.#conn = conn;
    this.#ctx = ctx;
    if (!plainText) this.#mode = "protocol";
    this.address = addressKey(conn.remoteAddr.hostname);
    this.#queue = new OutboundQueue(conn, {
      limit: ctx.maxQueueBytes,
      onError: () => this.close("connection lost"),
      clock: ctx.clock,
      budget: ctx.budget,
    });
    this.#decoder = new LineDecoder({ maxLineBytes: ctx.limits.maxFrameBytes });
    this.#history = ctx.defaultHistory;
    this.#connectedAt = this.#heardAt = ctx.clock.now;
  }

  /**
   * Called every second or so by the server: closes a connection that has
   * not finished its hello in time, and pings a protocol client that has
   * gone quiet, closing it when even that goes unanswered. Plain-text
   * clients cannot answer pings; a dead one is found when a write fails.
   */
  checkLiveness(now: number): void {
    if (this.closed) return;
    this.#forgetFullBuckets(now);
    const { handshakeTimeoutMs, idleTimeoutMs, stallTimeoutMs } = this.#ctx;
    if (this.#queue.stalledFor(now) >= stallTimeoutMs) {
      // Not reading at all, however little it is owed: its queue must not pin memory for good.
      this.close("slow_consumer", {
        notice: slowConsumer(this.#ctx.maxQueueBytes),
        dropQueued: true,
      });
      return;
    }
    if (!this.#joined) {
      // A person typing a password into nc is given longer than a program.
      const limit = this.#awaitingPassword ? PASSWORD_TIMEOUT_MS : handshakeTimeoutMs;
      if (now - this.#connectedAt < limit) return;
      this.#error("timeout", `no hello within ${limit / 1000} s of connecting`);
      this.close("protocol error: no hello in time");
      return;
    }
    if (this.#mode === "plain") return; // a person in nc cannot answer pings
    const silent = now - Math.max(this.#heardAt, this.#conn.heardAt ?? 0);
    if (silent >= idleTimeoutMs) {
      this.#error("timeout", `nothing heard from you for ${Math.round(silent / 1000)} s`);
      this.close("timed out");
    } else if (silent >= idleTimeoutMs / 2 && !this.#pinged) {
      this.#pinged = true;
      this.#send({ type: "ping", data: "idle" });
    }
  }

  #forgetFullBuckets(now: number): void {
    if (this.#bucket?.full(now)) this.#bucket = undefined;
    if (this.#byteBucket?.full(now)) this.#byteBucket = undefined;
    if (this.#actions?.full(now)) this.#actions = undefined;
    if (this.#roomCreations?.full(now)) this.#roomCreations = undefined;
  }

  /** What a peer that has taken nothing for `ms` counts for in the budget; 0 for one reading. */
  stalledBytes(now: number, ms: number): number {
    return this.#queue.stalledFor(now) >= ms ? this.#queue.counted : 0;
  }

  /** The peer's address and port, for the log; made when asked, not kept by every connection. */
  get remote(): string {
    return formatAddress(this.#conn.remoteAddr.hostname, this.#conn.remoteAddr.port);
  }

  /** Whether {@linkcode Session.close} has begun. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Reads and handles the connection until it ends, closes it, then tells
   * the context it `ended`.
   */
  run(): void {
    const conn = this.#conn;
    if (!conn.handshake) return void this.#read();
    // TLS: the wait for a first line starts once the handshake is done.
    conn.handshake().then(
      () => this.#read(),
      (error) =>
        this.close(`TLS handshake failed: ${describe(error)}`).then(() => this.#ctx.ended(this)),
    );
  }

  /**
   * Reads until the connection ends, then closes. Kept small on purpose:
   * every idle connection waits in here, holding its frame.
   */
  async #read(): Promise<void> {
    if (this.#mode === "undecided") this.#armPlainTimer();
    let reason = "connection closed";
    let buffer: Uint8Array = new Uint8Array(MIN_READ_BYTES);
    try {
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        const waiting = this.#consume(buffer.subarray(0, n));
        if (waiting) await waiting;
        if (this.closed) return;
        buffer = nextReadBuffer(buffer, n); // once the lines, views into it, are handled
      }
    } catch (error) {
      if (!this.closed) reason = `connection lost: ${describe(error)}`;
    } finally {
      clearTimeout(this.#plainTimer);
      await this.close(reason);
      this.#ctx.ended(this);
    }
  }

  #armPlainTimer(): void {
    this.#plainTimer = setTimeout(() => {
      this.#plainTimer = undefined; // an idle connection should not keep a spent timer
      // Only silence makes a plain-text client: a started line is waited for (up to the
      // handshake timeout), so that a slow hello is not taken for text.
      const silent = this.#decoder.pendingBytes === 0;
      if (this.#mode === "undecided" && !this.closed && silent) this.#startPlain();
    }, this.#ctx.plainTextAfterMs);
  }

  /**
   * Handles what a read brought, line by line. A promise when it must wait
   * before going on (a step under way, readers behind, a slow database):
   * the next read waits for it too, so TCP slows the sender.
   */
  #consume(chunk: Uint8Array): Promise<void> | undefined {
    this.#heardAt = this.#ctx.clock.now;
    this.#pinged = false;
    return this.#handleFrom(this.#decoder.push(chunk), 0);
  }

  #handleFrom(lines: Line[], from: number): Promise<void> | undefined {
    for (let i = from; i < lines.length; i++) {
      if (this.#step) return this.#step.then(() => this.#handleFrom(lines, i));
      if (this.closed) return undefined;
      this.#handleLine(lines[i]);
      if (this.closed) return undefined;
      // More is waiting for the readers than they take: stop here, mid-chunk if need be,
      // so that TCP slows this sender down rather than every reader's queue filling.
      if (this.#ctx.budget.behind(this.#queue.counted)) {
        return this.#relief().then(() => this.#handleFrom(lines, i + 1));
      }
    }
    return this.#ctx.hub.backpressure;
  }

  /** Waits until the readers have caught up with most of what is queued for them. */
  async #relief(): Promise<void> {
    const budget = this.#ctx.budget;
    do await budget.relief(); while (budget.behind(this.#queue.counted, true));
    this.#heardAt = this.#ctx.clock.now; // what it sent meanwhile was ours to leave unread
  }

  /** Queues bytes for the peer; false when its queue is full. */
  deliver(bytes: Uint8Array): boolean {
    return this.#queue.push(bytes);
  }

  /**
   * Ends the session once: `reason` goes to the log and to the room's leave
   * notice (none when `silent`); `notice`, if given, is the last thing the
   * peer is sent, after what is queued unless `dropQueued`.
   */
  close(reason: string, options: CloseOptions = {}): Promise<void> {
    this.#closing ??= this.#close(reason, options);
    return this.#closing;
  }

  async #close(
    reason: string,
    { notice, dropQueued = false, takeover = false, release = false, announce = !takeover }:
      CloseOptions,
  ): Promise<void> {
    if (this.#joined) {
      // A protocol client that dropped keeps its name for a while, for its token.
      const holds = this.#mode === "protocol" && !takeover && !release;
      const hold = holds ? { token: this.token, ms: this.#ctx.nameGraceMs } : undefined;
      this.#ctx.hub.leave(this, reason, { announce, keepDirects: takeover, hold });
    }
    this.#ctx.log(
      `disconnect ${this.remote}${this.#joined ? ` ${this.name}` : ""}: ${reason}`,
    );
    if (notice) this.#queue.pushLast(this.codec.encode(notice), { dropQueued });
    await within(this.#queue.drained(), this.#ctx.closeGraceMs);
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer's reset.
    }
  }

  #send(frame: ServerFrame): void {
    if (!this.#queue.push(this.codec.encode(frame))) {
      this.close("slow_consumer", {
        notice: slowConsumer(this.#ctx.maxQueueBytes),
        dropQueued: true,
      });
    }
  }

  /** Sends an error; `ref` is the refused frame's, echoed so the client can match it. */
  #error(code: ErrorCode, message: string, ref?: number, extra: Partial<ErrorFrame> = {}): void {
    this.#send({ type: "error", code, message, ...(ref === undefined ? {} : { ref }), ...extra });
  }

  #handleLine(line: Line): void {
    this.#lineBytes = line instanceof Uint8Array ? line.length : 0;
    if (this.#mode === "undecided" && line instanceof Uint8Array && startsWithBom(line)) {
      line = line.subarray(3); // an editor's or a Windows tool's byte-order mark
    }
    if (this.#mode === "undecided" && line instanceof Uint8Array && isHttpRequest(line)) {
      // A browser sent here, maybe by another site's page (a "no-cors" POST): never a
      // chat client, and never a guess at the password.
      this.deliver(textEncoder.encode(HTTP_REFUSAL));
      this.close("an HTTP request on the chat port");
      return;
    }
    if (this.#mode === "undecided") {
      clearTimeout(this.#plainTimer);
      this.#plainTimer = undefined;
      this.#mode = line instanceof Uint8Array && line[0] === 0x7b /* { */ ? "protocol" : "plain";
      if (this.#mode === "plain") this.#startPlain();
    }
    if (this.#mode === "plain") {
      if (this.#step === undefined) return this.#handlePlainLine(line);
      // The guest's name is being claimed through the shared store: this line comes after.
      const kept = line instanceof Uint8Array ? line.slice() : line;
      return this.#wait(this.#step.then(() => {
        if (!this.closed) this.#handlePlainLine(kept);
      }));
    }
    const frame = line instanceof Uint8Array ? parseClientFrame(line) : line;
    if (frame.type === "frame_error") {
      this.#error(frame.code, frame.message, frame.ref);
      if (!this.#joined) this.close(`protocol error: ${frame.message}`);
      return;
    }
    if (!this.#joined) return this.#hello(frame);
    this.#handleFrame(frame);
  }

  /**
   * A line from a plain-text client. A line that is a JSON object is never
   * relayed: a hello that came after the plain-text wait (a slow network)
   * turns this into a protocol session, anything else is refused.
   */
  #handlePlainLine(line: Line): void {
    if (!(line instanceof Uint8Array)) {
      return this.#error(
        line.code,
        `line too long (the limit is ${this.#ctx.limits.maxFrameBytes} bytes); not sent`,
      );
    }
    if (line[0] === 0x7b /* { */) {
      const frame = parseClientFrame(line);
      if (frame.type === "hello") return this.#lateHello(frame);
      if (this.#awaitingPassword) return this.#plainPassword(textDecoder.decode(line));
      if (frame.type !== "frame_error" || !/JSON|UTF-8/.test(frame.message)) {
        return this.#error(
          "bad_frame",
          "that line looks like a protocol frame, so it was not sent (a protocol client must " +
            "open with its hello); to send it as text, start the line with a space",
        );
      }
    }
    if (this.#awaitingPassword) return this.#plainPassword(textDecoder.decode(line));
    this.#handleText(textDecoder.decode(line));
  }

  /** A protocol client whose hello came after it was taken for a plain-text one. */
  #lateHello(frame: HelloFrame): void {
    this.#awaitingPassword = false;
    this.#ctx.hub.leave(this, "switched to the chat protocol");
    this.#joined = false;
    this.#mode = "protocol";
    this.codec = jsonLines;
    this.#history = this.#ctx.defaultHistory;
    this.#ctx.log(`late hello from ${this.remote}: now a protocol client`);
    this.#hello(frame);
  }

  #hello(frame: ClientFrame): void {
    if (frame.type !== "hello") {
      this.#error("not_joined", "the first frame must be a hello");
      this.close("protocol error: no hello");
      return;
    }
    if (frame.version !== PROTOCOL_VERSION) {
      this.#error(
        "bad_version",
        `this server speaks protocol version ${PROTOCOL_VERSION}, the client ${frame.version}; ` +
          "use a chat client of the same release",
      );
      this.close(`protocol error: version ${frame.version}`);
      return;
    }
    const verdict = this.#ctx.gate.checkPassword(this.address, frame.password, performance.now());
    if (!verdict.ok) {
      this.#error("auth_failed", verdict.reason, undefined, { retryMs: verdict.retryMs });
      this.close("password refused");
      return;
    }
    const roomName = this.#checkRoom(frame.room ?? DEFAULT_ROOM);
    if (roomName === undefined || !this.#mayCreateRoom(roomName)) {
      this.close("room refused");
      return;
    }
    let name: string;
    if (frame.name !== undefined) {
      const checked = validateName(frame.name, this.#ctx.limits.maxNameLength);
      if (!checked.ok) {
        this.#error("bad_name", `cannot use that name: ${checked.reason}`);
        this.close("name refused");
        return;
      }
      name = checked.name;
    } else {
      name = this.#ctx.hub.guestName();
    }
    if (frame.op !== undefined) this.#becomeOperator(frame.op);
    // An operator is never locked out, even sharing an address with someone banned.
    if (!this.op && this.#refusedByBan(name)) return;
    // A client back after a drop takes its name over from its stale connection.
    const holder = this.#ctx.hub.holder(name) as Session | undefined;
    const resumed = holder !== undefined && frame.token !== undefined &&
      holder.token === frame.token;
    if (resumed) {
      holder.close("replaced by a new connection", { takeover: true, notice: replaced() });
    }
    const claimed = this.#claim(name, frame.token);
    const ready = this.#ctx.hub.prepare(roomName); // with --redis, a room this node let go of
    if (claimed instanceof Promise || ready) {
      this.#wait(
        Promise.all([claimed, ready]).then(([ok]) =>
          this.#welcome(frame, name, roomName, resumed, ok)
        ),
      );
    } else {
      this.#welcome(frame, name, roomName, resumed, claimed);
    }
  }

  /**
   * Claims a name: at once on one server, through the shared store with
   * `--redis` (then `unreachable` when it cannot be asked).
   */
  #claim(name: string, token?: string): boolean | Promise<boolean | "resumed" | "unreachable"> {
    const hub = this.#ctx.hub;
    if (!hub.shared) return hub.claim(this, name, token);
    return hub.claimShared(this, name, token, this.token).catch(() => "unreachable" as const);
  }

  /** A step that later lines wait for (a name claimed on every node). */
  #wait(step: Promise<void>): void {
    const waiting: Promise<void> = step.finally(() => {
      if (this.#step === waiting) this.#step = undefined;
    });
    this.#step = waiting;
  }

  /** The rest of the hello, once the name is claimed (or not). */
  #welcome(
    frame: HelloFrame,
    name: string,
    roomName: string,
    resumed: boolean,
    claimed: boolean | "resumed" | "unreachable",
  ): void {
    if (this.closed) return;
    if (claimed === "unreachable") {
      this.#error("storage_failed", STORE_UNREACHABLE);
      this.close("shared store unreachable");
      return;
    }
    if (!claimed) {
      this.#error("name_taken", this.#takenMessage(name) + "; choose another with --name");
      this.close("name taken");
      return;
    }
    this.#joined = true;
    if (frame.history !== undefined) this.#history = Math.max(0, frame.history);
    const back = resumed || claimed === "resumed";
    this.#ctx.log(`connect ${this.remote} ${this.name}${back ? " (resumed)" : ""}`);
    const entry = this.#ctx.hub.enter(this, roomName, {
      history: this.#history,
      since: frame.since,
      epoch: frame.epoch,
    });
    if (entry === undefined) {
      this.#error("too_many_rooms", "there are too many rooms already; join an existing one");
      this.close("room refused");
      return;
    }
    this.#send({
      type: "welcome",
      version: PROTOCOL_VERSION,
      name: this.name,
      server: this.#ctx.serverName,
      limits: this.#ctx.limits,
      ...this.#roomState(entry.room),
      ops: this.#ctx.hub.opsIn(entry.room),
      ...(this.op ? { op: true } : {}),
      ...(this.#ctx.hub.moderation.motd ? { motd: this.#ctx.hub.moderation.motd } : {}),
      token: this.token,
    });
    if (resumed && frame.dmSince !== undefined) {
      this.#replayDirects(this.#ctx.hub.directsAfter(this, frame.dmSince));
    } else if (claimed === "resumed" && frame.dmSince !== undefined) {
      // Back from another node: what was sent to the name meanwhile is in the shared store.
      this.directs = {};
      const replay = this.#ctx.hub.sharedDirectsAfter(this, frame.dmSince);
      this.#wait(replay.then((frames) => this.#replayDirects(frames)));
    }
    this.#sendHistory(entry);
    if (resumed) return;
    // Back on this node from one that died: the others learn where it is, without a notice.
    this.#ctx.hub.announceJoin(this, { quietly: claimed === "resumed" });
  }

  /** What a welcome and a `room` frame say of the room entered. */
  #roomState(room: Room) {
    return {
      room: room.name,
      topic: room.topic,
      seq: room.relayedSeq,
      epoch: room.epoch,
      users: this.#ctx.hub.names(room, WELCOME_LIMIT),
      online: room.online,
    };
  }

  /** Private messages the old connection may not have passed on, marked as replayed. */
  #replayDirects(frames: DirectFrame[]): void {
    if (this.closed) return;
    for (const frame of frames) this.#send({ ...frame, replay: true });
  }

  /** Why a name cannot be had: someone has it, or it waits for a dropped connection. */
  #takenMessage(name: string): string {
    const holder = this.#ctx.hub.holder(name);
    const held = this.#ctx.hub.heldFor(name);
    if (holder === undefined && held > 0) {
      return `the name "${name}" is kept ${Math.ceil(held / 1000)} s more for the one whose ` +
        "connection just dropped, so that they can come back";
    }
    const plainlySame = (a: string) => a.normalize("NFKC").toLowerCase();
    if (holder !== undefined && holder !== this && plainlySame(holder.name) !== plainlySame(name)) {
      return `the name "${name}" looks too much like "${holder.name}", who is online`;
    }
    return `the name "${name}" is taken`;
  }

  /** Validates a room name; sends the error and returns undefined if it is bad. */
  #checkRoom(wanted: string, ref?: number): string | undefined {
    const checked = validateName(wanted, this.#ctx.limits.maxNameLength);
    if (checked.ok) return checked.name;
    this.#error("bad_room", `cannot use that room name: ${checked.reason}`, ref);
    return undefined;
  }

  /**
   * Replays earlier messages after a `history` frame (always sent to
   * protocol clients), paced to the reader: a replay of any size arrives
   * whole, and what happens meanwhile follows it.
   */
  #sendHistory(entry: Entry): void {
    const text = this.#mode === "plain";
    if (text && entry.replay.length === 0 && entry.gone === 0) return;
    const { room, replay } = entry;
    this.#send({
      type: "history",
      room: room.name,
      epoch: room.epoch,
      count: replay.length,
      gone: entry.gone,
      ...(entry.restarted ? { restarted: true } : {}),
    });
    if (replay.length === 0) {
      if (text) this.deliver(textEncoder.encode("* (end of earlier messages)\r\n"));
      return;
    }
    // Read from the room's history as the peer reads, by seq: the replay holds no messages of
    // its own, so a reader that never reads pins nothing the history has let go of. Encoded
    // as this session is now: a late hello must not turn a text replay into frames.
    const codec = this.codec;
    const history = room.history;
    let next = replay[0].seq;
    const last = replay[replay.length - 1].seq;
    this.#replaying = room.name;
    this.#queue.pushPaced(() => {
      if (next > last) {
        this.#replaying = undefined;
        return undefined;
      }
      const message = history.at(next++);
      if (next > last) this.#replaying = undefined;
      if (message) return codec.encode(messageFrame(message, true));
      // So far behind that the room no longer keeps what it is owed: a slow consumer.
      this.#replaying = undefined;
      queueMicrotask(() =>
        this.close("slow_consumer", {
          notice: slowConsumer(this.#ctx.maxQueueBytes),
          dropQueued: true,
        })
      );
      return undefined;
    });
    if (text) this.deliver(textEncoder.encode("* (end of earlier messages)\r\n"));
  }

  #join(wanted: string, ref?: number): void {
    if (this.#replaying !== undefined) {
      // One replay at a time: a client hopping rooms without reading cannot pile them up.
      return this.#error(
        "rate_limited",
        `still sending you the earlier messages of ${this.#replaying}; read them first`,
        ref,
        { retryMs: 1000 },
      );
    }
    if (!this.#actionAllowed("room changes, renames and topics", ref)) return;
    const roomName = this.#checkRoom(wanted, ref);
    if (roomName === undefined || !this.#mayCreateRoom(roomName, ref)) return;
    const ready = this.#ctx.hub.prepare(roomName);
    if (ready) this.#wait(ready.then(() => this.#enter(roomName, ref)));
    else this.#enter(roomName, ref);
  }

  /** Moves into a room that this node holds. */
  #enter(roomName: string, ref?: number): void {
    if (this.closed || !this.#joined) return;
    const entry = this.#ctx.hub.enter(this, roomName, { history: this.#history });
    if (entry === undefined) {
      return this.#error(
        "too_many_rooms",
        "there are too many rooms already; join an existing one",
        ref,
      );
    }
    // What is still owed from the room left must not hold that room's slabs (see frame_arena.ts).
    this.#queue.unpin();
    this.#send({ type: "room", ...this.#roomState(entry.room) });
    this.#sendHistory(entry);
    this.#ctx.hub.announceJoin(this);
  }

  #topic(text: string, ref?: number, roomName?: string): void {
    if (!this.#actionAllowed("room changes, renames and topics", ref)) return;
    const topic = cleanText(text).trim();
    if ([...topic].length > MAX_TOPIC_LENGTH) {
      return this.#error("bad_frame", `a topic is at most ${MAX_TOPIC_LENGTH} characters`, ref);
    }
    let room = this.room;
    if (roomName !== undefined && nameKey(roomName) !== nameKey(room?.name ?? "")) {
      if (!this.op) {
        return this.#error("not_operator", "only operators set the topic of another room", ref);
      }
      room = this.#ctx.hub.room(roomName);
      if (!room) return this.#error("bad_room", `there is no room called "${roomName}"`, ref);
    }
    this.#ctx.hub.setTopic(this, topic, room);
    // The operator is not in that room: show it the result.
    if (room !== this.room) this.#send({ type: "rooms", rooms: this.#ctx.hub.rooms() });
  }

  #direct(to: string, text: string, ref?: number): void {
    text = cleanText(text);
    if (!this.#allowed(text, ref)) return;
    if (!this.#ctx.hub.direct(this, to, text, ref)) {
      this.#error("no_such_user", `nobody called "${to}" is online`, ref);
    }
  }

  #handleFrame(frame: ClientFrame): void {
    switch (frame.type) {
      case "msg":
        return this.#say(frame.text, frame.ref, frame.action);
      case "dm":
        return this.#direct(frame.to, frame.text, frame.ref);
      case "join":
        return this.#join(frame.room, frame.ref);
      case "rooms":
        return this.#send({
          type: "rooms",
          rooms: this.#ctx.hub.rooms(),
          ...(frame.ref === undefined ? {} : { ref: frame.ref }),
        });
      case "topic":
        return this.#topic(frame.text, frame.ref, frame.room);
      case "op":
        if (!this.#actionAllowed("room changes, renames and topics", frame.ref)) return;
        return this.#becomeOperator(frame.token, frame.ref);
      case "kick":
      case "mute":
      case "ban":
      case "unban":
      case "motd":
        return this.#moderate(frame);
      case "nick":
        return this.#rename(frame.name, frame.ref);
      case "who":
        return this.#who(frame.ref);
      case "ping":
        return this.#send({
          type: "pong",
          ...(frame.data === undefined ? {} : { data: frame.data }),
        });
      case "pong":
        return;
      case "quit":
        this.close("quit", { release: true });
        return;
      case "hello":
        return this.#error("already_joined", "already joined; hello comes once");
    }
  }

  #say(text: string, ref?: number, action?: boolean): void {
    text = cleanText(text);
    if (!this.#allowed(text, ref)) return;
    const result = this.#ctx.hub.say(this, text, ref, action);
    if (result === "busy") {
      this.#error(
        "storage_failed",
        "the server's database is not keeping up, so your message was not sent; try again",
        ref,
      );
    } else if (result === "closed") {
      this.#error("server_shutdown", "the server is shutting down; your message was not sent", ref);
    }
  }

  /** Checks a message is not empty, its sender not muted, and within the rate; says why not. */
  #allowed(text: string, ref?: number): boolean {
    if (text.trim() === "") {
      this.#error("bad_frame", "a message cannot be empty", ref);
      return false;
    }
    const moderation = this.#ctx.hub.moderation;
    const mutedMs = moderation.anyMuted
      ? moderation.mutedFor(nameKey(this.name), this.address, Date.now())
      : 0;
    if (mutedMs > 0) {
      this.#error(
        "muted",
        `an operator muted you; you can write again in ${
          count(Math.ceil(mutedMs / 60_000), "minute")
        }`,
        ref,
        { retryMs: mutedMs },
      );
      return false;
    }
    const now = performance.now();
    const limits = this.#ctx.limits;
    const waitMs = (this.#bucket ??= new TokenBucket({ ...limits, slack: rateSlack(limits.rate) }))
      .take(now);
    if (waitMs > 0) {
      this.#error(
        "rate_limited",
        `slow down: at most ${
          count(this.#ctx.limits.rate, "message")
        } a second; not sent, try again in ${waitMs} ms`,
        ref,
        { retryMs: waitMs },
      );
      return false;
    }
    const rateBytes = limits.rateBytes;
    if (rateBytes !== undefined) {
      this.#byteBucket ??= new TokenBucket({
        rate: rateBytes,
        burst: 4 * limits.maxFrameBytes,
        slack: rateBytes / 4,
      });
    }
    const bytesWaitMs = (this.#byteBucket?.take(now, this.#lineBytes) ?? 0) ||
      this.#ctx.addressLimits.messageBytes(this.address, now, this.#lineBytes);
    if (bytesWaitMs > 0) {
      this.#error(
        "rate_limited",
        `slow down: at most ${this.#ctx.limits.rateBytes} bytes of messages a second; ` +
          `not sent, try again in ${bytesWaitMs} ms`,
        ref,
        { retryMs: bytesWaitMs },
      );
      return false;
    }
    return true;
  }

  /** Checks a rename, room change or topic is within this client's pace; says why not. */
  #actionAllowed(what: string, ref?: number): boolean {
    const waitMs = (this.#actions ??= new TokenBucket(ACTION_LIMIT)).take(performance.now());
    if (waitMs === 0) return true;
    this.#error(
      "rate_limited",
      `slow down: at most ${ACTION_LIMIT.burst} ${what} at once, then one a second; ` +
        `try again in ${waitMs} ms`,
      ref,
      { retryMs: waitMs },
    );
    return false;
  }

  /**
   * Checks this client, and its address, may create a room now, unless the
   * room exists; says why not.
   */
  #mayCreateRoom(roomName: string, ref?: number): boolean {
    if (this.#ctx.hub.hasRoom(roomName)) return true;
    const now = performance.now();
    // The address's allowance is spent only on rooms this client may make.
    const waitMs = (this.#roomCreations ??= new TokenBucket(ROOM_CREATION_LIMIT)).take(now) ||
      this.#ctx.addressLimits.createRoom(this.address, now);
    if (waitMs === 0) return true;
    this.#error(
      "rate_limited",
      `you are creating rooms too fast; join an existing one (/rooms lists them) or try again ` +
        `in ${Math.ceil(waitMs / 1000)} s`,
      ref,
      { retryMs: waitMs },
    );
    return false;
  }

  #rename(wanted: string, ref?: number): void {
    if (!this.#actionAllowed("room changes, renames and topics", ref)) return;
    const checked = validateName(wanted, this.#ctx.limits.maxNameLength);
    if (!checked.ok) return this.#error("bad_name", `cannot use that name: ${checked.reason}`, ref);
    const hub = this.#ctx.hub;
    if (!hub.shared) {
      if (!hub.rename(this, checked.name)) {
        this.#error("name_taken", this.#takenMessage(checked.name), ref);
      }
      return;
    }
    this.#wait(
      hub.renameShared(this, checked.name, this.token).then(
        (ok) => {
          if (!ok) this.#error("name_taken", this.#takenMessage(checked.name), ref);
        },
        () => this.#error("storage_failed", STORE_UNREACHABLE, ref),
      ),
    );
  }

  #who(ref?: number): void {
    const room = this.room;
    if (!room) return; // not in a room yet: nothing to list
    this.#send({
      type: "who",
      room: room.name,
      users: this.#ctx.hub.names(room, WHO_LIMIT),
      ops: this.#ctx.hub.opsIn(room),
      online: room.online,
      ...(ref === undefined ? {} : { ref }),
    });
  }

  /** Sends `banned` and closes if a ban keeps out this name or address. */
  #refusedByBan(name: string): boolean {
    const ban = this.#ctx.hub.moderation.bannedFor(nameKey(name), this.address, Date.now());
    if (ban === undefined) return false;
    const left = ban.until === undefined ? undefined : ban.until - Date.now();
    this.#error(
      "banned",
      `you are banned from this server ${
        left === undefined
          ? "until an operator lifts it"
          : `for ${count(Math.ceil(left / 60_000), "more minute")}`
      }${ban.reason ? `: ${ban.reason}` : ""}`,
      undefined,
      left === undefined ? {} : { retryMs: Math.ceil(left) },
    );
    this.close("banned", { release: true });
    return true;
  }

  /** Checks an operator token, with the gate's waits for wrong ones. */
  #becomeOperator(token: string, ref?: number): void {
    const verdict = this.#ctx.gate.checkOperatorToken(this.address, token, performance.now());
    if (!verdict.ok) {
      return this.#error("auth_failed", verdict.reason, ref, { retryMs: verdict.retryMs });
    }
    if (this.#joined) this.#ctx.hub.makeOperator(this);
    else this.op = true; // made known with the welcome
  }

  /** Runs an operator's command; anyone else is told it needs an operator. */
  #moderate(frame: ModerationFrame): void {
    const ref = frame.ref;
    if (!this.op) {
      return this.#error(
        "not_operator",
        `/${frame.type} is for operators; become one with /op TOKEN (the token chat serve printed)`,
        ref,
      );
    }
    const hub = this.#ctx.hub;
    switch (frame.type) {
      case "kick":
        if (!hub.kick(this, frame.name, cleanText(frame.reason ?? "").trim())) {
          this.#error("no_such_user", `nobody called "${frame.name}" is online`, ref);
        }
        return;
      case "mute":
        return hub.mute(this, frame.name, Math.max(1, frame.minutes ?? DEFAULT_MUTE_MINUTES));
      case "ban":
        return hub.ban(
          this,
          frame.name,
          frame.minutes === undefined ? undefined : Math.max(1, frame.minutes),
          cleanText(frame.reason ?? "").trim(),
        );
      case "unban": {
        const result = hub.unban(this, frame.name);
        if (result.lifted) return;
        const why = result.coveredBy === undefined
          ? `"${frame.name}" is neither banned nor muted`
          : `"${frame.name}" shares an address with "${result.coveredBy}", who is muted or ` +
            `banned; /unban ${result.coveredBy} lifts it for both`;
        return this.#error("no_such_user", why, ref);
      }
      case "motd": {
        const text = cleanText(frame.text).trim();
        if ([...text].length > MAX_TOPIC_LENGTH) {
          return this.#error(
            "bad_frame",
            `a message of the day is at most ${MAX_TOPIC_LENGTH} characters`,
            ref,
          );
        }
        return hub.setMotd(this, text);
      }
    }
  }

  #startPlain(): void {
    this.#mode = "plain";
    this.codec = textLines;
    if (this.#ctx.gate.passwordRequired) {
      this.#awaitingPassword = true;
      this.deliver(textEncoder.encode(
        `* Welcome to ${this.#ctx.serverName}. This server needs a password: type it and press Enter.\r\n`,
      ));
      return;
    }
    this.#joinPlain();
  }

  /** A plain-text client's password line: in it goes, or out, told why. */
  #plainPassword(line: string): void {
    const verdict = this.#ctx.gate.checkPassword(this.address, line, performance.now());
    if (!verdict.ok) {
      this.#error("auth_failed", verdict.reason);
      this.close("password refused");
      return;
    }
    this.#awaitingPassword = false;
    this.#joinPlain();
  }

  #joinPlain(): void {
    const name = this.#ctx.hub.guestName();
    if (this.#refusedByBan(name)) return;
    const claimed = this.#claim(name);
    if (claimed instanceof Promise) this.#wait(claimed.then((ok) => this.#enterPlain(ok)));
    else this.#enterPlain(claimed);
  }

  #enterPlain(claimed: boolean | "resumed" | "unreachable"): void {
    if (this.closed) return;
    const hub = this.#ctx.hub;
    if (claimed === "unreachable") {
      this.deliver(
        textLines.encode({ type: "error", code: "storage_failed", message: STORE_UNREACHABLE }),
      );
      this.close("shared store unreachable");
      return;
    }
    const entry = claimed ? hub.enter(this, DEFAULT_ROOM, { history: this.#history }) : undefined;
    if (entry === undefined) {
      this.close(claimed ? "server closing" : "guest name taken");
      return;
    }
    this.#joined = true;
    this.#ctx.log(`connect ${this.remote} ${this.name} (plain text)`);
    const banner =
      `* Welcome to ${this.#ctx.serverName}. You are ${this.name}, in ${entry.room.name} ` +
      `(${entry.room.online} here). Commands: /help, /nick NAME, /join ROOM, /msg NAME TEXT, /quit.` +
      (hub.moderation.motd ? `\r\n* Message of the day: ${neutralize(hub.moderation.motd)}` : "");
    this.deliver(textEncoder.encode(banner + "\r\n"));
    this.#sendHistory(entry);
    hub.announceJoin(this);
  }

  #handleText(line: string): void {
    const input = parseInput(line);
    const request = requestFrame(input);
    if (request !== undefined) return this.#handleFrame(request);
    switch (input.kind) {
      case "quit":
        this.close("quit", { release: true });
        return;
      case "help":
        this.deliver(
          textEncoder.encode(
            [...COMMAND_HELP, ...OPERATOR_HELP].map((l) => `* ${l}\r\n`).join(""),
          ),
        );
        return;
      case "empty":
        return;
      case "unknown":
        return this.#error("bad_frame", `unknown command /${input.command}; try /help`);
      case "usage":
        return this.#error("bad_frame", input.message);
    }
  }
}

/**
 * Rate-limit tokens allowed beyond the burst: a quarter of a second's worth,
 * so that a client keeping to the announced rate is never refused because
 * the network delayed some of its messages and delivered them together.
 */
export function rateSlack(rate: number): number {
  return Math.max(2, Math.ceil(rate / 4));
}

/** The error a connection gets when a new one with its token takes its name over. */
export function replaced(): ErrorFrame {
  return {
    type: "error",
    code: "replaced",
    message: "disconnected: a new connection took over your name with your token " +
      "(is chat running twice under this name?)",
  };
}

/** The error a slow consumer is sent before it is cut off. */
export function slowConsumer(limit: number): ErrorFrame {
  return {
    type: "error",
    code: "slow_consumer",
    message: `disconnected: you fell more than ${limit} bytes behind the chat`,
  };
}

/** How long `/mute NAME` lasts without a number of minutes. */
const DEFAULT_MUTE_MINUTES = 10;

/** Renames, room changes and topic changes a client may make at once, then per second. */
const ACTION_LIMIT = { burst: 5, rate: 1 };
/** Rooms a client may create at once, then per second (one per ten seconds). */
const ROOM_CREATION_LIMIT = { burst: 3, rate: 0.1 };

/** What a client is told when `--redis` is given and Redis cannot be reached. */
const STORE_UNREACHABLE = "the server cannot reach its shared store (Redis) just now; try again " +
  "in a few seconds";

/** How long a plain-text client has to type the password. */
const PASSWORD_TIMEOUT_MS = 60_000;

/** What a web browser that reached the chat port is answered. */
const HTTP_REFUSAL = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n" +
  "Connection: close\r\n\r\nThis is a chat server's chat port, not a web page: join with chat " +
  "join, nc or telnet, or open the chat's web page (chat serve --web).\n";

/** Whether a first line is an HTTP request line, such as `POST / HTTP/1.1`. */
function isHttpRequest(line: Uint8Array): boolean {
  const start = String.fromCharCode(...line.subarray(0, 80));
  return /^[A-Z]{3,7} \S+ HTTP\/\d/.test(start);
}

function startsWithBom(line: Uint8Array): boolean {
  return line[0] === 0xef && line[1] === 0xbb && line[2] === 0xbf;
}

/**
 * The buffer for the next read, after one that read `n` bytes: reads start
 * small, since a waiting read holds its buffer, and grow while they fill up.
 */
function nextReadBuffer(buffer: Uint8Array, n: number): Uint8Array {
  if (n === buffer.length && buffer.length < MAX_READ_BYTES) return new Uint8Array(n * 2);
  if (n < buffer.length / 8 && buffer.length > MIN_READ_BYTES) {
    return new Uint8Array(buffer.length / 2);
  }
  return buffer;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The wire format of `chat`, with no I/O in it.
 *
 * Every frame is one UTF-8 JSON object on one line, ended by `\n` (a `\r`
 * before it is accepted). A client opens with a `hello`; the server answers
 * with a `welcome` or an `error`. After that the client sends `msg`, `nick`,
 * `who`, `ping` and `quit`; the server sends `msg`, `event`, `who`, `pong` and
 * `error` frames. PROTOCOL.md is the full reference.
 *
 * Framing ({@linkcode LineDecoder}) is kept apart from parsing
 * ({@linkcode parseClientFrame}, {@linkcode parseServerFrame}) so that both
 * can be tested without sockets, and so that plain-text clients (nc, telnet)
 * share the same bounded framing. Parsing never throws: a bad frame becomes a
 * {@linkcode FrameError} value.
 *
 * @module
 */

/** The protocol version this build speaks; a `hello` must carry it. */
export const PROTOCOL_VERSION = 1;

/** The default largest frame, in bytes, without its line ending. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024;

/** Every error code, in the order PROTOCOL.md lists them. */
export const ERROR_CODES = [
  "auth_failed",
  "bad_frame",
  "frame_too_large",
  "bad_version",
  "not_joined",
  "already_joined",
  "bad_name",
  "name_taken",
  "bad_room",
  "too_many_rooms",
  "no_such_user",
  "rate_limited",
  "storage_failed",
  "slow_consumer",
  "replaced",
  "not_operator",
  "muted",
  "kicked",
  "banned",
  "timeout",
  "too_many_connections",
  "server_full",
  "server_shutdown",
] as const;

/** Machine-readable error codes; the `message` beside them is for people. */
export type ErrorCode = typeof ERROR_CODES[number];

/** Limits the server enforces, announced in its `welcome`. */
export interface Limits {
  /** Largest frame in bytes, without the line ending. */
  maxFrameBytes: number;
  /** Longest name, in characters. */
  maxNameLength: number;
  /** Sustained messages per second a client may send. */
  rate: number;
  /** Messages a client may send at once before `rate` applies. */
  burst: number;
  /** Sustained bytes of messages per second a client may send, after a burst of four frames. */
  rateBytes?: number;
}

// ---------------------------------------------------------------- frames

/** Client → server: the first frame of a session. */
export interface HelloFrame {
  type: "hello";
  version: number;
  /** Wanted name; the server picks one when it is missing. */
  name?: string;
  /** Room to enter; default `lobby`. */
  room?: string;
  /** How many earlier messages to be shown on entering a room; the server's default otherwise. */
  history?: number;
  /** Resuming: the last `seq` seen in `room`; exactly what came after is replayed. */
  since?: number;
  /** Resuming: the room's `epoch` that `since` counts in. */
  epoch?: string;
  /** Resuming: the `token` of the welcome, to take the name back at once. */
  token?: string;
  /** Resuming with `token`: the id of the last private message seen; later ones are replayed. */
  dmSince?: number;
  /** The server's password, if it has one. */
  password?: string;
  /** The operator token, to join as an operator. */
  op?: string;
}
/** Client → server: a chat message; `ref` comes back on the relayed copy. */
export interface SendFrame {
  type: "msg";
  text: string;
  /** An action (`/me waves`), shown as `* ada waves`. */
  action?: boolean;
  ref?: number;
}
/** Client → server: a direct message to one user, wherever they are. */
export interface DirectSendFrame {
  type: "dm";
  to: string;
  text: string;
  ref?: number;
}
/** Client → server: move to a room, creating it if need be. */
export interface JoinRoomFrame {
  type: "join";
  room: string;
  ref?: number;
}
/** Client → server: list the rooms. */
export interface RoomsRequestFrame {
  type: "rooms";
  ref?: number;
}
/** Client → server: set the topic of one's room (an operator: of any `room`). */
export interface TopicFrame {
  type: "topic";
  text: string;
  room?: string;
  ref?: number;
}
/** Client → server: become an operator with the server's operator token. */
export interface OpFrame {
  type: "op";
  token: string;
  ref?: number;
}
/** Client → server, operators only: disconnect someone. */
export interface KickFrame {
  type: "kick";
  name: string;
  reason?: string;
  ref?: number;
}
/** Client → server, operators only: silence someone for `minutes` (default 10). */
export interface MuteFrame {
  type: "mute";
  name: string;
  minutes?: number;
  ref?: number;
}
/** Client → server, operators only: keep someone's name and address out, for `minutes` or until unbanned. */
export interface BanFrame {
  type: "ban";
  name: string;
  minutes?: number;
  reason?: string;
  ref?: number;
}
/** Client → server, operators only: lift a ban (and a mute) on a name. */
export interface UnbanFrame {
  type: "unban";
  name: string;
  ref?: number;
}
/** Client → server, operators only: set the message of the day; `""` clears it. */
export interface MotdFrame {
  type: "motd";
  text: string;
  ref?: number;
}
/** Client → server: change name. */
export interface NickFrame {
  type: "nick";
  name: string;
  ref?: number;
}
/** Client → server: ask who is online. */
export interface WhoRequestFrame {
  type: "who";
  ref?: number;
}
/** Either direction: ping, answered with a pong carrying the same `data`. */
export interface PingFrame {
  type: "ping";
  data?: string;
  ref?: number;
}
/** Answer to a ping. */
export interface PongFrame {
  type: "pong";
  data?: string;
}
/** Client → server: leave. */
export interface QuitFrame {
  type: "quit";
}

/** Every frame a client may send. */
export type ClientFrame =
  | HelloFrame
  | SendFrame
  | DirectSendFrame
  | JoinRoomFrame
  | RoomsRequestFrame
  | TopicFrame
  | NickFrame
  | WhoRequestFrame
  | PingFrame
  | PongFrame
  | QuitFrame
  | OpFrame
  | KickFrame
  | MuteFrame
  | BanFrame
  | UnbanFrame
  | MotdFrame;

/** Server → client: the answer to a successful hello. */
export interface WelcomeFrame {
  type: "welcome";
  version: number;
  /** The name granted to this client. */
  name: string;
  /** The server's display name. */
  server: string;
  limits: Limits;
  /** The room entered, its topic, and the seq of its last message so far. */
  room: string;
  topic: string;
  seq: number;
  /** The numbering `seq` counts in; it changes when the room's seqs start again. */
  epoch: string;
  /** Who is in the room, this client included; a sample when many are. */
  users: string[];
  /** How many are in the room. */
  online: number;
  /** The operators among `users`. */
  ops: string[];
  /** Whether this client is an operator. */
  op?: boolean;
  /** The message of the day, if one is set. */
  motd?: string;
  /** Present this in a later hello to take the name back after a drop. */
  token: string;
}
/** Server → client: a relayed chat message. */
export interface MessageFrame {
  type: "msg";
  /** Server-assigned, increasing with every relayed message or event. */
  id: number;
  /** Milliseconds since the Unix epoch, set by the server. */
  ts: number;
  /** The room, and the message's place in it: 1, 2, 3, … for ever. */
  room: string;
  seq: number;
  from: string;
  text: string;
  /** An action (`/me waves`): shown as `* ada waves`. */
  action?: boolean;
  /** The sender's `ref`, so the sender can match the echo to what it sent. */
  ref?: number;
  /** Set on earlier messages replayed after a `history` frame. */
  replay?: boolean;
}
/** Server → client: a direct message, to its target and back to its sender. */
export interface DirectFrame {
  type: "dm";
  id: number;
  ts: number;
  from: string;
  to: string;
  text: string;
  ref?: number;
  /** Set on one replayed after a takeover (`token` and `dmSince` in the hello). */
  replay?: boolean;
}
/** Server → client: `count` earlier messages of `room` follow; `gone` were past retention. */
export interface HistoryFrame {
  type: "history";
  room: string;
  /** The numbering the replayed seqs count in. */
  epoch: string;
  count: number;
  gone: number;
  /** The hello's `since` was of another epoch: these are the last messages instead. */
  restarted?: boolean;
}
/** Server → client: you are now in `room` (after a `join`). */
export interface RoomFrame {
  type: "room";
  room: string;
  topic: string;
  /** The seq of the room's last message so far, and the numbering it counts in. */
  seq: number;
  epoch: string;
  users: string[];
  online: number;
}
/** Server → client: the rooms there are. */
export interface RoomsFrame {
  type: "rooms";
  rooms: { name: string; members: number; topic: string }[];
  /** The request's `ref`, if it had one. */
  ref?: number;
}
/** Server → client: someone joined or left the room, was renamed, or set the topic. */
export interface EventFrame {
  type: "event";
  id: number;
  ts: number;
  room: string;
  event: "join" | "leave" | "rename" | "topic" | "op" | "kick" | "mute" | "ban" | "unban" | "motd";
  /** The user concerned (for a rename, the new name; for a moderation, its target). */
  name: string;
  /** For a rename, the old name. */
  from?: string;
  /** For a leave, why (`quit`, `connection lost`, `slow_consumer`, …); for a kick or ban, the operator's reason. */
  reason?: string;
  /** For a topic, the new topic. */
  topic?: string;
  /** For a moderation, the operator who did it. */
  by?: string;
  /** For a mute or ban, how long; absent for a ban until unbanned. */
  minutes?: number;
  /** For a motd, the new message of the day. */
  text?: string;
}
/** Server → client: who is online. */
export interface WhoFrame {
  type: "who";
  room: string;
  /** Names, sorted; a sample when very many are online. */
  users: string[];
  /** The operators among `users`. */
  ops: string[];
  /** How many are in the room. */
  online: number;
  /** The request's `ref`, if it had one. */
  ref?: number;
}
/** Server → client: something went wrong; `ref` names the refused message. */
export interface ErrorFrame {
  type: "error";
  code: ErrorCode;
  message: string;
  ref?: number;
  /** With `rate_limited`: when to try again. */
  retryMs?: number;
}

/** Every frame a server may send. */
export type ServerFrame =
  | WelcomeFrame
  | MessageFrame
  | DirectFrame
  | HistoryFrame
  | RoomFrame
  | RoomsFrame
  | EventFrame
  | WhoFrame
  | ErrorFrame
  | PingFrame
  | PongFrame;

/** A frame that could not be accepted, as a value rather than an exception. */
export interface FrameError {
  type: "frame_error";
  code: "bad_frame" | "frame_too_large";
  message: string;
  /** The refused frame's `ref`, when it could be read. */
  ref?: number;
}

// ---------------------------------------------------------------- encoding

const encoder = new TextEncoder();

/**
 * Encodes a frame as one line of bytes, ready to write.
 *
 * @example
 * ```ts
 * import { encodeFrame } from "./protocol.ts";
 * const bytes = encodeFrame({ type: "who" });
 * // bytes is the UTF-8 of '{"type":"who"}\n'
 * ```
 */
export function encodeFrame(frame: ClientFrame | ServerFrame): Uint8Array {
  return encoder.encode(JSON.stringify(frame) + "\n");
}

// ---------------------------------------------------------------- framing

/** What {@linkcode LineDecoder.push} hands out for each line. */
export type Line = Uint8Array | FrameError;

/** No bytes, shared: a decoder holds this while no line is pending, not an array of its own. */
const NOTHING = new Uint8Array(0);

/**
 * Splits a byte stream into lines, holding at most `maxLineBytes` of a
 * partial line. A longer line is skipped as it arrives, so memory stays
 * bounded whatever a peer sends, and reported once as `frame_too_large`
 * when it ends, with the `ref` its last bytes hold, if any.
 *
 * @example
 * ```ts
 * import { LineDecoder } from "./protocol.ts";
 * const lines = new LineDecoder({ maxLineBytes: 1024 });
 * const out = lines.push(new TextEncoder().encode("a\r\nb\n"));
 * // out holds the bytes of "a" and "b"
 * ```
 */
export class LineDecoder {
  readonly #max: number;
  #pending = NOTHING;
  #pendingLength = 0;
  #skipping = false;
  /** The last bytes of a line being skipped: where its `ref` is, if it has one. */
  #tail = NOTHING;

  constructor(options: { maxLineBytes?: number } = {}) {
    this.#max = options.maxLineBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  /** Bytes held of an unfinished line. */
  get pendingBytes(): number {
    return this.#pendingLength;
  }

  /**
   * Feeds bytes in; returns every line they complete, without line endings.
   * A line may be a view into `chunk`: use it before that memory is reused.
   */
  push(chunk: Uint8Array): Line[] {
    const lines: Line[] = [];
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(10, start);
      const end = nl === -1 ? chunk.length : nl;
      if (this.#skipping) {
        this.#keepTail(chunk.subarray(start, end));
        if (nl !== -1) {
          this.#skipping = false;
          lines.push(tooLarge(this.#max, this.#tail));
        }
      } else if (this.#pendingLength + (end - start) > this.#max + 1) {
        // +1 leaves room for a '\r' that will be trimmed. The line is skipped from here on,
        // and reported when it ends, with its ref if its last bytes hold one.
        this.#tail = NOTHING;
        this.#keepTail(this.#pending.subarray(0, this.#pendingLength));
        this.#keepTail(chunk.subarray(start, end));
        this.#pendingLength = 0;
        if (this.#pending.length > 4096) this.#pending = NOTHING;
        this.#skipping = nl === -1;
        if (nl !== -1) lines.push(tooLarge(this.#max, this.#tail));
      } else if (nl === -1) {
        this.#hold(chunk.subarray(start, end));
      } else {
        lines.push(this.#finish(chunk.subarray(start, end)));
      }
      if (nl === -1) break;
      start = nl + 1;
    }
    return lines;
  }

  #hold(bytes: Uint8Array): void {
    const needed = this.#pendingLength + bytes.length;
    if (needed > this.#pending.length) {
      const grown = new Uint8Array(Math.min(this.#max + 1, needed * 2));
      grown.set(this.#pending.subarray(0, this.#pendingLength));
      this.#pending = grown;
    }
    this.#pending.set(bytes, this.#pendingLength);
    this.#pendingLength = needed;
  }

  #finish(tail: Uint8Array): Line {
    let line: Uint8Array;
    if (this.#pendingLength === 0) {
      line = tail;
    } else {
      line = new Uint8Array(this.#pendingLength + tail.length);
      line.set(this.#pending.subarray(0, this.#pendingLength));
      line.set(tail, this.#pendingLength);
      this.#pendingLength = 0;
      // Give back the memory of a long line once it is done.
      if (this.#pending.length > 4096) this.#pending = NOTHING;
    }
    if (line.length > 0 && line[line.length - 1] === 13) {
      line = line.subarray(0, line.length - 1);
    }
    if (line.length > this.#max) return tooLarge(this.#max, line.subarray(-TAIL_BYTES));
    return line;
  }

  #keepTail(bytes: Uint8Array): void {
    if (bytes.length >= TAIL_BYTES) {
      this.#tail = bytes.slice(bytes.length - TAIL_BYTES);
      return;
    }
    const joined = new Uint8Array(Math.min(TAIL_BYTES, this.#tail.length + bytes.length));
    const keep = joined.length - bytes.length;
    joined.set(this.#tail.subarray(this.#tail.length - keep));
    joined.set(bytes, keep);
    this.#tail = joined;
  }
}

/** How much of a skipped line's end is kept to find its `ref` in. */
const TAIL_BYTES = 64;
const latin1 = new TextDecoder("latin1");

function tooLarge(max: number, tail?: Uint8Array): FrameError {
  // A frame's `ref` usually comes last (as JSON.stringify writes it): look for it at the end.
  const ref = tail && /"ref"\s*:\s*(-?\d{1,16})\s*}\s*\r?$/.exec(latin1.decode(tail))?.[1];
  const error: FrameError = {
    type: "frame_error",
    code: "frame_too_large",
    message: `frame longer than ${max} bytes; it was skipped`,
  };
  if (ref !== undefined && Number.isSafeInteger(Number(ref))) error.ref = Number(ref);
  return error;
}

// ---------------------------------------------------------------- parsing

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function badFrame(message: string, ref?: number): FrameError {
  return ref === undefined
    ? { type: "frame_error", code: "bad_frame", message }
    : { type: "frame_error", code: "bad_frame", message, ref };
}

/** Decodes a line's bytes as strict UTF-8 JSON, giving an object or an error. */
function parseObject(
  line: Uint8Array,
): { object: Record<string, unknown> } | { error: FrameError } {
  let text: string;
  try {
    text = strictUtf8.decode(line);
  } catch {
    return { error: badFrame("frame is not valid UTF-8") };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { error: badFrame("frame is not valid JSON") };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { error: badFrame("frame must be a JSON object") };
  }
  return { object: value as Record<string, unknown> };
}

/** A tiny field checker: each reader returns the value or records a problem. */
class Fields {
  problem: string | undefined;
  constructor(readonly object: Record<string, unknown>) {}

  string(key: string, optional = false): string | undefined {
    const value = this.object[key];
    if (value === undefined && optional) return undefined;
    if (typeof value !== "string") {
      this.problem ??= `field "${key}" must be a string`;
      return undefined;
    }
    return value;
  }

  integer(key: string, optional = false): number | undefined {
    const value = this.object[key];
    if (value === undefined && optional) return undefined;
    if (typeof value !== "number" || !Number.isSafeInteger(value)) {
      this.problem ??= `field "${key}" must be an integer`;
      return undefined;
    }
    return value;
  }

  boolean(key: string, optional = false): boolean | undefined {
    const value = this.object[key];
    if (value === undefined && optional) return undefined;
    if (typeof value !== "boolean") {
      this.problem ??= `field "${key}" must be true or false`;
      return undefined;
    }
    return value;
  }

  strings(key: string): string[] | undefined {
    const value = this.object[key];
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
      this.problem ??= `field "${key}" must be an array of strings`;
      return undefined;
    }
    return value;
  }
}

/**
 * Builds the frame or the error a {@linkcode Fields} check ended with; the
 * error carries the frame's `ref` when it has a valid one. Absent optional
 * fields are left out rather than set to undefined.
 */
function checked<T extends object>(fields: Fields, build: () => T): T | FrameError {
  const frame = build();
  if (fields.problem !== undefined) return badFrame(fields.problem, refOf(fields.object));
  for (const key of Object.keys(frame) as (keyof T)[]) {
    if (frame[key] === undefined) delete frame[key];
  }
  return frame;
}

/** A frame's `ref`, if it has one that is valid. */
function refOf(object: Record<string, unknown>): number | undefined {
  return Number.isSafeInteger(object.ref) ? object.ref as number : undefined;
}

/**
 * Parses one line from a client, checking the type of every field.
 *
 * @example
 * ```ts
 * import { parseClientFrame } from "./protocol.ts";
 * const frame = parseClientFrame(new TextEncoder().encode('{"type":"who"}'));
 * // frame is { type: "who" }
 * ```
 */
export function parseClientFrame(line: Uint8Array): ClientFrame | FrameError {
  const parsed = parseObject(line);
  if ("error" in parsed) return parsed.error;
  const object = parsed.object;
  const f = new Fields(object);
  switch (object.type) {
    case "hello":
      return checked(f, () => ({
        type: "hello" as const,
        version: f.integer("version")!,
        name: f.string("name", true),
        room: f.string("room", true),
        history: f.integer("history", true),
        since: f.integer("since", true),
        epoch: f.string("epoch", true),
        token: f.string("token", true),
        dmSince: f.integer("dmSince", true),
        password: f.string("password", true),
        op: f.string("op", true),
      }));
    case "dm":
      return checked(f, () => ({
        type: "dm" as const,
        to: f.string("to")!,
        text: f.string("text")!,
        ref: f.integer("ref", true),
      }));
    case "join":
      return checked(f, () => ({
        type: "join" as const,
        room: f.string("room")!,
        ref: f.integer("ref", true),
      }));
    case "rooms":
      return checked(f, () => ({ type: "rooms" as const, ref: f.integer("ref", true) }));
    case "topic":
      return checked(f, () => ({
        type: "topic" as const,
        text: f.string("text")!,
        room: f.string("room", true),
        ref: f.integer("ref", true),
      }));
    case "op":
      return checked(f, () => ({
        type: "op" as const,
        token: f.string("token")!,
        ref: f.integer("ref", true),
      }));
    case "kick":
      return checked(f, () => ({
        type: "kick" as const,
        name: f.string("name")!,
        reason: f.string("reason", true),
        ref: f.integer("ref", true),
      }));
    case "mute":
      return checked(f, () => ({
        type: "mute" as const,
        name: f.string("name")!,
        minutes: f.integer("minutes", true),
        ref: f.integer("ref", true),
      }));
    case "ban":
      return checked(f, () => ({
        type: "ban" as const,
        name: f.string("name")!,
        minutes: f.integer("minutes", true),
        reason: f.string("reason", true),
        ref: f.integer("ref", true),
      }));
    case "unban":
      return checked(f, () => ({
        type: "unban" as const,
        name: f.string("name")!,
        ref: f.integer("ref", true),
      }));
    case "motd":
      return checked(f, () => ({
        type: "motd" as const,
        text: f.string("text")!,
        ref: f.integer("ref", true),
      }));
    case "msg":
      return checked(f, () => ({
        type: "msg" as const,
        text: f.string("text")!,
        action: f.boolean("action", true),
        ref: f.integer("ref", true),
      }));
    case "nick":
      return checked(f, () => ({
        type: "nick" as const,
        name: f.string("name")!,
        ref: f.integer("ref", true),
      }));
    case "who":
      return checked(f, () => ({ type: "who" as const, ref: f.integer("ref", true) }));
    case "ping":
      return checked(f, () => ({
        type: "ping" as const,
        data: f.string("data", true),
        ref: f.integer("ref", true),
      }));
    case "pong":
      return checked(f, () => ({ type: "pong" as const, data: f.string("data", true) }));
    case "quit":
      return { type: "quit" };
    default:
      return badFrame(`unknown frame type ${JSON.stringify(object.type)}`, refOf(object));
  }
}

const EVENT_KINDS = new Set([
  "join",
  "leave",
  "rename",
  "topic",
  "op",
  "kick",
  "mute",
  "ban",
  "unban",
  "motd",
]);

/**
 * Parses one line from a server, checking the type of every field. Used by
 * the client, which must not trust the server blindly either.
 *
 * @example
 * ```ts
 * import { parseServerFrame } from "./protocol.ts";
 * const line = '{"type":"who","room":"lobby","users":["ada"],"online":1}';
 * const frame = parseServerFrame(new TextEncoder().encode(line));
 * // frame is { type: "who", room: "lobby", users: ["ada"], online: 1 }
 * ```
 */
export function parseServerFrame(line: Uint8Array): ServerFrame | FrameError {
  const parsed = parseObject(line);
  if ("error" in parsed) return parsed.error;
  const object = parsed.object;
  const f = new Fields(object);
  switch (object.type) {
    case "welcome": {
      const limits = object.limits as Record<string, unknown> | undefined;
      const l = new Fields(typeof limits === "object" && limits ? limits : {});
      const frame = checked(f, () => ({
        type: "welcome" as const,
        version: f.integer("version")!,
        name: f.string("name")!,
        server: f.string("server")!,
        room: f.string("room")!,
        topic: f.string("topic")!,
        seq: f.integer("seq")!,
        epoch: f.string("epoch")!,
        users: f.strings("users")!,
        online: f.integer("online")!,
        ops: f.strings("ops")!,
        op: f.boolean("op", true),
        motd: f.string("motd", true),
        token: f.string("token")!,
        limits: checked(l, () => ({
          maxFrameBytes: l.integer("maxFrameBytes")!,
          maxNameLength: l.integer("maxNameLength")!,
          rate: l.integer("rate")!,
          burst: l.integer("burst")!,
          rateBytes: l.integer("rateBytes", true),
        })) as Limits,
      }));
      return l.problem === undefined ? frame : badFrame(`limits: ${l.problem}`);
    }
    case "msg":
      return checked(f, () => ({
        type: "msg" as const,
        id: f.integer("id")!,
        ts: f.integer("ts")!,
        room: f.string("room")!,
        seq: f.integer("seq")!,
        from: f.string("from")!,
        text: f.string("text")!,
        action: f.boolean("action", true),
        ref: f.integer("ref", true),
        replay: f.boolean("replay", true),
      }));
    case "dm":
      return checked(f, () => ({
        type: "dm" as const,
        id: f.integer("id")!,
        ts: f.integer("ts")!,
        from: f.string("from")!,
        to: f.string("to")!,
        text: f.string("text")!,
        ref: f.integer("ref", true),
        replay: f.boolean("replay", true),
      }));
    case "history":
      return checked(f, () => ({
        type: "history" as const,
        room: f.string("room")!,
        epoch: f.string("epoch")!,
        count: f.integer("count")!,
        gone: f.integer("gone")!,
        restarted: f.boolean("restarted", true),
      }));
    case "room":
      return checked(f, () => ({
        type: "room" as const,
        room: f.string("room")!,
        topic: f.string("topic")!,
        seq: f.integer("seq")!,
        epoch: f.string("epoch")!,
        users: f.strings("users")!,
        online: f.integer("online")!,
      }));
    case "rooms": {
      const list = Array.isArray(object.rooms) ? object.rooms : undefined;
      const rooms = list?.map((entry) => {
        const r = new Fields(typeof entry === "object" && entry ? entry : {});
        const room = {
          name: r.string("name")!,
          members: r.integer("members")!,
          topic: r.string("topic")!,
        };
        return r.problem === undefined ? room : undefined;
      });
      if (rooms === undefined || rooms.some((r) => r === undefined)) {
        return badFrame('field "rooms" must be a list of {name, members, topic}');
      }
      const ref = refOf(object);
      return ref === undefined
        ? { type: "rooms", rooms: rooms as RoomsFrame["rooms"] }
        : { type: "rooms", rooms: rooms as RoomsFrame["rooms"], ref };
    }
    case "event": {
      const frame = checked(f, () => ({
        type: "event" as const,
        id: f.integer("id")!,
        ts: f.integer("ts")!,
        room: f.string("room")!,
        event: f.string("event") as EventFrame["event"],
        name: f.string("name")!,
        from: f.string("from", true),
        reason: f.string("reason", true),
        topic: f.string("topic", true),
        by: f.string("by", true),
        minutes: f.integer("minutes", true),
        text: f.string("text", true),
      }));
      if ("event" in frame && !EVENT_KINDS.has(frame.event)) {
        return badFrame(`unknown event ${JSON.stringify(frame.event)}`);
      }
      return frame;
    }
    case "who":
      return checked(f, () => ({
        type: "who" as const,
        room: f.string("room")!,
        users: f.strings("users")!,
        ops: f.strings("ops")!,
        online: f.integer("online")!,
        ref: f.integer("ref", true),
      }));
    case "error":
      return checked(f, () => ({
        type: "error" as const,
        code: f.string("code") as ErrorCode,
        message: f.string("message")!,
        ref: f.integer("ref", true),
        retryMs: f.integer("retryMs", true),
      }));
    case "ping":
    case "pong":
      return checked(f, () => ({ type: object.type as "ping", data: f.string("data", true) }));
    default:
      return badFrame(`unknown frame type ${JSON.stringify(object.type)}`);
  }
}

// The rules for names live in text/names.ts; the wire format's users import them from here.
export { checkName as validateName, nameKey, RESERVED_NAMES } from "./text/names.ts";

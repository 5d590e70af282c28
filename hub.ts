/**
 * The hub: the one place that owns the chat's shared state.
 *
 * It holds who is online under which name, the rooms with their members,
 * topics and recent history, and hands out ids and per-room sequence
 * numbers. A broadcast encodes its frame once (and once more as a text line
 * if a plain-text client is in the room) and pushes the same bytes into each
 * member's bounded outbound queue; it never waits for a member. A member
 * whose queue is full is reported through `onOverflow` after the broadcast
 * has reached everyone else, so disconnecting it (and announcing that)
 * cannot interleave with the frame being delivered.
 *
 * With a store (`--db`), accepted messages are collected into a batch that
 * is written in one transaction at the end of the event-loop turn; only then
 * are they added to the history and relayed, the sender's echo included, so
 * whatever anyone saw is on disk. Events that come while a batch is pending
 * wait behind it, so everyone still sees one order.
 *
 * Replay is exact at the seam because it is synchronous: a client entering a
 * room is sent the history as it stands and is a member from that instant,
 * so every later message reaches it live, and none twice.
 *
 * @module
 */

import {
  type DirectFrame,
  encodeFrame,
  type EventFrame,
  type MessageFrame,
  nameKey,
} from "./protocol.ts";
import { renderFrame } from "./render.ts";
import type { SqliteStore, StoredMessage } from "./store.ts";

/** A joined session, as the hub sees it. */
export interface Member {
  /** The granted name; the hub sets it. */
  name: string;
  /** A plain-text (nc, telnet) client rather than a protocol client. */
  readonly plain: boolean;
  /** The room the member is in; the hub sets it. */
  room: Room | undefined;
  /** Queues bytes for the member; false when its queue is full. */
  deliver(bytes: Uint8Array): boolean;
}

/** A room: its members, topic and recent messages. */
export class Room {
  readonly members = new Map<string, Member>();
  topic = "";
  /** The seq of the last message accepted in this room. */
  lastSeq = 0;
  plainCount = 0;
  /** The most recent messages, oldest first; trimmed to the retention. */
  history: StoredMessage[] = [];

  constructor(readonly name: string) {}

  /** The seq of the last message relayed so far (with a store, `lastSeq` may be ahead). */
  get relayedSeq(): number {
    return this.history.at(-1)?.seq ?? 0;
  }
}

/** Options for {@linkcode Hub}. */
export interface HubOptions {
  /** Join and leave notices go out only while a room has at most this many. */
  announceLimit: number;
  /** Messages kept per room for replay. */
  retention: number;
  /** Most rooms there may be. */
  maxRooms: number;
  /** Where messages are made durable; none keeps history in memory only. */
  store?: SqliteStore;
  /** Called for each member whose queue overflowed, after the broadcast. */
  onOverflow: (member: Member) => void;
  /** Called when a batch could not be stored: its senders are told, not relayed. */
  onStoreError?: (error: unknown, refused: { member: Member; ref?: number }[]) => void;
}

/** The room everyone starts in. */
export const DEFAULT_ROOM = "lobby";
/** How many names a welcome lists; `who` lists up to {@linkcode WHO_LIMIT}. */
export const WELCOME_LIMIT = 100;
/** How many names a `who` answer lists at most. */
export const WHO_LIMIT = 1000;

/**
 * The frame that relays a stored message; `replay` marks an earlier one.
 *
 * @example
 * ```ts
 * import { messageFrame } from "./hub.ts";
 * messageFrame({ room: "lobby", seq: 1, id: 7, ts: 0, from: "ada", text: "hi" }, true);
 * ```
 */
export function messageFrame(message: StoredMessage, replay = false): MessageFrame {
  const frame: MessageFrame = {
    type: "msg",
    id: message.id,
    ts: message.ts,
    room: message.room,
    seq: message.seq,
    from: message.from,
    text: message.text,
  };
  if (message.ref !== undefined) frame.ref = message.ref;
  if (replay) frame.replay = true;
  return frame;
}

/** What entering a room gives the member: the room and what to replay. */
export interface Entry {
  room: Room;
  replay: StoredMessage[];
  /** Messages the member asked for that are past the retention. */
  gone: number;
}

type Pending =
  | { kind: "msg"; message: StoredMessage; room: Room; sender: Member }
  | { kind: "event"; frame: EventFrame; room: Room };

const lineEncoder = new TextEncoder();

/**
 * Who is online, the rooms, and the broadcast to them.
 *
 * @example
 * ```ts
 * import { Hub } from "./hub.ts";
 * const hub = new Hub({ announceLimit: 200, retention: 1000, maxRooms: 100, onOverflow: () => {} });
 * const member = { name: "", plain: false, room: undefined, deliver: () => true };
 * if (hub.claim(member, "ada")) {
 *   hub.enter(member, "lobby", { history: 50 });
 *   hub.announceJoin(member);
 *   hub.say(member, "hello");
 * }
 * ```
 */
export class Hub {
  readonly #names = new Map<string, Member>();
  readonly #rooms = new Map<string, Room>();
  readonly #options: HubOptions;
  readonly #store: SqliteStore | undefined;
  #nextId = 1;
  #guests = 0;
  #closed = false;
  // With a store: what waits for the batch being collected.
  #pending: Pending[] = [];
  #batch: StoredMessage[] = [];
  #roomWrites = new Set<Room>();
  #flushTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: HubOptions) {
    this.#options = options;
    this.#store = options.store;
    if (this.#store) {
      const { rooms, nextId } = this.#store.load(options.retention);
      this.#nextId = nextId;
      for (const stored of rooms) {
        const room = new Room(stored.name);
        room.topic = stored.topic;
        room.lastSeq = stored.lastSeq;
        room.history = stored.recent;
        this.#rooms.set(nameKey(room.name), room);
      }
    }
    if (!this.#rooms.has(DEFAULT_ROOM)) this.#rooms.set(DEFAULT_ROOM, new Room(DEFAULT_ROOM));
  }

  /** How many members are online. */
  get size(): number {
    return this.#names.size;
  }

  /** Gives `member` the name if it is free; false when it is taken. */
  claim(member: Member, name: string): boolean {
    const key = nameKey(name);
    if (this.#closed || this.#names.has(key)) return false;
    member.name = name;
    this.#names.set(key, member);
    return true;
  }

  /** Who holds a name, if anyone. */
  holder(name: string): Member | undefined {
    return this.#names.get(nameKey(name));
  }

  /** A free name of the form `guestN`. */
  guestName(): string {
    for (;;) {
      const name = `guest${++this.#guests}`;
      if (!this.#names.has(name)) return name;
    }
  }

  /**
   * Moves `member` into a room (leaving its current one), creating the room
   * if need be. Returns what to replay: the messages after `since` when it
   * is given (resuming), otherwise the last `history` ones. Undefined when
   * the room would be one too many.
   */
  enter(
    member: Member,
    roomName: string,
    options: { history: number; since?: number },
  ): Entry | undefined {
    const key = nameKey(roomName);
    let room = this.#rooms.get(key);
    if (room === undefined) {
      if (this.#rooms.size >= this.#options.maxRooms) return undefined;
      room = new Room(roomName);
      this.#rooms.set(key, room);
      this.#roomWrites.add(room);
    }
    if (member.room === room) return { room, replay: [], gone: 0 };
    if (member.room) this.#exit(member, `went to ${room.name}`, false);
    room.members.set(nameKey(member.name), member);
    if (member.plain) room.plainCount++;
    member.room = room;

    const history = room.history;
    const since = options.since;
    if (since !== undefined && since <= room.lastSeq) {
      const oldest = history[0]?.seq ?? 1;
      const gone = Math.max(0, oldest - 1 - since);
      const from = history.findIndex((m) => m.seq > since);
      return { room, replay: from === -1 ? [] : history.slice(from), gone };
    }
    const count = Math.min(options.history, this.#options.retention, history.length);
    return { room, replay: count > 0 ? history.slice(history.length - count) : [], gone: 0 };
  }

  /** Tells the member's room that it joined (while the room is small enough). */
  announceJoin(member: Member): void {
    const room = member.room;
    if (this.#closed || !room || room.members.size > this.#options.announceLimit) return;
    this.#emit(room, { event: "join", name: member.name });
  }

  /**
   * Renames `member`; false when the new name is someone else's. Changing
   * only the case of one's own name is allowed.
   */
  rename(member: Member, name: string): boolean {
    const key = nameKey(name);
    const holder = this.#names.get(key);
    if (holder !== undefined && holder !== member) return false;
    const old = member.name;
    this.#names.delete(nameKey(old));
    member.room?.members.delete(nameKey(old));
    member.name = name;
    this.#names.set(key, member);
    member.room?.members.set(key, member);
    if (member.room) this.#emit(member.room, { event: "rename", name, from: old });
    return true;
  }

  /**
   * Removes `member` if it is online and tells its room why it left, unless
   * `silent` (a connection replaced by the same user's new one).
   */
  leave(member: Member, reason: string, silent = false): void {
    const key = nameKey(member.name);
    if (this.#names.get(key) !== member) return;
    this.#names.delete(key);
    if (member.room) this.#exit(member, reason, silent);
  }

  /** Sets the topic of the member's room and tells the room. */
  setTopic(member: Member, topic: string): void {
    const room = member.room;
    if (!room) return;
    room.topic = topic;
    this.#roomWrites.add(room);
    if (this.#store) this.#scheduleFlush();
    this.#emit(room, { event: "topic", name: member.name, topic });
  }

  /** Accepts a chat message from `member` into its room. */
  say(member: Member, text: string, ref?: number): void {
    const room = member.room;
    if (!room) return;
    const message: StoredMessage = {
      room: room.name,
      seq: ++room.lastSeq,
      id: this.#id(),
      ts: Date.now(),
      from: member.name,
      text,
    };
    if (ref !== undefined) message.ref = ref;
    if (!this.#store) return this.#relay(message, room, member);
    this.#batch.push(message);
    this.#roomWrites.add(room); // its row must exist beside its messages
    this.#pending.push({ kind: "msg", message, room, sender: member });
    this.#scheduleFlush();
  }

  /** Sends a direct message; false when nobody has the name `to`. */
  direct(member: Member, to: string, text: string, ref?: number): boolean {
    const target = this.#names.get(nameKey(to));
    if (target === undefined) return false;
    const frame: DirectFrame = {
      type: "dm",
      id: this.#id(),
      ts: Date.now(),
      from: member.name,
      to: target.name,
      text,
    };
    if (ref !== undefined) frame.ref = ref;
    const bytes = encodeFrame(frame);
    const forTarget = target.plain ? lineEncoder.encode(renderFrame(frame) + "\r\n") : bytes;
    const overflowed: Member[] = [];
    if (!target.deliver(forTarget)) overflowed.push(target);
    if (target !== member && !member.plain && !member.deliver(bytes)) overflowed.push(member);
    for (const m of overflowed) this.#options.onOverflow(m);
    return true;
  }

  /**
   * Names in a room, sorted regardless of case; a sample of at most `limit`
   * when there are more. Sorted by the lowercase keys the room is indexed
   * by: every join asks for this, and a locale-aware compare costs far more.
   */
  names(room: Room, limit: number): string[] {
    const entries: [string, string][] = [];
    for (const [key, member] of room.members) {
      if (entries.length === limit) break;
      entries.push([key, member.name]);
    }
    return entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((e) => e[1]);
  }

  /** The rooms, by name, with how many are in each and the topic. */
  rooms(): { name: string; members: number; topic: string }[] {
    return [...this.#rooms.values()]
      .map((room) => ({ name: room.name, members: room.members.size, topic: room.topic }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * For shutdown: stores and relays what is pending, stops joins and
   * notices, and returns every member so the server can tell each one.
   */
  close(): Member[] {
    this.flush();
    this.#closed = true;
    return [...this.#names.values()];
  }

  /** Writes the pending batch, then relays it; safe to call at any time. */
  flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (!this.#store) return;
    const pending = this.#pending;
    const batch = this.#batch;
    const rooms = [...this.#roomWrites].map((room) => ({ name: room.name, topic: room.topic }));
    this.#pending = [];
    this.#batch = [];
    this.#roomWrites.clear();
    let stored = true;
    try {
      this.#store.write(batch, rooms);
    } catch (error) {
      stored = false;
      this.#unaccept(batch);
      const refused = pending.flatMap((p) =>
        p.kind === "msg" ? [{ member: p.sender, ref: p.message.ref }] : []
      );
      this.#options.onStoreError?.(error, refused);
    }
    for (const item of pending) {
      if (item.kind === "event") this.#deliver(item.room, item.frame);
      else if (stored) this.#relay(item.message, item.room, item.sender);
    }
  }

  #id(): number {
    const id = this.#nextId++;
    this.#store?.reserveIds(this.#nextId);
    return id;
  }

  /** Gives back the seqs of messages that could not be stored. */
  #unaccept(batch: StoredMessage[]): void {
    for (const message of batch) {
      const room = this.#rooms.get(nameKey(message.room));
      if (room && message.seq <= room.lastSeq) room.lastSeq = message.seq - 1;
    }
  }

  #scheduleFlush(): void {
    this.#flushTimer ??= setTimeout(() => this.flush(), 0);
  }

  #exit(member: Member, reason: string, silent: boolean): void {
    const room = member.room!;
    room.members.delete(nameKey(member.name));
    if (member.plain) room.plainCount--;
    member.room = undefined;
    if (!silent && !this.#closed && room.members.size < this.#options.announceLimit) {
      this.#emit(room, { event: "leave", name: member.name, reason });
    }
    const unused = room.members.size === 0 && room.lastSeq === 0 && room.topic === "";
    if (unused && nameKey(room.name) !== DEFAULT_ROOM) this.#rooms.delete(nameKey(room.name));
  }

  /** Sends an event now, or after the pending batch so that order holds. */
  #emit(
    room: Room,
    event: Pick<EventFrame, "event" | "name" | "from" | "reason" | "topic">,
  ): void {
    const frame: EventFrame = {
      type: "event",
      id: this.#id(),
      ts: Date.now(),
      room: room.name,
      ...event,
    };
    if (this.#pending.length > 0) this.#pending.push({ kind: "event", frame, room });
    else this.#deliver(room, frame);
  }

  /** Adds an accepted (and, with a store, stored) message to history and relays it. */
  #relay(message: StoredMessage, room: Room, sender: Member): void {
    room.history.push(message);
    if (room.history.length >= 2 * this.#options.retention) {
      room.history = room.history.slice(-this.#options.retention);
    }
    const bytes = this.#deliver(room, messageFrame(message), sender);
    // A sender that moved on before the batch was stored still gets its confirmation.
    if (sender.room !== undefined && sender.room !== room && !sender.plain) {
      if (!sender.deliver(bytes)) this.#options.onOverflow(sender);
    }
  }

  /** Delivers a frame to everyone in `room`; returns its encoded bytes. */
  #deliver(room: Room, frame: MessageFrame | EventFrame, sender?: Member): Uint8Array {
    const bytes = encodeFrame(frame);
    // Plain clients read their own typing on screen; they get no echo.
    const line = room.plainCount > 0 ? lineEncoder.encode(renderFrame(frame) + "\r\n") : bytes;
    let overflowed: Member[] | undefined;
    for (const member of room.members.values()) {
      if (member.plain && member === sender) continue;
      if (!member.deliver(member.plain ? line : bytes)) (overflowed ??= []).push(member);
    }
    for (const member of overflowed ?? []) this.#options.onOverflow(member);
    return bytes;
  }
}

/**
 * The hub: the one place that owns the chat's shared state.
 *
 * It holds who is online under which name, the rooms with their members,
 * topics and recent history, and hands out ids and per-room sequence
 * numbers. A broadcast encodes its frame once per codec in use in the room
 * (JSON lines, text lines; see `codec.ts`) and pushes the same bytes into
 * each member's bounded outbound queue; it never waits for a member. A member
 * whose queue is full is reported through `onOverflow` after the broadcast
 * has reached everyone else, so disconnecting it (and announcing that)
 * cannot interleave with the frame being delivered.
 *
 * Everything the hub accepts (messages, notices, private messages) goes
 * through its journal (`store/journal.ts`) and is relayed only as the
 * journal hands it back: at once in memory; after the batch is written in
 * one transaction with `--db`, so whatever anyone saw is on disk; from the
 * shared bus with `--redis`, so that every node relays one order. One batch
 * is written at a time; what comes meanwhile waits behind it, so everyone
 * still sees one order.
 *
 * Replay is exact at the seam because entering is synchronous: a client
 * entering a room is handed the history as it stands and is a member from
 * that instant, so every later message reaches it live, and none twice. Its
 * outbound queue paces the replay and holds the live frames behind it.
 *
 * Each room's seqs count within an epoch; a new room (or a restart without
 * `--db`) starts a new epoch, so a client resuming from a seq of another
 * numbering is told rather than given the wrong messages.
 *
 * @module
 */

import {
  type DirectFrame,
  type ErrorFrame,
  type EventFrame,
  type MessageFrame,
  nameKey,
} from "../protocol.ts";
import { count } from "../text/render.ts";
import { type Codec, Encodings, jsonLines } from "./codec.ts";
import { newEpoch, RoomHistory } from "./history.ts";
import { FrameArena } from "./frame_arena.ts";
import type { LoadedState, RoomRecord, StoredMessage, StoredRoom } from "../store/sqlite.ts";
import { type BanRecord, Moderation } from "./moderation.ts";
import {
  type BusItem,
  type Journal,
  NotSent,
  type Numbered,
  type SharedNames,
  type Tagged,
} from "../store/journal.ts";
import { MemoryJournal } from "../store/memory.ts";

/** A joined session, as the hub sees it. */
export interface Member {
  /** The granted name; the hub sets it. */
  name: string;
  /** How frames are written for it. */
  readonly codec: Codec;
  /** The room the member is in; the hub sets it. */
  room: Room | undefined;
  /** Queues bytes for the member; false when its queue is full. */
  deliver(bytes: Uint8Array): boolean;
  /** Whether the member is an operator; the hub sets it. */
  op: boolean;
  /** The address it connects from, for bans. */
  readonly address: string;
  /**
   * With a cluster, for a client back from another node: the id of the first
   * private message it was sent live, and the id up to which the replay from
   * the store covers (later copies from the bus are not sent again). The hub
   * sets them.
   */
  directs?: { firstLive?: number; floor?: number };
}

/** A room: its members, topic and recent messages. */
export class Room {
  readonly members = new Map<string, Member>();
  topic = "";
  /** The seq of the last message numbered in this room (maybe not yet back from the journal). */
  lastSeq = 0;
  readonly history: RoomHistory;
  /** When the last member left; undefined while anyone is in. */
  emptySince: number | undefined;
  /** The operators in the room. */
  readonly ops = new Set<Member>();
  /** With `--redis`: members on other nodes, by name key, with their node. */
  readonly remote = new Map<string, { name: string; node: string; op?: boolean }>();
  /** Where the room's broadcasts are encoded, one after another. */
  readonly arena = new FrameArena();

  /** How many are in the room, on every node. */
  get online(): number {
    return this.members.size + this.remote.size;
  }

  constructor(
    readonly name: string,
    readonly epoch: string,
    history: { retention: number; maxBytes?: number },
  ) {
    this.history = new RoomHistory(history.retention, { maxBytes: history.maxBytes });
  }

  /** The seq of the last message relayed so far. */
  get relayedSeq(): number {
    return this.history.lastSeq;
  }

  /** An operator gave it a topic: it stays when empty. */
  pinned = false;

  get record(): RoomRecord {
    return { name: this.name, topic: this.topic, epoch: this.epoch, pinned: this.pinned };
  }

  /** Whether it may be let go of when nobody is in it. */
  get disposable(): boolean {
    return !this.pinned && nameKey(this.name) !== nameKey(DEFAULT_ROOM);
  }
}

/** Options for {@linkcode Hub}. */
export interface HubOptions {
  /** Join and leave notices go out only while a room has at most this many. */
  announceLimit: number;
  /** Messages kept per room for replay. */
  retention: number;
  /** Bytes of messages kept per room for replay; the oldest go first. Default: no limit. */
  roomHistoryBytes?: number;
  /** Bytes of messages kept for replay in all rooms together. Default: no limit. */
  historyBytes?: number;
  /** Most rooms there may be. */
  maxRooms: number;
  /** Where messages are stored and put in order; default: in memory only. */
  journal?: Journal;
  /** What the journal held at start. */
  loaded?: LoadedState;
  /** Called for each member whose queue overflowed, after the broadcast. */
  onOverflow: (member: Member) => void;
  /** Called when a batch could not be stored: its senders are told, not relayed. */
  onStoreError?: (error: unknown, refused: { member: Member; ref?: number }[]) => void;
  /** Called for a member whose name a client took over with its token on another node. */
  onReplaced?: (member: Member) => void;
  /** Called for a member an operator removed (kick, ban), after the room was told. */
  onRemove?: (member: Member, notice: ErrorFrame, reason: string) => void;
  /** Bans in force at start (from the database). */
  bans?: BanRecord[];
  /**
   * How long a room left empty is kept even when a new one needs its place:
   * long enough for whoever just dropped to come back to it. Default 0.
   */
  keepEmptyRoomMs?: number;
  /** Where moderation is logged. */
  log?: (line: string) => void;
}

/** The room everyone starts in. */
export const DEFAULT_ROOM = "lobby";
/** How many names a welcome lists; `who` lists up to {@linkcode WHO_LIMIT}. */
export const WELCOME_LIMIT = 100;
/** How many names a `who` answer lists at most. */
export const WHO_LIMIT = 1000;
/**
 * Bytes of messages that may wait for a slow database. Past half of it,
 * sessions stop reading (see {@linkcode Hub.backpressure}), so TCP slows the
 * senders; past all of it, new messages are refused.
 */
export const MAX_UNSTORED_BYTES = 8 * 1024 * 1024;
/** How often a publish of unknown outcome is tried again while the shared store is away. */
const UNCERTAIN_RETRY_MS = 250;

/** Bytes of recent private messages kept per name, to replay after a takeover. */
export const DIRECT_LOG_BYTES = 32 * 1024;

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
  if (message.action) frame.action = true;
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
  /** The `since` asked for belongs to another numbering of the room's seqs. */
  restarted: boolean;
}

/** What became of a message handed to {@linkcode Hub.say}. */
export type SayResult = "accepted" | "busy" | "closed";

type Pending =
  | { kind: "msg"; message: Omit<StoredMessage, "id" | "seq">; room: Room; sender: Member }
  | { kind: "event"; frame: Omit<EventFrame, "id">; room: Room; announce: boolean }
  | { kind: "bus"; item: BusItem };

/** A name's recent private messages, both ways, bounded in bytes. */
interface DirectLog {
  entries: { frame: DirectFrame; size: number }[];
  bytes: number;
}

/**
 * Who is online, the rooms, and the broadcast to them.
 *
 * @example
 * ```ts
 * import { Hub } from "./hub.ts";
 * import { jsonLines } from "./codec.ts";
 * const hub = new Hub({ announceLimit: 200, retention: 1000, maxRooms: 100, onOverflow: () => {} });
 * const member = { name: "", codec: jsonLines, op: false, address: "10.0.0.7", room: undefined, deliver: () => true };
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
  readonly #directLogs = new Map<string, DirectLog>();
  /** Names of dropped connections, held for their token until a time. */
  readonly #held = new Map<string, { token: string; until: number; address: string }>();
  readonly #options: HubOptions;
  readonly #journal: Journal;
  /** Mutes, bans and the message of the day. */
  readonly moderation: Moderation;
  #nextId = 1;
  #guests = 0;
  /** Bytes of history kept in all rooms. */
  #historyBytes = 0;
  #closed = false;
  // What waits for the batch being written.
  #pending: Pending[] = [];
  #pendingBytes = 0;
  #roomWrites = new Set<Room>();
  #writing: Promise<void> | undefined;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** With a shared journal: the names held across nodes. */
  readonly #cluster: SharedNames | undefined;
  /** This node's senders of messages still on their way round the journal. */
  readonly #senders = new Map<number, Member>();
  #nextTag = 1;
  /** With a cluster: where each name on another node is, and when each node was last heard. */
  readonly #remoteNames = new Map<string, { room: Room; node: string }>();
  readonly #nodesHeard = new Map<string, number>();
  /** Each name this node holds in the cluster, with the token its holder comes back with. */
  readonly #claims = new Map<string, string>();
  readonly #releases = new Set<Promise<void>>();
  /** What the journal handed back and is not applied yet, while a room it needs is loaded. */
  readonly #inbox: Numbered[] = [];
  #loadingRooms: Promise<void> | undefined;
  readonly #roomLoads = new Map<string, Promise<StoredRoom | undefined>>();
  #draining = false;
  /** Bus items whose publishing had an unknown outcome, to be published again first. */
  #uncertain: Tagged[] = [];
  /** Their size, counted against {@linkcode MAX_UNSTORED_BYTES} like what is pending. */
  #uncertainBytes = 0;

  constructor(options: HubOptions) {
    this.#options = options;
    this.#journal = options.journal ?? new MemoryJournal();
    this.#cluster = this.#journal.shared;
    this.moderation = new Moderation(options.bans);
    if (options.loaded) {
      this.#nextId = options.loaded.nextId;
      for (const stored of options.loaded.rooms) this.#restore(stored);
    }
    if (!this.#rooms.has(nameKey(DEFAULT_ROOM))) this.#newRoom(DEFAULT_ROOM);
    this.#journal.follow((items) => this.#receive(items));
    if (this.#cluster) this.#publishNow([{ kind: "sync", node: this.#journal.node }]);
  }

  /**
   * While a slow database has more than half of {@linkcode MAX_UNSTORED_BYTES}
   * waiting: a promise that settles when the batch being written is done.
   * Sessions wait on it before reading more, so the senders' TCP windows
   * fill and they slow down, rather than have their messages refused.
   */
  get backpressure(): Promise<void> | undefined {
    return this.#pendingBytes > MAX_UNSTORED_BYTES / 2 ? this.#writing : undefined;
  }

  /** Whether names and messages are shared with other nodes (`--redis`). */
  get shared(): boolean {
    return this.#cluster !== undefined;
  }

  /** How many members are online. */
  get size(): number {
    return this.#names.size;
  }

  /** Gives `member` the name if it is free; false when it is taken. */
  /**
   * Gives `member` the name if it is free; false when it is taken, or held
   * for a dropped connection whose `token` this is not.
   */
  claim(member: Member, name: string, token?: string): boolean {
    const key = nameKey(name);
    if (this.#closed || this.#names.has(key)) return false;
    const hold = this.#held.get(key);
    if (hold !== undefined) {
      if (hold.token !== token && hold.until > performance.now()) return false;
      this.#held.delete(key);
      if (hold.token !== token) this.#directLogs.delete(key); // the hold ran out: a new owner
    }
    member.name = name;
    this.#names.set(key, member);
    return true;
  }

  /**
   * {@linkcode Hub.claim}, and with a cluster the name on every node too:
   * `own` is the token its holder will come back with. `resumed` when the
   * name was held for the token presented (a client back, perhaps from a
   * node that died). Rejects when the shared store cannot be reached.
   */
  async claimShared(
    member: Member,
    name: string,
    token: string | undefined,
    own: string,
  ): Promise<boolean | "resumed"> {
    if (!this.claim(member, name, token)) return false;
    const cluster = this.#cluster;
    if (!cluster) return true;
    const key = nameKey(name);
    let claimed: false | "free" | "resumed";
    try {
      claimed = await cluster.claim(key, token, own);
    } catch (error) {
      if (this.#names.get(key) === member) this.#names.delete(key);
      throw error;
    }
    if (!claimed || this.#names.get(key) !== member) {
      if (this.#names.get(key) === member) this.#names.delete(key);
      if (claimed) cluster.release(key, own).catch(() => {});
      return false;
    }
    this.#claims.set(key, own);
    if (claimed === "free") return true;
    // Back with its token, maybe from another node: a connection there is replaced, as here.
    this.#publishNow([{ kind: "takeover", node: this.#journal.node, key }]);
    // Nobody was told it left if another node still had it (alive, or dead and not yet
    // forgotten): then it comes back without a notice.
    return this.#remoteNames.has(key) ? "resumed" : true;
  }

  /**
   * With a cluster, for a client back from another node: the private
   * messages to or from its name after `afterId`, from the store, that it
   * has not been sent live here meanwhile. Copies the bus brings later are
   * not sent again.
   */
  async sharedDirectsAfter(member: Member, afterId: number): Promise<DirectFrame[]> {
    const cluster = this.#cluster;
    if (!cluster) return this.directsAfter(member, afterId);
    const directs = member.directs ??= {};
    let kept: DirectFrame[];
    try {
      kept = await cluster.directsAfter(nameKey(member.name), afterId);
    } catch {
      kept = [];
    }
    const { firstLive } = directs;
    if (firstLive !== undefined) {
      directs.floor = firstLive - 1; // from there on, the bus delivers them
      return kept.filter((frame) => frame.id < firstLive);
    }
    directs.floor = Math.max(afterId, ...kept.map((frame) => frame.id));
    return kept;
  }

  /** With a cluster: lets go of a name on every node. */
  #unclaim(key: string): void {
    const own = this.#claims.get(key);
    if (own === undefined) return;
    this.#claims.delete(key);
    const release = this.#cluster?.release(key, own).catch(() => {}); // else its lease runs out
    if (!release) return;
    this.#releases.add(release);
    release.finally(() => this.#releases.delete(release));
  }

  /** How long a name is still held for a dropped connection, in ms; 0 if it is not. */
  heldFor(name: string): number {
    const hold = this.#held.get(nameKey(name));
    return hold === undefined ? 0 : Math.max(0, hold.until - performance.now());
  }

  /** Whether a room of that name exists now. */
  hasRoom(name: string): boolean {
    return this.#rooms.has(nameKey(name));
  }

  /** Who holds a name, if anyone. */
  holder(name: string): Member | undefined {
    return this.#names.get(nameKey(name));
  }

  /** A free name of the form `guestN`. */
  guestName(): string {
    for (;;) {
      const name = `guest${++this.#guests}`;
      if (!this.#names.has(nameKey(name)) && !this.#held.has(nameKey(name))) return name;
    }
  }

  /**
   * Moves `member` into a room (leaving its current one), creating the room
   * if need be. Returns what to replay: the messages after `since` when it
   * is given (resuming) and belongs to the room's current `epoch`,
   * otherwise the last `history` ones. Undefined when the room would be one
   * too many.
   */
  enter(
    member: Member,
    roomName: string,
    options: { history: number; since?: number; epoch?: string },
  ): Entry | undefined {
    let room = this.#rooms.get(nameKey(roomName));
    if (room === undefined) {
      if (!this.#roomToSpare()) return undefined;
      this.#load(roomName, () => true); // made now, unless the journal is read asynchronously
      room = this.#rooms.get(nameKey(roomName)) ?? this.#newRoom(roomName);
    }
    if (member.room === room) return { room, replay: [], gone: 0, restarted: false };
    if (member.room) this.#exit(member, `went to ${room.name}`, false);
    room.members.set(nameKey(member.name), member);
    if (member.op) room.ops.add(member);
    room.emptySince = undefined;
    member.room = room;

    const { since, epoch } = options;
    const history = room.history;
    if (since !== undefined) {
      const sameNumbering = (epoch === undefined || epoch === room.epoch) &&
        since <= room.relayedSeq;
      if (sameNumbering) {
        const oldest = history.oldestSeq ?? room.relayedSeq + 1;
        const gone = Math.max(0, oldest - 1 - since);
        return { room, replay: history.after(since), gone, restarted: false };
      }
    }
    const replay = history.last(Math.min(options.history, history.capacity));
    return { room, replay, gone: 0, restarted: since !== undefined };
  }

  /** Tells the member's room that it joined (while the room is small enough). */
  announceJoin(member: Member, { quietly = false } = {}): void {
    const room = member.room;
    if (this.#closed || !room) return;
    if (quietly && !this.#cluster) return;
    const announce = !quietly && room.online <= this.#options.announceLimit;
    if (announce || this.#cluster) this.#emit(room, { event: "join", name: member.name }, announce);
    // Other nodes mark an operator who came in with its token (no one else is told).
    if (this.#cluster && member.op) this.#emit(room, { event: "op", name: member.name }, false);
  }

  /**
   * Renames `member`; false when the new name is someone else's. Changing
   * only the case of one's own name is allowed.
   */
  /**
   * {@linkcode Hub.rename}, and with a cluster the new name claimed on every
   * node and the old one let go. Rejects when the shared store cannot be
   * reached.
   */
  async renameShared(member: Member, name: string, own: string): Promise<boolean> {
    const cluster = this.#cluster;
    if (!cluster) return this.rename(member, name);
    const key = nameKey(name);
    const oldKey = nameKey(member.name);
    if (key === oldKey) return this.rename(member, name);
    const holder = this.#names.get(key);
    if ((holder !== undefined && holder !== member) || this.heldFor(name) > 0) return false;
    if (!await cluster.claim(key, undefined, own)) return false; // taken on some node
    if (this.#names.get(oldKey) !== member || !this.rename(member, name)) {
      cluster.release(key, own).catch(() => {});
      return false;
    }
    this.#claims.set(key, own);
    this.#unclaim(oldKey);
    return true;
  }

  rename(member: Member, name: string): boolean {
    const key = nameKey(name);
    const holder = this.#names.get(key);
    if (holder !== undefined && holder !== member) return false;
    if (this.heldFor(name) > 0) return false;
    const old = member.name;
    const oldKey = nameKey(old);
    this.#names.delete(oldKey);
    member.room?.members.delete(oldKey);
    member.name = name;
    this.#names.set(key, member);
    member.room?.members.set(key, member);
    const log = this.#directLogs.get(oldKey);
    if (log) {
      this.#directLogs.delete(oldKey);
      this.#directLogs.set(key, log);
    }
    if (member.room) this.#emit(member.room, { event: "rename", name, from: old });
    return true;
  }

  /**
   * Removes `member` if it is online and tells its room why it left, unless
   * `announce` is false (a takeover by the same user's new connection, or a
   * removal an operator's event already told). The name's recent private
   * messages are kept for a takeover (`keepDirects`) or a `hold`: the name
   * then waits for its token for `hold.ms`.
   */
  leave(
    member: Member,
    reason: string,
    options: { announce?: boolean; keepDirects?: boolean; hold?: { token: string; ms: number } } =
      {},
  ): void {
    const key = nameKey(member.name);
    if (this.#names.get(key) !== member) return;
    this.#names.delete(key);
    const { announce = true, keepDirects = false, hold } = options;
    if (hold && hold.ms > 0 && !this.#closed) {
      this.#held.set(key, {
        token: hold.token,
        until: performance.now() + hold.ms,
        address: member.address,
      });
    } else {
      if (!keepDirects) this.#directLogs.delete(key);
      if (!keepDirects) this.#unclaim(key);
    }
    if (member.room) this.#exit(member, reason, !announce);
  }

  /**
   * Housekeeping, about once a second: lets go of names held past their
   * time, and removes rooms that have been empty, without a topic, for
   * `roomExpiryMs`.
   */
  expire(now: number, roomExpiryMs: number): void {
    for (const [key, hold] of this.#held) {
      if (hold.until > now) continue;
      this.#held.delete(key);
      this.#directLogs.delete(key);
      this.#unclaim(key);
    }
    for (const room of this.#rooms.values()) {
      room.arena.idle();
      if (room.emptySince === undefined || now - room.emptySince < roomExpiryMs) continue;
      if (room.online === 0 && room.disposable) this.#dispose(room);
    }
  }

  /** Lets go of an empty room (a journal that keeps rooms keeps it, to be recalled). */
  #dispose(room: Room): void {
    this.#rooms.delete(nameKey(room.name));
    this.#roomWrites.delete(room);
    this.#historyBytes -= room.history.bytes;
  }

  /**
   * Room for one more when `maxRooms` are there: the empty, unpinned room
   * left longest ago (and longer ago than `keepEmptyRoomMs`) goes, so that
   * rooms nobody is in cannot keep others from making one. False when
   * every room is in use, pinned or only just left.
   */
  #makeRoomForOne(): boolean {
    let oldest: Room | undefined;
    const leftBefore = performance.now() - (this.#options.keepEmptyRoomMs ?? 0);
    for (const room of this.#rooms.values()) {
      if (room.online > 0 || !room.disposable) continue;
      if (room.emptySince === undefined || room.emptySince > leftBefore) continue;
      if (oldest === undefined || (room.emptySince ?? 0) < (oldest.emptySince ?? 0)) oldest = room;
    }
    if (oldest) this.#dispose(oldest);
    return oldest !== undefined;
  }

  /** The names of the operators in a room, sorted. */
  opsIn(room: Room): string[] {
    const remote = [...room.remote.values()].flatMap((r) => r.op ? [r.name] : []);
    return [...[...room.ops].map((member) => member.name), ...remote].sort();
  }

  /** Makes `member` an operator and tells its room. */
  makeOperator(member: Member): void {
    if (member.op) return;
    member.op = true;
    this.#log(`op ${member.name} is now an operator`);
    if (!member.room) return;
    member.room.ops.add(member);
    this.#emit(member.room, { event: "op", name: member.name });
  }

  /** Whether a room exists; `room` for an operator's topic elsewhere. */
  room(name: string): Room | undefined {
    return this.#rooms.get(nameKey(name));
  }

  /**
   * An operator removes someone: the target's room (and the operator's) is
   * told, then the server closes the target's connection. Undefined when
   * nobody online has the name.
   */
  kick(by: Member, name: string, reason: string): boolean {
    const target = this.#names.get(nameKey(name));
    if (target === undefined) {
      // On another node: that node removes it when the kick comes round the bus.
      const where = this.#remoteNames.get(nameKey(name));
      if (where === undefined) return false;
      this.#moderated(by, where.room.remote.get(nameKey(name))!.name, where.room, {
        event: "kick",
        reason,
      });
      return true;
    }
    this.#moderated(by, target.name, target.room, { event: "kick", reason });
    this.#remove(target, "kick", by.name, reason);
    return true;
  }

  /** Closes a member's connection for a kick or a ban, telling it who did it and why. */
  #remove(
    target: Member,
    event: "kick" | "ban",
    by: string,
    reason?: string,
    minutes?: number,
  ): void {
    if (event === "kick") {
      const message = `you were removed by ${by}${reason ? `: ${reason}` : ""}`;
      this.#options.onRemove?.(
        target,
        { type: "error", code: "kicked", message },
        `kicked by ${by}`,
      );
      return;
    }
    const time = minutes === undefined
      ? "until an operator lifts it"
      : `for ${count(minutes, "minute")}`;
    this.#options.onRemove?.(
      target,
      {
        type: "error",
        code: "banned",
        message: `you were banned by ${by} ${time}${reason ? `: ${reason}` : ""}`,
      },
      `banned by ${by}`,
    );
  }

  /** With a cluster: what an operator on another node did, done here too. */
  #moderateFromBus(frame: EventFrame): void {
    const key = nameKey(frame.name);
    const target = this.#names.get(key);
    const by = frame.by ?? "?";
    switch (frame.event) {
      case "kick":
        if (target) this.#remove(target, "kick", by, frame.reason);
        return;
      case "mute": {
        const until = Date.now() + (frame.minutes ?? 10) * 60_000;
        this.moderation.mute(
          key,
          frame.name,
          until,
          target?.address ?? this.#held.get(key)?.address,
        );
        return;
      }
      case "ban": {
        const address = target?.address ?? this.#held.get(key)?.address;
        const ban: BanRecord = {
          key,
          name: frame.name,
          reason: frame.reason ?? "",
          ...(address === undefined ? {} : { address }),
          ...(frame.minutes === undefined ? {} : { until: Date.now() + frame.minutes * 60_000 }),
        };
        this.moderation.ban(ban);
        if (address !== undefined) this.#journal.saveBan(ban); // the address only this node knew
        if (target) this.#remove(target, "ban", by, frame.reason, frame.minutes);
        return;
      }
      case "unban":
        this.moderation.unmute(key);
        this.moderation.unban(key);
        return;
      case "motd":
        this.moderation.motd = frame.text ?? "";
        return;
    }
  }

  /** An operator silences a name (online or not) for `minutes`; the rooms concerned are told. */
  mute(by: Member, name: string, minutes: number): void {
    const key = nameKey(name);
    const target = this.#names.get(key);
    const address = target?.address ?? this.#held.get(key)?.address;
    this.moderation.mute(key, target?.name ?? name, Date.now() + minutes * 60_000, address);
    const room = target?.room ?? this.#remoteNames.get(key)?.room;
    this.#moderated(by, target?.name ?? name, room, { event: "mute", minutes });
  }

  /**
   * An operator bans a name, and the address it is online from, for
   * `minutes` (or until lifted); it is removed if online.
   */
  ban(by: Member, name: string, minutes: number | undefined, reason: string): void {
    const key = nameKey(name);
    const target = this.#names.get(key);
    // A dropped user's name is held with the address it came from: ban that one too.
    const address = target?.address ?? this.#held.get(key)?.address;
    const ban: BanRecord = {
      key,
      name: target?.name ?? name,
      reason,
      ...(address === undefined ? {} : { address }),
      ...(minutes === undefined ? {} : { until: Date.now() + minutes * 60_000 }),
    };
    this.moderation.ban(ban);
    this.#journal.saveBan(ban);
    this.#moderated(by, ban.name, target?.room ?? this.#remoteNames.get(key)?.room, {
      event: "ban",
      ...(minutes === undefined ? {} : { minutes }),
      ...(reason ? { reason } : {}),
    });
    if (target) this.#remove(target, "ban", by.name, reason, minutes);
  }

  /**
   * An operator lifts a ban and a mute on a name. When there was neither,
   * says which name's mute or ban covers it through its address, if any.
   */
  unban(by: Member, name: string): { lifted: true } | { lifted: false; coveredBy?: string } {
    const key = nameKey(name);
    const muted = this.moderation.unmute(key);
    const ban = this.moderation.unban(key);
    if (!ban && !muted) {
      const address = this.#names.get(key)?.address ?? this.#held.get(key)?.address;
      if (address === undefined) return { lifted: false };
      const coveredBy = this.moderation.mutedBy(key, address, Date.now()) ??
        this.moderation.bannedFor(key, address, Date.now())?.name;
      return coveredBy === undefined ? { lifted: false } : { lifted: false, coveredBy };
    }
    if (ban) this.#journal.removeBan(key);
    this.#moderated(by, ban?.name ?? name, this.#names.get(key)?.room, { event: "unban" });
    return { lifted: true };
  }

  /** An operator sets the message of the day, shown in every welcome. */
  setMotd(by: Member, text: string): void {
    this.moderation.motd = text;
    this.#journal.saveMotd(text);
    this.#moderated(by, by.name, undefined, { event: "motd", text });
  }

  /** Tells the operator's room, and the target's if another, and logs it. */
  #moderated(
    by: Member,
    name: string,
    targetRoom: Room | undefined,
    event: Pick<EventFrame, "event" | "reason" | "minutes" | "text">,
  ): void {
    const detail = event.minutes === undefined ? "" : ` for ${count(event.minutes, "minute")}`;
    const why = event.reason ? ` (${event.reason})` : event.text ? `: ${event.text}` : "";
    this.#log(`op ${by.name}: ${event.event} ${name}${detail}${why}`);
    for (const room of new Set([by.room, targetRoom])) {
      if (room) this.#emit(room, { ...event, name, by: by.name });
    }
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }

  /** Sets the topic of the member's room (or, for an operator, of `room`) and tells that room. */
  setTopic(member: Member, topic: string, room = member.room): void {
    if (!room) return;
    room.topic = topic;
    // An operator's topic keeps a room when it stands empty; anyone else's does not.
    if (member.op) room.pinned = topic !== "";
    this.#roomWrites.add(room);
    this.#scheduleFlush();
    if (room !== member.room) this.#log(`op ${member.name}: topic of ${room.name}: ${topic}`);
    this.#emit(room, { event: "topic", name: member.name, topic });
  }

  /**
   * Accepts a chat message from `member` into its room: `busy` when the
   * database is too far behind to take more, `closed` when shutting down.
   */
  say(member: Member, text: string, ref?: number, action = false): SayResult {
    const room = member.room;
    if (this.#closed || !room) return "closed";
    const waiting = this.#pendingBytes + this.#uncertainBytes;
    if (waiting + text.length * 3 > MAX_UNSTORED_BYTES) return "busy";
    const message: Omit<StoredMessage, "id" | "seq"> = {
      room: room.name,
      ts: Date.now(),
      from: member.name,
      text,
    };
    if (ref !== undefined) message.ref = ref;
    if (action) message.action = true;
    this.#pending.push({ kind: "msg", message, room, sender: member });
    this.#pendingBytes += text.length * 3; // at most 3 UTF-8 bytes per UTF-16 unit
    this.#roomWrites.add(room); // its row must exist beside its messages
    this.#scheduleFlush();
    return "accepted";
  }

  /** Sends a direct message; false when nobody has the name `to`. */
  direct(member: Member, to: string, text: string, ref?: number): boolean {
    // Numbered by the journal and delivered as it comes back, wherever the two are.
    const name = this.#names.get(nameKey(to))?.name ??
      this.#remoteNames.get(nameKey(to))?.room.remote.get(nameKey(to))?.name;
    if (name === undefined) return false;
    const item: BusItem = {
      kind: "dm",
      node: this.#journal.node,
      ts: Date.now(),
      from: member.name,
      to: name,
      text,
    };
    if (this.#cluster) item.keys = [...new Set([nameKey(member.name), nameKey(name)])];
    if (ref !== undefined) item.ref = ref;
    this.#publishNow([item]);
    return true;
  }

  /**
   * The private messages to or from `member`'s name with an id above
   * `afterId`, still kept: what a connection that took the name over may
   * have missed on the old one.
   */
  directsAfter(member: Member, afterId: number): DirectFrame[] {
    const log = this.#directLogs.get(nameKey(member.name));
    return log ? log.entries.flatMap(({ frame }) => frame.id > afterId ? [frame] : []) : [];
  }

  /**
   * Names in a room, sorted regardless of case; a sample of at most `limit`
   * when there are more. Sorted by the keys the room is indexed by: every
   * join asks for this, and a locale-aware compare costs far more.
   */
  names(room: Room, limit: number): string[] {
    const entries: [string, string][] = [];
    for (const [key, member] of room.members) {
      if (entries.length === limit) break;
      entries.push([key, member.name]);
    }
    for (const [key, { name }] of room.remote) {
      if (entries.length === limit) break;
      if (!room.members.has(key)) entries.push([key, name]);
    }
    return entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((e) => e[1]);
  }

  /** The rooms, by name, with how many are in each and the topic. */
  rooms(): { name: string; members: number; topic: string }[] {
    return [...this.#rooms.values()]
      .map((room) => ({ name: room.name, members: room.online, topic: room.topic }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * For shutdown: stops new messages, joins and notices, then stores and
   * relays what is pending; resolves when nothing is left to write.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.flush();
    while (this.#writing) await this.#writing;
  }

  /**
   * Writes what is pending to the journal, in order, unless a batch is
   * being written already; what comes back from it is relayed by
   * `#receive`, on every node alike.
   */
  flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.#writing) return;
    const journal = this.#journal;
    const pending = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    const rooms = [...this.#roomWrites].map((room) => room.record);
    this.#roomWrites.clear();
    // Items whose first try had an unknown outcome go first, in their order, before anything new.
    const retry = this.#uncertain;
    if (retry.length > 0) this.#setUncertain([]);
    if (pending.length === 0 && rooms.length === 0 && retry.length === 0) return;
    // Every item gets the next tag of this node's, in order: tried again, it is published once.
    // A journal that does not number keeps the hub's numbers, given here, in the same order.
    const hubNumbers = !journal.numbers;
    const fresh: Tagged[] = [];
    const refused: { member: Member; ref?: number; tag: number }[] = [];
    for (const item of pending) {
      const tag = this.#nextTag++;
      let tagged: Tagged;
      if (item.kind === "msg") {
        this.#senders.set(tag, item.sender);
        refused.push({ member: item.sender, ref: item.message.ref, tag });
        tagged = { kind: "msg", node: journal.node, tag, message: item.message };
        if (hubNumbers) tagged.seq = ++item.room.lastSeq;
      } else if (item.kind === "event") {
        const { type: _type, ts: _ts, room, ...event } = item.frame;
        tagged = { kind: "event", node: journal.node, room, event, announce: item.announce, tag };
      } else {
        tagged = { ...item.item, tag };
      }
      if (hubNumbers) tagged.id = this.#nextId++;
      fresh.push(tagged);
    }
    const items = retry.length > 0 ? [...retry, ...fresh] : fresh;
    let written: Promise<void> | void;
    try {
      written = journal.write(items, rooms);
    } catch (error) {
      written = Promise.reject(error);
    }
    if (written === undefined) return; // stored and relayed already
    this.#writing = written.then(
      () => {},
      (error) => {
        if (!(error instanceof NotSent)) {
          // It may have reached Redis before the connection went: try it all again (publishing
          // is idempotent) until Redis answers, so that senders hear for sure either way.
          this.#setUncertain(items);
          setTimeout(() => this.flush(), UNCERTAIN_RETRY_MS);
          return;
        }
        // Never stored: these messages are refused at once, and what was uncertain stays so.
        // Notices are the journal's to relay or let go (with Redis, the nodes learn again who
        // is where once it is back).
        if (hubNumbers) this.#unaccept(fresh);
        this.#setUncertain(retry);
        if (retry.length > 0) setTimeout(() => this.flush(), UNCERTAIN_RETRY_MS);
        for (const { tag } of refused) this.#senders.delete(tag);
        for (const item of fresh) {
          if (item.kind !== "dm") continue;
          const sender = this.#names.get(nameKey(item.from));
          if (sender) refused.push({ member: sender, ref: item.ref, tag: 0 });
        }
        if (refused.length > 0) this.#options.onStoreError?.(error, refused);
      },
    ).finally(() => {
      this.#writing = undefined;
      if (this.#pending.length > 0 || this.#roomWrites.size > 0) this.flush();
    });
  }

  /** Keeps items to publish again, and counts what they weigh. */
  #setUncertain(items: Tagged[]): void {
    this.#uncertain = items;
    this.#uncertainBytes = 0;
    for (const item of items) {
      if (item.kind === "msg") this.#uncertainBytes += item.message.text.length * 3;
      else if (item.kind === "dm") this.#uncertainBytes += item.text.length * 3;
    }
  }

  /** Writes items to the journal after what is pending. */
  #publishNow(items: BusItem[]): void {
    for (const item of items) this.#pending.push({ kind: "bus", item });
    this.#scheduleFlush();
  }

  /**
   * Relays what the journal hands back, in its order, the same on every
   * node: messages (into history, to the room), events, private messages,
   * and who is on which node.
   */
  #receive(items: Numbered[]): void {
    for (const item of items) this.#inbox.push(item);
    this.#drain();
  }

  /**
   * Applies what the journal handed back, in order; an item about a room
   * this node does not hold waits (and all after it) until the room is loaded.
   */
  #drain(): void {
    if (this.#draining) return; // the loop below goes on with what was added
    this.#draining = true;
    try {
      while (this.#loadingRooms === undefined && this.#inbox.length > 0) {
        const item = this.#inbox[0];
        const loads = roomsOf(item).flatMap((name) => this.#learn(name) ?? []);
        if (loads.length > 0) {
          this.#loadingRooms = Promise.all(loads).then(() => {
            this.#loadingRooms = undefined;
            this.#drain();
          });
          return;
        }
        this.#inbox.shift();
        this.#apply(item);
      }
    } finally {
      this.#draining = false;
    }
  }

  /**
   * Makes ready a room a member is about to enter that this node does not
   * hold: loaded from the journal if it keeps rooms (with `--redis`, a room
   * this node let go of or never had, with its history), or made new.
   * Nothing is made when it would be one room too many: then
   * {@linkcode Hub.enter} says so. A promise while the journal is read.
   */
  prepare(name: string): Promise<void> | undefined {
    if (this.#rooms.has(nameKey(name)) || !this.#roomToSpare()) return undefined;
    return this.#load(name, () => this.#roomToSpare());
  }

  /** Whether one more room may be made, letting an empty one go if need be. */
  #roomToSpare(): boolean {
    return this.#rooms.size < this.#options.maxRooms || this.#makeRoomForOne();
  }

  /**
   * A room another node has, or had, that this node does not hold: made
   * here too, to show who is in it, making room for it if it can; it
   * counts against `maxRooms` for the rooms this node's members make.
   */
  #learn(name: string): Promise<void> | undefined {
    if (this.#rooms.has(nameKey(name))) return undefined;
    return this.#load(name, () => {
      this.#roomToSpare();
      return true;
    });
  }

  /**
   * Reads a room from the journal and makes it, if `allowed()` still says
   * so then; a promise while the journal is read.
   */
  #load(name: string, allowed: () => boolean): Promise<void> | undefined {
    const key = nameKey(name);
    const make = (stored: StoredRoom | undefined) => {
      if (this.#rooms.has(key) || !allowed()) return;
      if (stored) this.#restore(stored);
      else this.#newRoom(name);
    };
    const cached = this.#roomLoads.get(key);
    const stored = cached ?? this.#journal.loadRoom(name);
    if (!(stored instanceof Promise)) {
      make(stored);
      return undefined;
    }
    if (cached === undefined) {
      this.#roomLoads.set(key, stored);
      stored.finally(() => this.#roomLoads.delete(key)).catch(() => {});
    }
    return stored.then(make, () => make(undefined)); // the store is away: start it empty
  }

  #apply(item: Numbered): void {
    const node = this.#journal.node;
    if (item.node !== node) {
      // A node not heard from (new, or back after Redis was away): ask who is where.
      const stranger = !this.#nodesHeard.has(item.node);
      this.#nodesHeard.set(item.node, performance.now());
      if (stranger && item.kind !== "members" && item.kind !== "sync") {
        this.#publishNow([{ kind: "sync", node }]);
      }
    }
    switch (item.kind) {
      case "msg": {
        const room = this.#roomFor(item.message.room);
        if (item.seq! <= room.relayedSeq) break; // loaded already
        room.lastSeq = Math.max(room.lastSeq, item.seq!);
        const sender = item.node === node ? this.#senders.get(item.tag) : undefined;
        this.#senders.delete(item.tag);
        const message: StoredMessage = { ...item.message, id: item.id, seq: item.seq! };
        this.#remember(room, message);
        const encodings = this.#deliver(room, messageFrame(message), sender);
        // A sender that moved on before its message came round still gets its confirmation.
        if (
          sender && sender.room !== room && sender.codec.echoesOwnMessages &&
          this.#names.get(nameKey(sender.name)) === sender
        ) {
          if (!sender.deliver(encodings.for(sender.codec))) this.#options.onOverflow(sender);
        }
        break;
      }
      case "event": {
        const room = this.#roomFor(item.room);
        const frame = {
          type: "event",
          id: item.id,
          ts: Date.now(),
          room: room.name,
          ...item.event,
        } as EventFrame;
        if (item.node !== node) {
          this.#follow(room, item.node, frame);
          this.#moderateFromBus(frame);
        }
        if (item.announce) this.#deliver(room, frame);
        break;
      }
      case "dm": {
        const frame: DirectFrame = {
          type: "dm",
          id: item.id,
          ts: item.ts,
          from: item.from,
          to: item.to,
          text: item.text,
        };
        // Only to members past their welcome: a name still being claimed has no room yet.
        const joined = (member: Member | undefined) => {
          if (!member?.room) return undefined;
          const directs = member.directs;
          if (directs?.floor !== undefined && item.id <= directs.floor) return undefined; // replayed
          if (directs && directs.firstLive === undefined) directs.firstLive = item.id;
          return member;
        };
        const target = joined(this.#names.get(nameKey(item.to)));
        const sender = joined(this.#names.get(nameKey(item.from)));
        const encodings = new Encodings(frame);
        if (target) {
          this.#logDirect(nameKey(target.name), frame, encodings.for(jsonLines).length);
          if (!target.deliver(encodings.for(target.codec))) this.#options.onOverflow(target);
        }
        if (sender && item.node === node && sender !== target) {
          const confirmation = item.ref === undefined ? frame : { ...frame, ref: item.ref };
          this.#logDirect(nameKey(sender.name), frame, encodings.for(jsonLines).length);
          if (
            sender.codec.echoesOwnMessages &&
            !sender.deliver(new Encodings(confirmation).for(sender.codec))
          ) {
            this.#options.onOverflow(sender);
          }
        }
        break;
      }
      case "sync":
        if (item.node !== node) this.#publishNow([this.#membersItem(node)]);
        break;
      case "members":
        if (item.node === node) break;
        this.#forgetNode(item.node);
        for (const { name, room, op } of item.members) {
          const into = this.#roomFor(room);
          this.#follow(into, item.node, { event: "join", name } as EventFrame);
          if (op) this.#follow(into, item.node, { event: "op", name } as EventFrame);
        }
        break;
      case "takeover": {
        const member = this.#names.get(item.key);
        if (item.node === node) break;
        this.#claims.delete(item.key); // the other node holds it now
        if (member) this.#options.onReplaced?.(member);
        break;
      }
      case "beat":
        break;
    }
  }

  /** Keeps the picture of who is where on other nodes, from their events. */
  #follow(
    room: Room,
    node: string,
    frame: Pick<EventFrame, "event" | "name" | "from" | "topic">,
  ): void {
    const place = (name: string) => {
      const key = nameKey(name);
      this.#remoteNames.get(key)?.room.remote.delete(key);
      room.remote.set(key, { name, node });
      this.#remoteNames.set(key, { room, node });
      room.emptySince = undefined;
    };
    const remove = (name: string) => {
      const key = nameKey(name);
      const where = this.#remoteNames.get(key);
      if (where?.node !== node) return; // it went on elsewhere meanwhile
      where.room.remote.delete(key);
      this.#remoteNames.delete(key);
      if (where.room.online === 0 && where.room.disposable) {
        where.room.emptySince = performance.now();
      }
    };
    switch (frame.event) {
      case "join":
        return place(frame.name);
      case "leave":
      case "kick":
      case "ban":
        return remove(frame.name);
      case "rename":
        remove(frame.from ?? "");
        return place(frame.name);
      case "topic":
        room.topic = frame.topic ?? "";
        return;
      case "op": {
        const entry = room.remote.get(nameKey(frame.name));
        if (entry) entry.op = true;
        return;
      }
    }
  }

  /** Forgets who was on `node` (it went quiet, or says afresh who is there). */
  #forgetNode(node: string): { name: string; room: Room }[] {
    const forgotten: { name: string; room: Room }[] = [];
    for (const [key, where] of this.#remoteNames) {
      if (where.node !== node) continue;
      forgotten.push({ name: where.room.remote.get(key)!.name, room: where.room });
      where.room.remote.delete(key);
      this.#remoteNames.delete(key);
    }
    return forgotten;
  }

  /** Who is on this node, for a node that asks. */
  #membersItem(node: string): BusItem {
    const members = [...this.#names.values()].flatMap((m) =>
      m.room ? [{ name: m.name, room: m.room.name, ...(m.op ? { op: true } : {}) }] : []
    );
    return { kind: "members", node, members };
  }

  /**
   * With a cluster, about once a second: says this node is alive (every
   * few seconds) and forgets nodes not heard from for `deadAfterMs`.
   */
  heartbeat(now: number, deadAfterMs: number): void {
    const cluster = this.#cluster;
    if (!cluster || this.#closed) return;
    for (const [node, heard] of this.#nodesHeard) {
      if (now - heard < deadAfterMs) continue;
      this.#nodesHeard.delete(node);
      const forgotten = this.#forgetNode(node);
      this.#log(`node ${node} went quiet; its members are forgotten`);
      // One node, elected through the store, tells the rooms who is gone for good: those
      // who have not come back on another node meanwhile.
      cluster.elect(`gone:${node}`).then((elected) => {
        if (!elected || this.#closed) return;
        for (const { name, room } of forgotten) {
          const key = nameKey(name);
          if (this.#names.has(key) || this.#remoteNames.has(key)) continue;
          const announce = room.online < this.#options.announceLimit;
          this.#emit(room, { event: "leave", name, reason: "their server stopped" }, announce);
        }
      }, () => {});
    }
    this.#publishNow([{ kind: "beat", node: this.#journal.node }]);
  }

  /** The names this node holds in the cluster, to renew their leases. */
  get claims(): { key: string; own: string }[] {
    return [...this.#claims].map(([key, own]) => ({ key, own }));
  }

  /** This node says it is leaving: the others forget its members. */
  async leaveCluster(): Promise<void> {
    const cluster = this.#cluster;
    if (!cluster) return;
    for (const key of [...this.#claims.keys()]) this.#unclaim(key); // held names too
    await Promise.all(this.#releases);
    const members: Tagged = { kind: "members", node: this.#journal.node, members: [], tag: 0 };
    members.tag = this.#nextTag++;
    try {
      await this.#journal.write([members], []);
    } catch {
      // The others forget this node when it goes quiet.
    }
  }

  /** A room, made if this node has not seen it yet. */
  #roomFor(name: string): Room {
    return this.#rooms.get(nameKey(name)) ?? this.#newRoom(name);
  }

  /** Makes a room again as it was stored. */
  #restore(stored: StoredRoom): Room {
    const room = new Room(stored.name, this.#journal.epoch ?? stored.epoch, this.#historyLimits());
    room.topic = stored.topic;
    room.pinned = stored.pinned;
    room.lastSeq = stored.lastSeq;
    this.#rooms.set(nameKey(room.name), room);
    for (const message of stored.recent) this.#remember(room, message);
    if (room.disposable) room.emptySince = performance.now();
    return room;
  }

  /** Makes a room, empty, to be stored; it goes again if nobody enters it. */
  #newRoom(name: string): Room {
    const room = new Room(name, this.#journal.epoch ?? newEpoch(), this.#historyLimits());
    this.#rooms.set(nameKey(name), room);
    this.#roomWrites.add(room);
    if (room.disposable) room.emptySince = performance.now();
    return room;
  }

  /** Gives back the seqs of messages that could not be stored. */
  #unaccept(items: Tagged[]): void {
    for (const item of items) {
      if (item.kind !== "msg") continue;
      const room = this.#rooms.get(nameKey(item.message.room));
      if (room && item.seq! <= room.lastSeq) room.lastSeq = item.seq! - 1;
    }
  }

  #logDirect(key: string, frame: DirectFrame, size: number): void {
    let log = this.#directLogs.get(key);
    if (!log) this.#directLogs.set(key, log = { entries: [], bytes: 0 });
    log.entries.push({ frame, size });
    log.bytes += size;
    while (log.bytes > DIRECT_LOG_BYTES && log.entries.length > 1) {
      log.bytes -= log.entries.shift()!.size;
    }
  }

  /** Writes soon, gathering what comes meanwhile into one batch; at once to a journal in memory. */
  #scheduleFlush(): void {
    if (this.#journal.immediate) this.flush();
    else this.#flushTimer ??= setTimeout(() => this.flush(), 0);
  }

  #exit(member: Member, reason: string, silent: boolean): void {
    const room = member.room!;
    room.members.delete(nameKey(member.name));
    room.ops.delete(member);
    member.room = undefined;
    const announce = !silent && room.online < this.#options.announceLimit;
    if (!this.#closed && (announce || this.#cluster)) {
      this.#emit(room, { event: "leave", name: member.name, reason }, announce);
    }
    if (room.online > 0 || !room.disposable) return;
    // Nothing said in it, and nothing on its way to the journal: it goes at once.
    if (room.lastSeq === 0 && room.topic === "" && !this.#roomWrites.has(room)) this.#dispose(room);
    else room.emptySince = performance.now(); // removed by expire() if nobody comes back
  }

  /** Sends an event through the journal, after what was accepted before it. */
  #emit(
    room: Room,
    event: Pick<
      EventFrame,
      "event" | "name" | "from" | "reason" | "topic" | "by" | "minutes" | "text"
    >,
    announce = true,
  ): void {
    const frame: Omit<EventFrame, "id"> = {
      type: "event",
      ts: Date.now(),
      room: room.name,
      ...event,
    };
    this.#pending.push({ kind: "event", frame, room, announce });
    this.#scheduleFlush();
  }

  #historyLimits(): { retention: number; maxBytes?: number } {
    return { retention: this.#options.retention, maxBytes: this.#options.roomHistoryBytes };
  }

  /**
   * Keeps a message for replay within the room's limits and the server's:
   * over the server's budget, the room holding the most gives up its oldest.
   */
  #remember(room: Room, message: StoredMessage): void {
    this.#historyBytes += room.history.push(message);
    const budget = this.#options.historyBytes ?? Infinity;
    while (this.#historyBytes > budget) {
      let largest = room;
      for (const other of this.#rooms.values()) {
        if (other.history.bytes > largest.history.bytes) largest = other;
      }
      const freed = largest.history.dropOldest();
      if (freed === 0) break;
      this.#historyBytes -= freed;
    }
  }

  /** Delivers a frame to everyone in `room`, encoded once per codec; returns the encodings. */
  #deliver(room: Room, frame: MessageFrame | EventFrame, sender?: Member): Encodings {
    // A client that is not sent its own messages would leave gaps in the room's slabs, which
    // it could hold on to unread: those messages are kept outside them (see frame_arena.ts).
    const gaps = sender !== undefined && !sender.codec.echoesOwnMessages;
    const encodings = new Encodings(frame, gaps ? undefined : room.arena);
    let overflowed: Member[] | undefined;
    for (const member of room.members.values()) {
      if (member === sender && !member.codec.echoesOwnMessages) continue;
      if (!member.deliver(encodings.for(member.codec))) (overflowed ??= []).push(member);
    }
    for (const member of overflowed ?? []) this.#options.onOverflow(member);
    return encodings;
  }
}

/** The rooms an item from the journal is about, which must be held before it is applied. */
function roomsOf(item: Numbered): string[] {
  switch (item.kind) {
    case "msg":
      return [item.message.room];
    case "event":
      return [item.room];
    case "members":
      return item.members.map((m) => m.room);
    default:
      return [];
  }
}

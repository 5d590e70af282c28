/**
 * The journal: the one interface through which the hub stores what it
 * accepted and hears it back, numbered and in order, to relay it.
 *
 * The hub never relays a message straight from a sender. It hands its
 * accepted messages, notices and private messages to the journal with
 * {@linkcode Journal.write}, and relays what the journal hands back through
 * {@linkcode Journal.follow}, in the journal's order. Three journals:
 *
 * - in memory (`store/memory.ts`): nothing to store; handed back at once;
 * - SQLite (`--db`, `store/writer.ts`): a batch is written in one
 *   transaction on the database's thread, then handed back;
 * - Redis (`--redis`, `store/redis.ts`): a bus shared by several nodes,
 *   which numbers the items itself and hands every node what any node
 *   wrote, so that all of them relay one order.
 *
 * A journal of one server keeps the numbers the hub gave (`numbers` is
 * false); a shared one gives its own. Only a shared journal has `shared`,
 * the names held across nodes.
 *
 * @module
 */

import type { DirectFrame } from "../protocol.ts";
import type { BanRecord } from "../server/moderation.ts";
import type { RoomRecord, StoredMessage, StoredRoom } from "./sqlite.ts";

/** An item the hub writes to its journal; a shared journal adds `id` (and `seq` to a message). */
export type BusItem =
  | {
    kind: "msg";
    node: string;
    /** The sending node's own number for it, to find its sender when it comes back. */
    tag: number;
    message: Omit<StoredMessage, "id" | "seq">;
  }
  | {
    kind: "event";
    node: string;
    room: string;
    /** The event's fields besides type, id, ts and room. */
    event: Record<string, unknown>;
    /** Whether members are shown it (join and leave notices stop in big rooms). */
    announce: boolean;
  }
  | {
    kind: "dm";
    node: string;
    ts: number;
    from: string;
    to: string;
    text: string;
    ref?: number;
    /** The name keys of its sender and target, whose logs keep it. */
    keys?: string[];
  }
  | { kind: "members"; node: string; members: { name: string; room: string; op?: boolean }[] }
  | { kind: "sync"; node: string }
  | { kind: "beat"; node: string }
  | { kind: "takeover"; node: string; key: string };

/** An item as the hub writes it: tagged in order, and numbered already for a journal that does not number. */
export type Tagged = BusItem & { tag: number; id?: number; seq?: number };

/** An item as the journal hands it back: numbered. */
export type Numbered = BusItem & { id: number; seq?: number };

/**
 * What {@linkcode Journal.write} rejects with when nothing was stored, for
 * sure: the senders are told so. Any other rejection leaves the outcome
 * unknown, and the hub writes the same items again (tags make that safe).
 */
export class NotSent extends Error {}

/** Where accepted messages are stored and put in order before they are relayed. */
export interface Journal {
  /** This node's name (a journal of one server has one node). */
  readonly node: string;
  /** The numbering of seqs the nodes share; undefined when each room has its own. */
  readonly epoch?: string;
  /** Whether it numbers items itself (a shared bus) rather than keep the hub's numbers. */
  readonly numbers: boolean;
  /** Whether it stores nothing that takes time: the hub writes at once rather than gather a batch. */
  readonly immediate: boolean;
  /**
   * Stores items (in their order) and room records; what it stored comes
   * back through {@linkcode Journal.follow}. Undefined when that happened
   * already; rejects with {@linkcode NotSent} when nothing was stored.
   */
  write(items: Tagged[], rooms: RoomRecord[]): Promise<void> | void;
  /** Hands every numbered item to `relay`, in the one order; called once. */
  follow(relay: (items: Numbered[]) => void): void;
  /** A room as stored, with its recent messages; undefined if there is none. */
  loadRoom(name: string): StoredRoom | undefined | Promise<StoredRoom | undefined>;
  /** Keeps a ban across restarts. */
  saveBan(ban: BanRecord): void;
  /** Forgets a ban on a name's key. */
  removeBan(key: string): void;
  /** Keeps the message of the day, where the journal outlives the server. */
  saveMotd(text: string): void;
  /** With several nodes: the names held across them. */
  readonly shared?: SharedNames;
}

/** Names held across the nodes of a shared journal, and what is kept per name. */
export interface SharedNames {
  /** Claims a name on every node: free, or held under the token `presented`. */
  claim(
    key: string,
    presented: string | undefined,
    own: string,
  ): Promise<false | "free" | "resumed">;
  /** Lets a name go on every node. */
  release(key: string, own: string): Promise<void>;
  /** True for the one node that asks first about `topic` (within a minute). */
  elect(topic: string): Promise<boolean>;
  /** The private messages to or from a name key with an id above `afterId`, still kept. */
  directsAfter(key: string, afterId: number): Promise<DirectFrame[]>;
}

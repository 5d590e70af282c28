/**
 * The recent messages of one room, for replay: the last `capacity` of them,
 * or fewer when they would take more than the room's byte budget, found by
 * seq in constant time.
 *
 * Seqs in a room have no gaps, so the message with seq `s` sits at a fixed
 * offset from the oldest one kept. Old slots are cleared as they fall out,
 * so a room holds at most `capacity` messages however long it lives.
 *
 * @module
 */

import type { StoredMessage } from "../store/sqlite.ts";

/**
 * A room's retained messages, oldest first.
 *
 * @example
 * ```ts
 * import { RoomHistory } from "./history.ts";
 * const history = new RoomHistory(2);
 * for (const seq of [1, 2, 3]) {
 *   history.push({ room: "lobby", seq, id: seq, ts: 0, from: "ada", text: `m${seq}` });
 * }
 * history.after(1).map((m) => m.seq); // [2, 3]: seq 1 is no longer kept
 * history.last(1).map((m) => m.seq); // [3]
 * ```
 */
export class RoomHistory {
  readonly capacity: number;
  readonly maxBytes: number;
  #slots: (StoredMessage | undefined)[] = [];
  #head = 0;
  #bytes = 0;

  constructor(capacity: number, options: { maxBytes?: number } = {}) {
    this.capacity = capacity;
    this.maxBytes = options.maxBytes ?? Infinity;
  }

  /** Memory the kept messages take, as {@linkcode messageBytes} counts it. */
  get bytes(): number {
    return this.#bytes;
  }

  /** How many messages are kept. */
  get length(): number {
    return this.#slots.length - this.#head;
  }

  /** The seq of the oldest message kept, or undefined when empty. */
  get oldestSeq(): number | undefined {
    return this.#slots[this.#head]?.seq;
  }

  /** The seq of the newest message kept, or 0 when empty. */
  get lastSeq(): number {
    return this.#slots.at(-1)?.seq ?? 0;
  }

  /** Appends the next message (its seq one more than the last); returns the bytes it added. */
  push(message: StoredMessage): number {
    const size = messageBytes(message);
    this.#slots.push(message);
    this.#bytes += size;
    let freed = 0;
    while (this.length > this.capacity || (this.#bytes > this.maxBytes && this.length > 1)) {
      freed += this.dropOldest();
    }
    return size - freed;
  }

  /** Forgets the oldest message kept; returns the bytes that freed. */
  dropOldest(): number {
    const oldest = this.#slots[this.#head];
    if (oldest === undefined) return 0;
    this.#slots[this.#head++] = undefined;
    const size = messageBytes(oldest);
    this.#bytes -= size;
    // Compact once the cleared prefix is as long as what is kept: amortised O(1).
    if (this.#head >= Math.max(16, this.length)) {
      this.#slots = this.#slots.slice(this.#head);
      this.#head = 0;
    }
    return size;
  }

  /** The message with this seq, if it is still kept. */
  at(seq: number): StoredMessage | undefined {
    const oldest = this.oldestSeq;
    return oldest === undefined || seq < oldest
      ? undefined
      : this.#slots[this.#head + seq - oldest];
  }

  /** The messages with a seq above `seq`, oldest first. */
  after(seq: number): StoredMessage[] {
    const oldest = this.oldestSeq;
    if (oldest === undefined) return [];
    const from = Math.max(0, seq + 1 - oldest);
    return this.#slots.slice(this.#head + from) as StoredMessage[];
  }

  /** The last `count` messages, oldest first. */
  last(count: number): StoredMessage[] {
    if (count <= 0) return [];
    return this.#slots.slice(Math.max(this.#head, this.#slots.length - count)) as StoredMessage[];
  }
}

/**
 * What a message costs to keep in memory, counted high: V8 may store a
 * string at two bytes a character, plus the object around it.
 *
 * @example
 * ```ts
 * import { messageBytes } from "./history.ts";
 * messageBytes({ room: "lobby", seq: 1, id: 1, ts: 0, from: "ada", text: "hi" }); // 134
 * ```
 */
export function messageBytes(message: StoredMessage): number {
  return 2 * (message.text.length + message.from.length) + MESSAGE_OVERHEAD;
}
const MESSAGE_OVERHEAD = 124;

/**
 * A new epoch: the name of one numbering of a room's seqs. A room gets a new
 * one whenever its seqs start again at 1 (a restart without `--db`, a room
 * made anew), so a client can tell new messages from a numbering that
 * restarted.
 *
 * @example
 * ```ts
 * import { newEpoch } from "./history.ts";
 * newEpoch(); // e.g. "9f86d081884c"
 * ```
 */
export function newEpoch(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 12);
}

/**
 * A bounded, coalescing outbound queue for one connection.
 *
 * The broadcaster must never wait for a recipient, so it only appends bytes
 * here ({@linkcode OutboundQueue.push} is synchronous). One writer per queue
 * drains it: each round it joins everything queued so far into a single
 * write, so a burst of small frames costs one system call rather than many.
 * A room's frames mostly lie one after another already (`frame_arena.ts`);
 * then that run of bytes is written as it stands, without a copy.
 * The queue counts the bytes not yet accepted by the kernel, the write in
 * flight included; when a push would pass the limit it is refused and the
 * owner disconnects that recipient, so one slow reader costs at most `limit`
 * bytes and never slows anyone else.
 *
 * A replay can be far larger than that limit, so it is not pushed at once:
 * {@linkcode OutboundQueue.pushPaced} takes a source that is asked for its
 * next frame only while less than `lowWater` bytes wait, that is, as fast as
 * the peer reads. Bytes pushed while a paced source is still running wait
 * behind it (counted against the limit), so the peer sees everything in the
 * order it was pushed.
 *
 * @module
 */

/** The buffer a busy queue joins batches in, reused from batch to batch. */
const JOIN_BUFFER = 16 * 1024;
/** Spells of being far behind less than this apart count as one (see `hotSince`). */
const SPELL_GAP_MS = 3000;
/** A run of adjacent chunks this long is written alone, the chunks after it later, not copied. */
const MIN_RUN = 4096;

/** Anything bytes can be written to, such as a `Deno.Conn`. */
export interface ByteSink {
  write(bytes: Uint8Array): Promise<number>;
}

/** Gives the next bytes of a paced replay, or undefined once it is done. */
export type PacedSource = () => Uint8Array | undefined;

/** Options for {@linkcode OutboundQueue}. */
export interface OutboundQueueOptions {
  /** Most bytes that may wait for the peer. */
  limit: number;
  /** A paced source is asked for more while fewer bytes than this wait. Default `limit / 4`. */
  lowWater?: number;
  /** Called once if a write fails (the peer is gone). */
  onError?: (error: unknown) => void;
  /** A clock to tell progress by; one the owner updates now and then is cheapest. */
  clock?: { now: number };
  /**
   * The server's total (see `outbound_budget.ts`): told of every change in
   * what this queue holds, counting at most `perConnection` of it.
   */
  budget?: QueueBudget;
}

/** What a queue tells the server's total (`outbound_budget.ts`) of itself. */
export interface QueueBudget {
  /** The most any one queue counts for. */
  readonly perConnection: number;
  /** What the queue counts for changed by `delta` bytes. */
  change(delta: number): void;
  /** The queue passed half its limit (`hot`), or is back under it. */
  heat(queue: OutboundQueue, hot: boolean): void;
}

/**
 * Queues bytes for one peer and writes them in coalesced batches.
 *
 * @example
 * ```ts
 * import { OutboundQueue } from "./outbound_queue.ts";
 * const chunks: Uint8Array[] = [];
 * const sink = { write: (bytes: Uint8Array) => (chunks.push(bytes), Promise.resolve(bytes.length)) };
 * const queue = new OutboundQueue(sink, { limit: 256 * 1024 });
 * queue.push(new TextEncoder().encode("hello\n")); // false would mean: too far behind
 * await queue.drained();
 * ```
 */
export class OutboundQueue {
  readonly #sink: ByteSink;
  readonly #limit: number;
  readonly #lowWater: number;
  readonly #onError: (error: unknown) => void;
  readonly #budget: QueueBudget | undefined;
  /** What this queue counts for in the budget now. */
  #counted = 0;
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  /** What waits behind a paced source: sources, and bytes pushed meanwhile. */
  #backlog: (Uint8Array | PacedSource)[] = [];
  #backlogBytes = 0;
  #writing = false;
  #failed = false;
  /** Where batches of several chunks are joined, while the peer is being written to. */
  #joined: Uint8Array | undefined;
  /** The bytes being written, and how many of them are written. */
  #batch: Uint8Array | undefined;
  #written = 0;
  #waiters: (() => void)[] = [];
  readonly #clock: { now: number };
  /** When the peer last took bytes (or, if idle then, when writing began). */
  #progressAt = 0;
  /** Whether more than half the limit waits; since when, and when it last did not. */
  #hot = false;
  #hotSince = 0;
  #cooledAt = -Infinity;
  #tookAt = -Infinity;

  constructor(sink: ByteSink, options: OutboundQueueOptions) {
    this.#sink = sink;
    this.#limit = options.limit;
    this.#lowWater = options.lowWater ?? Math.floor(options.limit / 4);
    this.#onError = options.onError ?? (() => {});
    this.#budget = options.budget;
    this.#clock = options.clock ?? {
      get now() {
        return performance.now();
      },
    };
  }

  /**
   * How long the peer has taken nothing while bytes wait for it, in the
   * clock's units; 0 when nothing waits. A reader that stopped reading
   * shows here even when it is far from the byte limit.
   */
  stalledFor(now: number): number {
    return this.#writing ? now - this.#progressAt : 0;
  }

  /** What this queue counts for in the server's total: its bytes, up to a cap. */
  get counted(): number {
    return this.#counted;
  }

  /**
   * Brings the budget up to date. A queue counts for at most its share, so
   * that a few readers far behind (cut by their own limit soon) cannot make
   * the whole server stop reading: only most readers being behind does.
   */
  #account(): void {
    const budget = this.#budget;
    if (!budget) return;
    const bytes = this.#bytes + this.#backlogBytes;
    const counted = Math.min(bytes, budget.perConnection);
    if (counted !== this.#counted) budget.change(counted - this.#counted);
    this.#counted = counted;
    const hot = bytes >= this.#limit / 2;
    if (hot === this.#hot) return;
    this.#hot = hot;
    const now = this.#clock.now;
    if (!hot) {
      this.#cooledAt = now;
    } else {
      if (now - this.#cooledAt >= SPELL_GAP_MS) this.#hotSince = now;
      // Taking bytes lately, as the coarse clock tells: a reader that stopped reading is not.
      this.#tookAt = this.stalledFor(now) < 1000 ? performance.now() : -Infinity;
    }
    budget.heat(this, hot);
  }

  /** While more than half the limit waits: when the peer last took bytes (`performance.now()`). */
  get tookAt(): number {
    return this.#tookAt;
  }

  /**
   * Since when more than half the limit has waited: the start of this spell
   * of being that far behind, spells less than a few seconds apart counted
   * as one (a reader cannot start afresh by catching up for a moment).
   */
  get hotSince(): number {
    return this.#hotSince;
  }

  /** Bytes queued, waiting behind a paced source, or being written. */
  get bytes(): number {
    return this.#bytes + this.#backlogBytes;
  }

  /**
   * Appends bytes; returns false, queuing nothing, when they would pass the
   * limit. Pushing to a queue whose peer failed is a no-op returning true.
   */
  push(bytes: Uint8Array): boolean {
    if (this.#failed) return true;
    if (this.#bytes + this.#backlogBytes + bytes.length > this.#limit) return false;
    this.#append(bytes);
    return true;
  }

  /**
   * Appends a source that is drained as the peer reads, after everything
   * pushed so far; whatever is pushed later waits until it is done.
   */
  pushPaced(source: PacedSource): void {
    if (this.#failed) return;
    this.#backlog.push(source);
    this.#refill();
    this.#account();
  }

  /**
   * Queues the last bytes for a peer being disconnected, past the limit so
   * that it still learns why. With `dropQueued`, what has not yet reached
   * the kernel is dropped first (a slow consumer will not read it anyway).
   */
  pushLast(bytes: Uint8Array, options: { dropQueued: boolean }): void {
    if (this.#failed) return;
    if (options.dropQueued) {
      for (const chunk of this.#chunks) this.#bytes -= chunk.length;
      this.#chunks.length = 0;
      this.#backlog.length = 0;
      this.#backlogBytes = 0;
    }
    this.#append(bytes);
  }

  /**
   * Copies what waits into buffers of its own. Queued chunks may be views of
   * a room's shared slabs (see `frame_arena.ts`), which they keep alive: a
   * reader that stopped reading and went from room to room would otherwise
   * hold a slab of each for a few bytes.
   */
  unpin(): void {
    if (this.#chunks.length > 0) {
      // Not into the buffer batches are joined in: the write under way may be using it.
      const own = concat(this.#chunks);
      this.#chunks.length = 0;
      this.#chunks.push(own);
    }
    for (let i = 0; i < this.#backlog.length; i++) {
      const entry = this.#backlog[i];
      if (entry instanceof Uint8Array) this.#backlog[i] = entry.slice();
    }
  }

  /** Queues bytes behind whatever is queued, a paced source included. */
  #append(bytes: Uint8Array): void {
    if (this.#backlog.length > 0) {
      this.#backlog.push(bytes);
      this.#backlogBytes += bytes.length;
    } else {
      this.#enqueue(bytes);
    }
    this.#account();
  }

  /** Resolves once everything queued so far is written, or writing failed. */
  drained(): Promise<void> {
    if ((this.#bytes === 0 && this.#backlog.length === 0) || this.#failed) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #enqueue(bytes: Uint8Array): void {
    this.#bytes += bytes.length;
    if (this.#writing) {
      this.#chunks.push(bytes);
      return;
    }
    // Idle: written at once, without passing through the list (a list that grows from
    // empty allocates for every recipient of every broadcast).
    this.#progressAt = this.#clock.now;
    this.#start(bytes);
  }

  /** Moves work from the backlog into the queue while the peer keeps up. */
  #refill(): void {
    while (this.#backlog.length > 0 && this.#bytes < this.#lowWater) {
      const head = this.#backlog[0];
      if (head instanceof Uint8Array) {
        this.#backlog.shift();
        this.#backlogBytes -= head.length;
        this.#enqueue(head);
        continue;
      }
      const next = head();
      if (next === undefined) {
        this.#backlog.shift();
      } else {
        this.#enqueue(next);
      }
    }
  }

  // The writer is a loop of callbacks rather than an async function: it runs
  // for every recipient of every broadcast, and this way a write allocates
  // little more than the runtime's own promise.
  #drain(): void {
    const chunks = this.#chunks;
    if (chunks.length === 1) {
      const only = chunks[0];
      chunks.length = 0;
      return this.#start(only);
    }
    // Chunks that lie one after another in one buffer (a room's frames, see
    // `frame_arena.ts`) go out as they stand: every busy reader copying every
    // frame into a batch of its own was a seventh of the server's time.
    const first = chunks[0];
    const buffer = first.buffer;
    let end = first.byteOffset + first.length;
    let run = 1;
    while (run < chunks.length && chunks[run].byteOffset === end && chunks[run].buffer === buffer) {
      end += chunks[run].length;
      run++;
    }
    const runBytes = end - first.byteOffset;
    let batch: Uint8Array;
    if (run === chunks.length || runBytes >= MIN_RUN) {
      batch = new Uint8Array(buffer, first.byteOffset, runBytes);
      chunks.splice(0, run); // the rest (the next slab's, often) is the next write's
    } else {
      batch = this.#join();
      chunks.length = 0;
    }
    this.#start(batch);
  }

  /**
   * Copies the queued chunks into the buffer the last batch went out in (that
   * write has ended): a fresh buffer for every batch of every busy reader
   * cost more than the copy.
   */
  #join(): Uint8Array {
    // A batch larger than that buffer gets one of its own, so what a queue keeps stays small.
    return concat(this.#chunks, this.#joined ??= new Uint8Array(JOIN_BUFFER));
  }

  #start(batch: Uint8Array): void {
    this.#writing = true;
    this.#batch = batch;
    this.#written = 0;
    this.#write(batch);
  }

  #write(bytes: Uint8Array): void {
    let writing: Promise<number>;
    try {
      writing = this.#sink.write(bytes);
    } catch (error) {
      writing = Promise.reject(error); // a closed socket may throw at once
    }
    writing.then(this.#onWritten, this.#onFailed);
  }

  readonly #onWritten = (n: number): void => {
    const batch = this.#batch!;
    this.#written += n;
    this.#progressAt = this.#clock.now;
    if (this.#hot) this.#tookAt = performance.now();
    if (this.#written < batch.length) {
      this.#write(batch.subarray(this.#written));
      return;
    }
    this.#batch = undefined;
    this.#bytes -= batch.length;
    if (this.#backlog.length > 0) this.#refill();
    this.#account();
    if (this.#chunks.length > 0) return this.#drain();
    this.#writing = false;
    this.#joined = undefined; // a reader that is keeping up holds no buffer
    this.#wakeWaiters();
  };

  readonly #onFailed = (error: unknown): void => {
    this.#failed = true;
    this.#writing = false;
    this.#batch = undefined;
    this.#joined = undefined;
    this.#chunks.length = 0;
    this.#bytes = 0;
    this.#backlog.length = 0;
    this.#backlogBytes = 0;
    this.#account();
    this.#onError(error);
    this.#wakeWaiters();
  };

  #wakeWaiters(): void {
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** The chunks one after another: in `into` if it is large enough, else in a new buffer. */
function concat(chunks: Uint8Array[], into?: Uint8Array): Uint8Array {
  let length = 0;
  for (const chunk of chunks) length += chunk.length;
  const joined = into !== undefined && into.length >= length ? into : new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    joined.set(chunk, offset);
    offset += chunk.length;
  }
  return joined.subarray(0, length);
}

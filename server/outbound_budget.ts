/**
 * The bytes waiting in every connection's outbound queue together, and the
 * server's answer to overload: while more waits than the readers are taking,
 * sessions stop reading, so that TCP slows the senders down, rather than
 * every reader's queue filling until all of them are cut off as slow.
 *
 * Each queue counts for at most a share of the budget (a quarter of its own
 * limit), and sessions pause once the queues together hold most of their
 * shares: when the server is behind for most readers, not when a few are. A
 * reader keeping up then holds far less than its own limit; only a reader
 * much slower than the others reaches it and is cut. Queues that have taken
 * nothing for five seconds do not count at all: a reader that stopped reading
 * must not stop everyone (it is cut by its own limit, or the stall timeout).
 *
 * Readers are not all served alike, though: under overload a load generator
 * (or a busy machine) reads some sockets later than others, and the kernel
 * buffers some connections more than others. So for a moment after the
 * server was behind for everyone (a quarter second: under overload that
 * happens again and again), queues past half their limit whose readers are
 * still taking bytes, and have not been that far behind for long, hold the
 * senders up too: it is the server's doing, not the readers'.
 *
 * Two or more such queues hold them up outright. One alone may be a reader
 * that just stopped reading (the kernel's buffer for it has just filled,
 * while the server is behind because everyone else reads slowly), so it holds
 * the senders up only until the other readers have taken nearly all they are
 * owed, which costs those readers nothing, and never until it reads.
 *
 * A reader far behind while the server keeps up with the others is slow, and
 * is cut; one that stays far behind for seconds no longer holds anyone up,
 * nor does it by falling back again soon after catching up (see
 * `OutboundQueue.hotSince`).
 *
 * @module
 */

import type { OutboundQueue, QueueBudget } from "./outbound_queue.ts";

/** The part of all the queues' shares that, held, means the server is behind. */
const PAUSE_SHARE = 0.5;
/** How long after the queues together were behind a queue far behind is taken for the server's doing. */
const OVERLOADED_MS = 250;
/** A queue past half its limit holds the senders up while its reader took bytes this recently… */
const TAKING_MS = 1000;
/** …and for at most this long. */
const HOT_GRACE_MS = 3000;
/** How long the answer to whether such a queue holds the senders up is kept. */
const PRESSING_TTL_MS = 20;
/** How often sessions held up by such queues look again, whatever else happens. */
const RECHECK_MS = 100;
/**
 * How many such queues it takes. One alone may be a reader that just stopped
 * reading, while the server is behind because everyone else reads slowly.
 */
const MIN_PRESSING = 2;
/**
 * Fewer connections than this never pause: a handful of readers cannot
 * overload a server, and one of them stopping must not hold up the rest.
 */
const MIN_CONNECTIONS = 8;

/**
 * Counts queued bytes across connections and says when to stop reading.
 *
 * @example
 * ```ts
 * import { OutboundBudget } from "./outbound_budget.ts";
 * const budget = new OutboundBudget({ perConnection: 64 * 1024, clock: { now: 0 } });
 * budget.connections = 10; // sessions pause once the queues count for 320 KiB (8 or more connections)
 * budget.change(400 * 1024); // a burst was queued for everyone
 * budget.behind(0); // true: a session stops reading, and waits for budget.relief()
 * ```
 */
export class OutboundBudget implements QueueBudget {
  /** The most any one queue counts for: the budget is this much a connection. */
  readonly perConnection: number;
  readonly #clock: { now: number };
  /** Queues past half their limit. */
  readonly #hot = new Set<OutboundQueue>();
  #queued = 0;
  /** When the queues together were last found behind (`performance.now()`). */
  #overloadedAt = -Infinity;
  /** Bytes in queues that have taken nothing for a while; set about once a second. */
  #stalled = 0;
  #relief: PromiseWithResolvers<void> | undefined;
  #recheck: ReturnType<typeof setTimeout> | undefined;
  #pressingAt = -Infinity;
  /** How many queues far behind hold the senders up (counted up to `MIN_PRESSING`). */
  #pressing = 0;
  /** How many connections share the budget. */
  connections = 0;

  constructor(options: { perConnection: number; clock: { now: number } }) {
    this.perConnection = options.perConnection;
    this.#clock = options.clock;
  }

  /** Bytes waiting in every queue, stalled ones included. */
  get queued(): number {
    return this.#queued;
  }

  /** Counts bytes queued (positive) or written or dropped (negative). */
  change(delta: number): void {
    this.#queued += delta;
    if (delta < 0 && this.#relief && this.#caughtUp()) this.#wake();
  }

  /** Told by a queue when it passes half its limit, and when it is back under. */
  heat(queue: OutboundQueue, hot: boolean): void {
    if (hot) {
      this.#hot.add(queue);
      if (this.#pressing < MIN_PRESSING) this.#pressingAt = -Infinity; // it may hold them: look again
      return;
    }
    this.#hot.delete(queue);
    if (this.#relief && this.#pressingQueues() < MIN_PRESSING) this.#wake(); // they look again
  }

  /** Says how many of the queued bytes sit in queues that stopped taking any. */
  setStalled(bytes: number): void {
    this.#stalled = bytes;
    if (this.#relief) this.#wake(); // at least once a second, waiting sessions look again
  }

  /**
   * Whether a session should stop reading: the others' queues (not counting
   * `own`, what its own reader is owed) hold more than the budget, or, once
   * it has stopped (`stopped`), still more than half of it; or, soon after
   * that, readers still taking bytes are far behind (see the module doc).
   */
  behind(own: number, stopped = false): boolean {
    if (this.connections < MIN_CONNECTIONS) return false;
    const others = this.#active() - own;
    const limit = this.#limit();
    if (others > (stopped ? limit / 2 : limit)) {
      const now = performance.now(); // precise: the window is a fraction of a second
      // The window opens: queues far behind may hold the senders now, whatever was cached.
      if (now - this.#overloadedAt > OVERLOADED_MS) this.#pressingAt = -Infinity;
      this.#overloadedAt = now;
      return true;
    }
    if (this.#hot.size === 0) return false;
    const pressing = this.#pressingQueues();
    if (pressing !== 1) return pressing > 0;
    // One alone may have stopped reading: it holds the senders up only until the other
    // readers have taken nearly all that waits for them (which costs them nothing), never
    // until it reads.
    return this.#rest(others) > (stopped ? limit / 16 : limit / 8);
  }

  /** What the readers not far behind are owed, of `active`: those far behind count their whole share. */
  #rest(active: number): number {
    return active - this.#hot.size * this.perConnection;
  }

  /**
   * Whether the server was behind for everyone a moment ago, and a queue
   * past half its limit is still taking bytes, and not for long that far
   * behind. Looked at most every few milliseconds: it is asked for every
   * line read, and there may be many such queues.
   */
  #pressingQueues(): number {
    const precise = performance.now(); // a reader that stops must hold nobody up for long
    if (precise - this.#pressingAt < PRESSING_TTL_MS) return this.#pressing;
    const now = this.#clock.now;
    this.#pressingAt = precise;
    this.#pressing = 0;
    if (precise - this.#overloadedAt > OVERLOADED_MS) return 0;
    for (const queue of this.#hot) {
      if (precise - queue.tookAt < TAKING_MS && now - queue.hotSince < HOT_GRACE_MS) {
        if (++this.#pressing === MIN_PRESSING) break;
      }
    }
    return this.#pressing;
  }

  /** Whether the queues have drained enough for waiting sessions to look again. */
  #caughtUp(): boolean {
    const limit = this.#limit();
    if (this.#pressing === 1) return this.#rest(this.#active()) <= limit / 16;
    return this.#active() <= limit / 2;
  }

  /** Settles when the queues have drained to half the budget, or within about a second. */
  relief(): Promise<void> {
    if (this.#relief === undefined) {
      this.#relief = Promise.withResolvers<void>();
      // A reader far behind holds the senders up only for a moment after overload, and while
      // it takes bytes: look again soon, even if nothing else happens (it may have stopped
      // reading, and nothing else be left).
      if (this.#hot.size > 0) {
        const recheck = this.#recheck = setTimeout(() => this.#wake(), RECHECK_MS);
        Deno.unrefTimer(recheck);
      }
    }
    return this.#relief.promise;
  }

  #active(): number {
    return this.#queued - this.#stalled;
  }

  #limit(): number {
    // Only when most queues are nearly at their share is the server behind for most readers.
    return Math.max(1, this.connections) * this.perConnection * PAUSE_SHARE;
  }

  #wake(): void {
    clearTimeout(this.#recheck);
    const relief = this.#relief;
    this.#relief = undefined;
    relief?.resolve();
  }
}

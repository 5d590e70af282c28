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
 * @module
 */

/** The part of all the queues' shares that, held, means the server is behind. */
const PAUSE_SHARE = 0.5;
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
 * const budget = new OutboundBudget({ perConnection: 64 * 1024 });
 * budget.connections = 10; // sessions pause once the queues count for 320 KiB (8 or more connections)
 * budget.change(400 * 1024); // a burst was queued for everyone
 * budget.behind(0); // true: a session stops reading, and waits for budget.relief()
 * ```
 */
export class OutboundBudget {
  /** The most any one queue counts for: the budget is this much a connection. */
  readonly perConnection: number;
  #queued = 0;
  /** Bytes in queues that have taken nothing for a while; set about once a second. */
  #stalled = 0;
  #relief: PromiseWithResolvers<void> | undefined;
  /** How many connections share the budget. */
  connections = 0;

  constructor(options: { perConnection: number }) {
    this.perConnection = options.perConnection;
  }

  /** Bytes waiting in every queue, stalled ones included. */
  get queued(): number {
    return this.#queued;
  }

  /** Counts bytes queued (positive) or written or dropped (negative). */
  change(delta: number): void {
    this.#queued += delta;
    if (delta < 0 && this.#relief && this.#active() <= this.#limit() / 2) this.#wake();
  }

  /** Says how many of the queued bytes sit in queues that stopped taking any. */
  setStalled(bytes: number): void {
    this.#stalled = bytes;
    if (this.#relief) this.#wake(); // at least once a second, waiting sessions look again
  }

  /**
   * Whether a session should stop reading: the others' queues (not counting
   * `own`, what its own reader is owed) hold more than the budget, or, once
   * it has stopped (`stopped`), still more than half of it.
   */
  behind(own: number, stopped = false): boolean {
    if (this.connections < MIN_CONNECTIONS) return false;
    const limit = stopped ? this.#limit() / 2 : this.#limit();
    return this.#active() - own > limit;
  }

  /** Settles when the queues have drained to half the budget, or within about a second. */
  relief(): Promise<void> {
    this.#relief ??= Promise.withResolvers<void>();
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
    const relief = this.#relief!;
    this.#relief = undefined;
    relief.resolve();
  }
}

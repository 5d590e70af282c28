/**
 * A token bucket: `burst` actions at once, then `rate` per second.
 *
 * Time is passed in rather than read, so the bucket is plain arithmetic and
 * tests need no clock.
 *
 * @module
 */

/** Options for {@linkcode TokenBucket}. */
export interface TokenBucketOptions {
  /** Tokens added per second. */
  rate: number;
  /** Tokens at the start, and most that can be saved up. */
  burst: number;
  /**
   * Extra tokens beyond `burst`, so that a client keeping to `rate` and
   * `burst` is never refused when the network bunches its messages up.
   */
  slack?: number;
}

/**
 * Limits how often something may happen.
 *
 * @example
 * ```ts
 * import { TokenBucket } from "./token_bucket.ts";
 * const bucket = new TokenBucket({ rate: 2, burst: 1 });
 * bucket.take(0); // 0: allowed
 * bucket.take(0); // 500: refused, try again in 500 ms
 * bucket.take(0); // 1000: the next refusal is told a later time, so retries don't collide
 * bucket.full(1500); // true: refilled, and as good as a new bucket
 * ```
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #capacity: number;
  #tokens: number;
  #updated: number | undefined;
  /** When the last refused action was told to come back. */
  #lastRetryAt = -Infinity;

  constructor(options: TokenBucketOptions) {
    this.#rate = options.rate;
    this.#capacity = Math.max(1, options.burst) + (options.slack ?? 0);
    this.#tokens = this.#capacity;
  }

  /**
   * Whether the bucket has refilled by `nowMs` and owes no one a retry
   * time: it would then act as a new one, so its owner may drop it.
   */
  full(nowMs: number): boolean {
    if (nowMs < this.#lastRetryAt) return false;
    if (this.#updated === undefined) return true;
    return this.#tokens + ((nowMs - this.#updated) / 1000) * this.#rate >= this.#capacity;
  }

  /**
   * Takes `cost` tokens (one by default; never more than the bucket holds)
   * at time `nowMs`. Returns 0 when allowed, otherwise the milliseconds to
   * wait before trying again (nothing is taken then). Refusals in a row are
   * told times a token apart: each retry finds its own token.
   */
  take(nowMs: number, cost = 1): number {
    cost = Math.min(cost, this.#capacity);
    if (this.#updated !== undefined) {
      const refill = ((nowMs - this.#updated) / 1000) * this.#rate;
      this.#tokens = Math.min(this.#capacity, this.#tokens + Math.max(0, refill));
    }
    this.#updated = nowMs;
    if (this.#tokens >= cost) {
      this.#tokens -= cost;
      return 0;
    }
    const ready = nowMs + ((cost - this.#tokens) / this.#rate) * 1000;
    this.#lastRetryAt = Math.max(ready, this.#lastRetryAt + (1000 * cost) / this.#rate);
    return Math.max(1, Math.ceil(this.#lastRetryAt - nowMs));
  }
}

/**
 * A token bucket: `burst` actions at once, then `rate` per second.
 *
 * Time is passed in rather than read, so the bucket is plain arithmetic and
 * tests need no clock.
 *
 * @module
 */

/**
 * Limits how often something may happen.
 *
 * @example
 * ```ts
 * import { TokenBucket } from "./token_bucket.ts";
 * const bucket = new TokenBucket({ rate: 2, burst: 1 });
 * bucket.take(0); // 0: allowed
 * bucket.take(0); // 500: refused, try again in 500 ms
 * ```
 */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #updated: number | undefined;

  constructor(options: { rate: number; burst: number }) {
    this.#rate = options.rate;
    this.#burst = Math.max(1, options.burst);
    this.#tokens = this.#burst;
  }

  /**
   * Takes one token at time `nowMs`. Returns 0 when allowed, otherwise the
   * milliseconds until a token will be there (nothing is taken then).
   */
  take(nowMs: number): number {
    if (this.#updated !== undefined) {
      const refill = ((nowMs - this.#updated) / 1000) * this.#rate;
      this.#tokens = Math.min(this.#burst, this.#tokens + Math.max(0, refill));
    }
    this.#updated = nowMs;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - this.#tokens) / this.#rate) * 1000));
  }
}

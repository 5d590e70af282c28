/**
 * Limits that follow an address rather than a connection: how fast it may
 * connect (each connection is a join and a leave notice for a room) and
 * how fast it may create rooms. Closing a connection and opening another
 * does not reset them.
 *
 * Each limit is a token bucket per address, kept in a map of bounded size:
 * past {@linkcode MAX_ADDRESSES}, the address seen least recently is
 * forgotten, so memory stays bounded whatever addresses come.
 *
 * @module
 */

import { TokenBucket, type TokenBucketOptions } from "../common/token_bucket.ts";

/** Addresses remembered per limit at once. */
export const MAX_ADDRESSES = 10_000;

/** One token bucket per address, the least recently used forgotten first. */
class BucketsByAddress {
  readonly #options: TokenBucketOptions;
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(options: TokenBucketOptions) {
    this.#options = options;
  }

  take(address: string, nowMs: number, cost = 1): number {
    let bucket = this.#buckets.get(address);
    if (bucket) {
      this.#buckets.delete(address); // re-inserted below: the map stays in order of use
    } else {
      bucket = new TokenBucket(this.#options);
      if (this.#buckets.size >= MAX_ADDRESSES) {
        this.#buckets.delete(this.#buckets.keys().next().value!);
      }
    }
    this.#buckets.set(address, bucket);
    return bucket.take(nowMs, cost);
  }
}

/**
 * The per-address limits of one server. They grow with `maxPerAddress`, so
 * that raising `--max-per-address` for a class behind one NAT address
 * raises them too: an address may open `max(20, maxPerAddress)`
 * connections at once, then `max(2, maxPerAddress / 10)` a second, and
 * create `max(10, maxPerAddress / 2)` rooms at once, then one a minute.
 * The messages of all its connections together may take four longest
 * lines at once, then `rateBytes` a second, times `max(1, maxPerAddress / 16)`:
 * so one machine's connections cannot bury the others' readers.
 *
 * @example
 * ```ts
 * import { AddressLimits } from "./address_limits.ts";
 * const limits = new AddressLimits({ maxPerAddress: 16, rateBytes: 16384, maxFrameBytes: 16384 });
 * limits.connect("10.0.0.7", performance.now()); // 0: go ahead; else ms to wait
 * ```
 */
export class AddressLimits {
  readonly #connects: BucketsByAddress;
  readonly #roomCreations: BucketsByAddress;
  readonly #messageBytes: BucketsByAddress | undefined;

  constructor(options: { maxPerAddress: number; rateBytes?: number; maxFrameBytes: number }) {
    const n = options.maxPerAddress;
    this.#connects = new BucketsByAddress({ burst: Math.max(20, n), rate: Math.max(2, n / 10) });
    this.#roomCreations = new BucketsByAddress({ burst: Math.max(10, n / 2), rate: 1 / 60 });
    const share = Math.max(1, n / 16);
    const rate = options.rateBytes;
    this.#messageBytes = rate === undefined ? undefined : new BucketsByAddress({
      burst: 4 * options.maxFrameBytes * share,
      rate: rate * share,
      slack: (rate * share) / 4,
    });
  }

  /** `bytes` of messages from `address`: 0 when allowed, else the ms to wait. */
  messageBytes(address: string, nowMs: number, bytes: number): number {
    return this.#messageBytes?.take(address, nowMs, bytes) ?? 0;
  }

  /** A connection from `address`: 0 when allowed, else the ms to wait. */
  connect(address: string, nowMs: number): number {
    return this.#connects.take(address, nowMs);
  }

  /** A room created from `address`: 0 when allowed, else the ms to wait. */
  createRoom(address: string, nowMs: number): number {
    return this.#roomCreations.take(address, nowMs);
  }
}

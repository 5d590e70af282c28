/**
 * Waiting for something, but not for ever: the one way this program puts a
 * time limit on a promise.
 *
 * @module
 */

/** What {@linkcode within} gives when the time ran out first. */
export const TIMED_OUT: unique symbol = Symbol("timed out");

/**
 * Settles as `promise` does, or with {@linkcode TIMED_OUT} after `ms`,
 * whichever comes first; the timer never outlives the wait. The promise
 * itself goes on: the caller decides what to do with what it may still
 * bring (close a late connection, say).
 *
 * @example
 * ```ts
 * import { TIMED_OUT, within } from "./timeout.ts";
 * const answer = await within(new Promise(() => {}), 10);
 * answer === TIMED_OUT; // true
 * ```
 */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<typeof TIMED_OUT>((resolve) => timer = setTimeout(() => resolve(TIMED_OUT), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

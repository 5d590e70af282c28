/**
 * Who may come in, and who may moderate: the shared password and the
 * operator token, both compared in constant time, and a growing wait for an
 * address after each wrong guess, so that guessing in a loop gets nowhere.
 *
 * @module
 */

/** The first wait after a wrong password; it doubles with each further one. */
const FIRST_WAIT_MS = 1000;
/** The longest wait an address is given. */
const MAX_WAIT_MS = 5 * 60_000;
/** Addresses remembered at once; the oldest are forgotten past this. */
const MAX_ADDRESSES = 10_000;

const utf8 = new TextEncoder();

/**
 * Whether two secrets are equal, taking the same time wherever they differ:
 * every byte of what was given is compared, against the expected bytes
 * over and over, so the time depends on the guess alone. (Without
 * `node:crypto`, whose loading would cost every start of the server.)
 */
function sameSecret(given: string, expected: string): boolean {
  const a = utf8.encode(given);
  const b = utf8.encode(expected);
  let difference = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i % b.length];
  return difference === 0;
}

/** What the gate says to a client presenting a password. */
export type Verdict = { ok: true } | { ok: false; retryMs: number; reason: string };

/**
 * Checks passwords and operator tokens, and slows down addresses that guess.
 *
 * @example
 * ```ts
 * import { Gate } from "./auth.ts";
 * const gate = new Gate({ password: "lab9", opToken: "t0k3n" });
 * gate.checkPassword("10.0.0.7", "lab9", 0); // { ok: true }
 * gate.checkPassword("10.0.0.7", "nope", 0).ok; // false: try again in 1 s
 * gate.checkOperatorToken("10.0.0.8", "t0k3n", 0); // { ok: true }
 * ```
 */
export class Gate {
  readonly #password: string | undefined;
  readonly #opToken: string | undefined;
  /** Per address: wrong guesses in a row, and until when it must wait. */
  readonly #failures = new Map<string, { count: number; until: number }>();

  constructor(options: { password?: string; opToken?: string }) {
    this.#password = options.password;
    this.#opToken = options.opToken;
  }

  /** Whether clients must give a password. */
  get passwordRequired(): boolean {
    return this.#password !== undefined;
  }

  /**
   * Checks a password from `address` at time `nowMs`. While the address is
   * made to wait, every attempt is refused unchecked; a wrong one doubles
   * the wait; a right one clears it.
   */
  checkPassword(address: string, given: string | undefined, nowMs: number): Verdict {
    if (this.#password === undefined) return { ok: true };
    if (given === undefined) {
      // Not a guess: the client did not know a password was needed.
      return { ok: false, retryMs: 0, reason: "this server needs a password" };
    }
    return this.#check(`password ${address}`, given, this.#password, nowMs, "password");
  }

  /** Checks an operator token from `address`, with the same waits as passwords. */
  checkOperatorToken(address: string, given: string, nowMs: number): Verdict {
    if (this.#opToken === undefined) {
      return { ok: false, retryMs: 0, reason: "this server has no operators" };
    }
    return this.#check(`token ${address}`, given, this.#opToken, nowMs, "operator token");
  }

  /**
   * Checks `given` against `expected` for one kind of secret from one
   * address (`key` names both, so that knowing the password does not clear
   * the wait for guessing the operator token).
   */
  #check(key: string, given: string, expected: string, nowMs: number, what: string): Verdict {
    const address = key.slice(key.indexOf(" ") + 1);
    const failures = this.#failures.get(key);
    if (failures && nowMs < failures.until) {
      return {
        ok: false,
        retryMs: Math.ceil(failures.until - nowMs),
        reason: `too many wrong ${what}s from ${address}; wait ${
          Math.ceil((failures.until - nowMs) / 1000)
        } s before trying again`,
      };
    }
    if (sameSecret(given, expected)) {
      this.#failures.delete(key);
      return { ok: true };
    }
    const count = (failures?.count ?? 0) + 1;
    const wait = Math.min(MAX_WAIT_MS, FIRST_WAIT_MS * 2 ** (count - 1));
    this.#failures.delete(key); // re-insert: the map stays in order of last failure
    this.#failures.set(key, { count, until: nowMs + wait });
    if (this.#failures.size > MAX_ADDRESSES) {
      this.#failures.delete(this.#failures.keys().next().value!);
    }
    return {
      ok: false,
      retryMs: wait,
      reason: `wrong ${what}; the next try from ${address} is possible in ${wait / 1000} s`,
    };
  }
}

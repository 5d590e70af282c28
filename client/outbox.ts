/**
 * The messages `chat join` sends: one at a time, each confirmed by the
 * server's echo before the next, paced to the server's limits, retried when
 * refused for rate, and kept through a reconnect.
 *
 * @module
 */

import type { ClientFrame, ServerFrame, WelcomeFrame } from "../protocol.ts";
import { splitText } from "./split_text.ts";
import { TokenBucket } from "../common/token_bucket.ts";
import type { Link } from "./link.ts";

type Outgoing = { to?: string; text: string; action?: boolean };

/** How long a message the server could not store waits before it is sent again. */
const STORE_RETRY_MS = 1000;

/**
 * Sends messages in order, one at a time, each confirmed by the server's
 * echo before the next; retries refusals for rate; paces to the limits.
 * It outlives connections: what is queued waits through a reconnect.
 *
 * @example
 * ```ts
 * import { Outbox } from "./outbox.ts";
 * const outbox = new Outbox();
 * outbox.add("queued until a link is attached");
 * outbox.pending; // 1
 * ```
 */
export class Outbox {
  #link: Link | undefined;
  #bucket = new TokenBucket({ rate: 1, burst: 1 });
  #maxFrameBytes = 1024;
  readonly #queue: Outgoing[] = [];
  #inFlight: (Outgoing & { ref: number }) | undefined;
  // Refs unlike those of an earlier run under the same name, which a replay may show.
  #nextRef = Date.now() * 1000;
  #awaitingReplay = false;
  /** The server said it cannot store messages; told to the user once until one goes. */
  #storeAway = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #idle = Promise.withResolvers<void>();

  constructor() {
    this.#idle.resolve();
  }

  /** Messages not yet confirmed, the one in flight included. */
  get pending(): number {
    return this.#queue.length + (this.#inFlight ? 1 : 0);
  }

  /** Starts sending on a new connection, with that server's limits. */
  attach(link: Link, welcome: WelcomeFrame): void {
    this.#link = link;
    // A little under the server's pace, so its bucket is never the one to say no.
    this.#bucket = new TokenBucket({
      rate: welcome.limits.rate * 0.95,
      burst: Math.max(1, welcome.limits.burst - 1),
    });
    this.#maxFrameBytes = welcome.limits.maxFrameBytes;
    this.#awaitingReplay = true;
  }

  /** The connection is gone: hold everything until the next one. */
  detach(): void {
    this.#link = undefined;
    this.stop();
  }

  /**
   * After the replay that follows a welcome: send again what was in flight
   * and not seen in it, then go on with the queue.
   */
  resume(): void {
    if (!this.#awaitingReplay) return;
    this.#awaitingReplay = false;
    const flight = this.#inFlight;
    if (flight) this.#link?.send(messageFrame(flight));
    else this.#pump();
  }

  /** Queues a message, or a direct one with `to` (split if too long for a frame). */
  add(text: string, to?: string, action = false): void {
    if (this.pending === 0) this.#idle = Promise.withResolvers<void>();
    // A dm frame carries "to" besides the text: leave room for it, counted in bytes as sent.
    const toBytes = to === undefined ? 0 : new TextEncoder().encode(JSON.stringify(to)).length + 8;
    for (const piece of splitText(text, this.#maxFrameBytes - toBytes)) {
      this.#queue.push(action ? { text: piece, action } : { to, text: piece });
    }
    this.#pump();
  }

  /** Resolves once every queued message is confirmed. */
  idle(): Promise<void> {
    return this.#idle.promise;
  }

  /**
   * Follows the server's answers to our messages (`me` is our name now).
   * Returns true for a refusal that will be retried (for rate, or while the
   * server cannot store messages): nothing for the user to see, though a
   * store that stays away is told once, through {@linkcode Outbox.onWaiting}.
   */
  receive(frame: ServerFrame, me: string): boolean {
    const flight = this.#inFlight;
    if (flight === undefined || !("ref" in frame) || frame.ref !== flight.ref) return false;
    if ((frame.type === "msg" || frame.type === "dm") && frame.from !== me) return false;
    const transient = frame.type === "error" &&
      (frame.code === "rate_limited" || frame.code === "storage_failed");
    if (transient) {
      // Not sent, and worth sending again: nothing typed or piped in is lost.
      if (frame.code === "storage_failed" && !this.#storeAway) {
        this.#storeAway = true;
        this.onWaiting?.(frame.message);
      }
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#link?.send(messageFrame(flight));
      }, frame.retryMs ?? STORE_RETRY_MS);
      return true;
    }
    this.#storeAway = false;
    // Confirmed, or refused for good (an error the user is shown).
    this.#inFlight = undefined;
    this.onSettled?.(frame);
    this.#pump();
    return false;
  }

  /** Hears, once a time, that the server cannot store messages and they wait. */
  onWaiting: ((message: string) => void) | undefined;

  /** Hears of each message confirmed (its echo) or refused for good (the error). */
  onSettled: ((frame: ServerFrame) => void) | undefined;

  /** Stops timers. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #pump(): void {
    if (this.#inFlight || this.#timer !== undefined || !this.#link || this.#awaitingReplay) return;
    const next = this.#queue[0];
    if (next === undefined) return this.#idle.resolve();
    const wait = this.#bucket.take(performance.now());
    if (wait > 0) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#pump();
      }, wait);
      return;
    }
    this.#queue.shift();
    this.#inFlight = { ...next, ref: this.#nextRef++ };
    this.#link.send(messageFrame(this.#inFlight));
  }
}

function messageFrame(message: Outgoing & { ref: number }): ClientFrame {
  return message.to === undefined
    ? {
      type: "msg",
      text: message.text,
      ...(message.action ? { action: true } : {}),
      ref: message.ref,
    }
    : { type: "dm", to: message.to, text: message.text, ref: message.ref };
}

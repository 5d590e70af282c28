/**
 * The hub: the one place that owns the chat's shared state.
 *
 * It holds who is online under which name, hands out message ids, and
 * broadcasts. A broadcast encodes its frame once (and once more as a text
 * line if any plain-text client is online) and pushes the same bytes into
 * every member's outbound queue; it never waits for a member. A member whose
 * queue is full is reported through `onOverflow` after the broadcast has
 * reached everyone else, so that disconnecting it (and announcing that)
 * cannot interleave with the message being delivered.
 *
 * @module
 */

import { encodeFrame, type EventFrame, type MessageFrame, nameKey } from "./protocol.ts";
import { renderFrame } from "./render.ts";

/** A joined session, as the hub sees it. */
export interface Member {
  /** The granted name; the hub sets it. */
  name: string;
  /** A plain-text (nc, telnet) client rather than a protocol client. */
  readonly plain: boolean;
  /** Queues bytes for the member; false when its queue is full. */
  deliver(bytes: Uint8Array): boolean;
}

/** Options for {@linkcode Hub}. */
export interface HubOptions {
  /** Join and leave notices go out only while at most this many are online. */
  announceLimit: number;
  /** Called for each member whose queue overflowed, after the broadcast. */
  onOverflow: (member: Member) => void;
}

/** How many names a welcome lists; `who` lists up to {@linkcode WHO_LIMIT}. */
export const WELCOME_LIMIT = 200;
/** How many names a `who` answer lists at most. */
export const WHO_LIMIT = 1000;

const lineEncoder = new TextEncoder();

/**
 * Who is online, and the broadcast to them.
 *
 * @example
 * ```ts
 * import { Hub } from "./hub.ts";
 * const hub = new Hub({ announceLimit: 200, onOverflow: () => {} });
 * const member = { name: "", plain: false, deliver: () => true };
 * if (hub.claim(member, "ada")) hub.announceJoin(member);
 * hub.say(member, "hello");
 * ```
 */
export class Hub {
  readonly #members = new Map<string, Member>();
  readonly #options: HubOptions;
  #nextId = 1;
  #plainCount = 0;
  #guests = 0;
  #closed = false;

  constructor(options: HubOptions) {
    this.#options = options;
  }

  /** How many members are online. */
  get size(): number {
    return this.#members.size;
  }

  /** Gives `member` the name if it is free; false when it is taken. */
  claim(member: Member, name: string): boolean {
    const key = nameKey(name);
    if (this.#closed || this.#members.has(key)) return false;
    member.name = name;
    this.#members.set(key, member);
    if (member.plain) this.#plainCount++;
    return true;
  }

  /** A free name of the form `guestN`. */
  guestName(): string {
    for (;;) {
      const name = `guest${++this.#guests}`;
      if (!this.#members.has(name)) return name;
    }
  }

  /** Tells everyone that `member` joined (while the room is small enough). */
  announceJoin(member: Member): void {
    if (this.#closed || this.size > this.#options.announceLimit) return;
    this.#broadcast({ type: "event", ...this.#stamp(), event: "join", name: member.name });
  }

  /**
   * Renames `member`; false when the new name is someone else's. Changing
   * only the case of one's own name is allowed.
   */
  rename(member: Member, name: string): boolean {
    const key = nameKey(name);
    const holder = this.#members.get(key);
    if (holder !== undefined && holder !== member) return false;
    const old = member.name;
    this.#members.delete(nameKey(old));
    member.name = name;
    this.#members.set(key, member);
    this.#broadcast({ type: "event", ...this.#stamp(), event: "rename", name, from: old });
    return true;
  }

  /** Removes `member` if it is online and tells the others why it left. */
  leave(member: Member, reason: string): void {
    const key = nameKey(member.name);
    if (this.#members.get(key) !== member) return;
    this.#members.delete(key);
    if (member.plain) this.#plainCount--;
    if (this.#closed || this.size >= this.#options.announceLimit) return;
    this.#broadcast({
      type: "event",
      ...this.#stamp(),
      event: "leave",
      name: member.name,
      reason,
    });
  }

  /** Relays a chat message from `member` to everyone, the sender included. */
  say(member: Member, text: string, ref?: number): void {
    const frame: MessageFrame = { type: "msg", ...this.#stamp(), from: member.name, text };
    if (ref !== undefined) frame.ref = ref;
    this.#broadcast(frame, member);
  }

  /** Names online, sorted; a sample of at most `limit` when there are more. */
  names(limit: number): string[] {
    const names: string[] = [];
    for (const member of this.#members.values()) {
      if (names.length === limit) break;
      names.push(member.name);
    }
    return names.sort((a, b) => a.localeCompare(b));
  }

  /**
   * For shutdown: stops joins and notices, and returns every member so the
   * server can tell each one the server is going.
   */
  close(): Member[] {
    this.#closed = true;
    return [...this.#members.values()];
  }

  #stamp(): { id: number; ts: number } {
    return { id: this.#nextId++, ts: Date.now() };
  }

  #broadcast(frame: MessageFrame | EventFrame, sender?: Member): void {
    const bytes = encodeFrame(frame);
    // Plain clients read their own typing on screen; they get no echo.
    const line = this.#plainCount > 0 ? lineEncoder.encode(renderFrame(frame) + "\r\n") : bytes;
    let overflowed: Member[] | undefined;
    for (const member of this.#members.values()) {
      if (member.plain && member === sender) continue;
      if (!member.deliver(member.plain ? line : bytes)) (overflowed ??= []).push(member);
    }
    for (const member of overflowed ?? []) this.#options.onOverflow(member);
  }
}

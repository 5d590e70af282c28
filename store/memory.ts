/**
 * The journal of a server without `--db` or `--redis`: history lives only
 * in the hub's memory, so there is nothing to store, and what the hub
 * writes is handed back at once, in its order, with its numbers.
 *
 * @module
 */

import type { Journal, Numbered, Tagged } from "./journal.ts";
import type { RoomRecord } from "./sqlite.ts";

/**
 * A journal that keeps nothing.
 *
 * @example
 * ```ts
 * import { MemoryJournal } from "./memory.ts";
 * const journal = new MemoryJournal();
 * journal.follow((items) => console.log(items.length, "to relay"));
 * journal.write([{ kind: "beat", node: journal.node, tag: 1, id: 1 }], []);
 * ```
 */
export class MemoryJournal implements Journal {
  readonly node = "local";
  readonly numbers = false;
  readonly immediate = true;
  #relay: (items: Numbered[]) => void = () => {};

  /** Hands the items straight back: they were numbered by the hub. */
  write(items: Tagged[], _rooms: RoomRecord[]): void {
    this.#relay(items as Numbered[]);
  }

  follow(relay: (items: Numbered[]) => void): void {
    this.#relay = relay;
  }

  /** Nothing was kept of a room let go of. */
  loadRoom(): undefined {
    return undefined;
  }

  saveBan(): void {}

  removeBan(): void {}

  saveMotd(): void {}
}

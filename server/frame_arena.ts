/**
 * Where a room's broadcast frames are kept: one after another in shared
 * slabs, so that the frames a recipient has waiting are, most of the time,
 * one run of bytes. Its outbound queue then writes that run as it stands
 * (see `OutboundQueue`), rather than every recipient copying every frame
 * into a batch of its own: at two million deliveries a second, those copies
 * were a seventh of the server's time.
 *
 * Bytes in a slab are never written over, so a view of them stays valid for
 * as long as anyone holds it. A slab lives while a queue holds a view of it.
 * A queue holds at most one slab it is owed only part of: every member of
 * the room is owed every frame in it, as the hub keeps out of it what some
 * members are not sent (a second encoding of a frame, the messages of a
 * client that is not sent its own), and a member that leaves the room copies
 * what it still has waiting out of it (`OutboundQueue.unpin`). So a reader
 * pins at most a slab beyond what its own queue counts. The arena lets go of
 * its own slab once the room has been quiet for a while
 * ({@linkcode FrameArena.idle}), so a quiet room holds nothing.
 *
 * @module
 */

/** How large a slab is; a frame larger than a quarter of it is kept on its own. */
const SLAB_BYTES = 32 * 1024;

/**
 * Copies frames into shared slabs, each right after the one before.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { FrameArena } from "./frame_arena.ts";
 * const arena = new FrameArena();
 * const a = arena.keep(new TextEncoder().encode("one\n"));
 * const b = arena.keep(new TextEncoder().encode("two\n"));
 * assert.equal(a.buffer, b.buffer);
 * assert.equal(a.byteOffset + a.length, b.byteOffset); // adjacent
 * ```
 */
export class FrameArena {
  #slab: Uint8Array | undefined;
  #used = 0;
  #kept = false;

  /** A copy of `bytes` in the arena, right after the last one kept when there is room. */
  keep(bytes: Uint8Array): Uint8Array {
    if (bytes.length > SLAB_BYTES / 4) return bytes;
    this.#kept = true;
    if (this.#slab === undefined || this.#used + bytes.length > SLAB_BYTES) {
      this.#slab = new Uint8Array(SLAB_BYTES);
      this.#used = 0;
    }
    const start = this.#used;
    this.#slab.set(bytes, start);
    this.#used += bytes.length;
    return this.#slab.subarray(start, this.#used);
  }

  /**
   * Called now and then (about once a second): lets go of the slab if nothing
   * was kept since the last call, so that a quiet room holds no slab.
   */
  idle(): void {
    if (!this.#kept) this.#slab = undefined;
    this.#kept = false;
  }
}

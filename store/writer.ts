/**
 * The server's handle on its database: writes go to a worker thread
 * (`store/worker.ts`) and come back as promises, so the event loop never
 * waits for SQLite.
 *
 * Loading happens once at start, on the calling thread, so that a database
 * that cannot be opened is reported before the server listens.
 *
 * @module
 */

import { ID_BLOCK, type LoadedState, type RoomRecord, type StoredRoom } from "./sqlite.ts";
import { SqliteStore, type StoredMessage } from "./sqlite.ts";
import type { BanRecord } from "../server/moderation.ts";
import { type Journal, NotSent, type Numbered, type Tagged } from "./journal.ts";

/** A request to the worker. */
export type WorkerRequest =
  & { n: number }
  & (
    | { kind: "open"; path: string }
    | { kind: "write"; messages: StoredMessage[]; rooms: RoomRecord[] }
    | { kind: "reserve"; until: number }
    | { kind: "ban"; ban: BanRecord }
    | { kind: "unban"; key: string }
    | { kind: "close" }
  );

/** The worker's answer to request `n`. */
export type WorkerReply = { n: number; ok: true } | { n: number; ok: false; error: string };

type Request = WorkerRequest extends infer R ? R extends unknown ? Omit<R, "n"> : never : never;

/**
 * Writes batches to SQLite on a worker thread.
 *
 * @example
 * ```ts
 * import { StoreWriter } from "./writer.ts";
 * const { writer, loaded } = StoreWriter.open("chat.db", { retention: 1000 });
 * console.log(`${loaded.rooms.length} rooms`);
 * await writer.write([], [{ name: "lobby", topic: "", epoch: "3f2a9c01", pinned: false }]);
 * await writer.close();
 * ```
 */
export class StoreWriter implements Journal {
  readonly node = "local";
  readonly numbers = false;
  readonly immediate = false;
  #relay: (items: Numbered[]) => void = () => {};
  readonly #worker: Worker;
  readonly #waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  #next = 0;
  #reservedUntil: number;
  readonly #path: string;
  readonly #retention: number;
  /** A read-only connection on this thread, opened the first time a room is recalled. */
  #reader: SqliteStore | undefined;
  #closed: Promise<void> | undefined;
  /** Why the thread died, if it did: every later request fails with it. */
  #dead: Error | undefined;

  private constructor(path: string, retention: number, reservedUntil: number) {
    this.#path = path;
    this.#retention = retention;
    this.#reservedUntil = reservedUntil;
    this.#worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
    this.#worker.onmessage = (event: MessageEvent<WorkerReply>) => {
      const reply = event.data;
      const waiter = this.#waiting.get(reply.n);
      this.#waiting.delete(reply.n);
      if (reply.ok) waiter?.resolve();
      else waiter?.reject(new Error(reply.error));
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      this.#dead = new Error(`the database thread stopped: ${event.message}`);
      for (const waiter of this.#waiting.values()) waiter.reject(this.#dead);
      this.#waiting.clear();
    };
    this.#request({ kind: "open", path }).catch(() => {}); // a failure is tried again by the next write
  }

  /**
   * Loads the database at `path` (creating it if need be) and starts the
   * writer; throws a `DatabaseError` when it cannot be used.
   */
  static open(path: string, options: { retention: number }): {
    writer: StoreWriter;
    loaded: LoadedState;
  } {
    const store = SqliteStore.open(path);
    let loaded: LoadedState;
    try {
      loaded = store.load(options.retention);
    } finally {
      store.close();
    }
    return { writer: new StoreWriter(path, options.retention, loaded.reservedUntil), loaded };
  }

  /**
   * Stores the messages among `items` and the room records in one
   * transaction, then hands the items back to relay. When that fails, only
   * the notices are relayed, and it rejects with {@linkcode NotSent}.
   */
  write(items: Tagged[], rooms: RoomRecord[]): Promise<void> | void {
    const messages: StoredMessage[] = [];
    let lastId = 0;
    for (const item of items) {
      lastId = Math.max(lastId, item.id!);
      if (item.kind === "msg") messages.push({ ...item.message, id: item.id!, seq: item.seq! });
    }
    this.#reserveIds(lastId + 1);
    // Notices and private messages are not kept: with nothing else, they go at once.
    if (messages.length === 0 && rooms.length === 0) return this.#relay(items as Numbered[]);
    return this.#request({ kind: "write", messages, rooms }).then(
      () => this.#relay(items as Numbered[]),
      (error) => {
        this.#relay(items.filter((item) => item.kind === "event") as Numbered[]);
        throw new NotSent(error instanceof Error ? error.message : String(error));
      },
    );
  }

  follow(relay: (items: Numbered[]) => void): void {
    this.#relay = relay;
  }

  /**
   * Hears of the next id to be handed out; it reserves a new block on disk
   * well before the current one runs out, so ids keep increasing across
   * restarts without a write per id.
   */
  #reserveIds(nextId: number): void {
    if (nextId + ID_BLOCK / 2 < this.#reservedUntil) return;
    this.#reservedUntil = nextId + ID_BLOCK;
    this.#request({ kind: "reserve", until: this.#reservedUntil }).catch(() => {
      // The next batch's write meets the same failure and is refused there.
    });
  }

  /** Stores a ban; a failure is only logged by the caller's next write, as bans are rare. */
  saveBan(ban: BanRecord): void {
    this.#request({ kind: "ban", ban }).catch(() => {});
  }

  /** Forgets the ban on a name's key. */
  removeBan(key: string): void {
    this.#request({ kind: "unban", key }).catch(() => {});
  }

  /** The message of the day is not kept across restarts. */
  saveMotd(): void {}

  /**
   * A room the server let go of when it stood empty, as stored, or
   * undefined if the database has none. Reads on this thread: a reader
   * never waits for the writer in WAL mode, and rooms are made rarely (it
   * is rate-limited); a lock held longer than 100 ms throws.
   */
  loadRoom(name: string): StoredRoom | undefined {
    this.#reader ??= SqliteStore.openReader(this.#path, { busyTimeoutMs: 100 });
    return this.#reader.loadRoom(name, this.#retention);
  }

  /** Finishes what was posted, closes the database and stops the thread. */
  close(): Promise<void> {
    this.#reader?.close();
    this.#reader = undefined;
    this.#closed ??= this.#request({ kind: "close" }).catch(() => {}).finally(() => {
      this.#worker.terminate();
    });
    return this.#closed;
  }

  #request(request: Request): Promise<void> {
    if (this.#dead) return Promise.reject(this.#dead);
    const n = this.#next++;
    return new Promise<void>((resolve, reject) => {
      this.#waiting.set(n, { resolve, reject });
      this.#worker.postMessage({ ...request, n });
    });
  }
}

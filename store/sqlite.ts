/**
 * Durable history: rooms and messages in SQLite (`node:sqlite`, WAL).
 *
 * The hub hands over messages in batches, each written in one transaction
 * before any of them is relayed, so a message someone has seen (its sender's
 * echo included) is on disk and survives a crash or `kill -9`. The database
 * keeps every message, for `chat log`; what the server replays to clients is
 * the last `retention` of each room, loaded at start.
 *
 * Message ids are handed out in reserved blocks (the "hi-lo" scheme), so ids
 * keep increasing across restarts without a write per message.
 *
 * @module
 */

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { newEpoch } from "../server/history.ts";
import type { BanRecord } from "../server/moderation.ts";

/** A stored chat message. */
export interface StoredMessage {
  room: string;
  seq: number;
  id: number;
  ts: number;
  from: string;
  text: string;
  /** An action (`/me …`). */
  action?: boolean;
  ref?: number;
}

/** A room's row: its name, topic, the epoch its seqs count in, and whether an operator pinned it. */
export interface RoomRecord {
  name: string;
  topic: string;
  epoch: string;
  pinned: boolean;
}

/** A room as loaded at start: its record, last seq and recent messages. */
export interface StoredRoom extends RoomRecord {
  lastSeq: number;
  recent: StoredMessage[];
}

/** Ids are reserved this many at a time. */
export const ID_BLOCK = 100_000;

/** What a server starts from: the rooms, and where ids go on. */
export interface LoadedState {
  rooms: StoredRoom[];
  /** The first id not yet used. */
  nextId: number;
  /** Ids below this are reserved on disk for this run. */
  reservedUntil: number;
  /** The bans in force. */
  bans: BanRecord[];
}

/**
 * The key a room's rows are filed under. It stays this simple (not the
 * hub's lookalike-proof name key) so that a database keeps working when the
 * name rules change.
 */
function roomKey(name: string): string {
  return name.normalize("NFC").toLowerCase();
}

/**
 * The database could not be opened or read: a wrong path, a folder that is
 * not writable, or a file that is not a chat database.
 *
 * @example
 * ```ts
 * import { DatabaseError, SqliteStore } from "./sqlite.ts";
 * try {
 *   SqliteStore.open("/no/such/folder/chat.db");
 * } catch (error) {
 *   if (error instanceof DatabaseError) console.error(error.message);
 * }
 * ```
 */
export class DatabaseError extends Error {}

function databaseError(path: string, error: unknown): DatabaseError {
  const reason = error instanceof Error ? error.message : String(error);
  return new DatabaseError(`cannot use the database ${path}: ${reason}`);
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS rooms (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    topic TEXT NOT NULL DEFAULT '',
    epoch TEXT NOT NULL DEFAULT '',
    pinned INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS messages (
    room_key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    ref INTEGER,
    action INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_key, seq)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS messages_ts ON messages (ts);
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS bans (
    key TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    address TEXT,
    until INTEGER,
    reason TEXT NOT NULL DEFAULT ''
  ) WITHOUT ROWID;
`;

/**
 * The SQLite store of one server.
 *
 * @example
 * ```ts
 * import { SqliteStore } from "./sqlite.ts";
 * const store = SqliteStore.open("chat.db");
 * const { rooms, nextId } = store.load(1000);
 * store.close();
 * ```
 */
export class SqliteStore {
  readonly #db: DatabaseSync;
  readonly #path: string;
  readonly #insertMessage: StatementSync;
  readonly #upsertRoom: StatementSync;

  private constructor(db: DatabaseSync, path: string) {
    this.#db = db;
    this.#path = path;
    this.#insertMessage = db.prepare(
      "INSERT INTO messages (room_key, seq, id, ts, sender, text, ref, action) " +
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.#upsertRoom = db.prepare(
      "INSERT INTO rooms (key, name, topic, epoch, pinned) VALUES (?, ?, ?, ?, ?) " +
        "ON CONFLICT (key) DO UPDATE SET topic = excluded.topic, pinned = excluded.pinned",
    );
  }

  /**
   * Opens the database at `path` to read only, for {@linkcode SqliteStore.loadRoom}
   * beside a writer; a read waits at most `busyTimeoutMs` for a lock.
   */
  static openReader(path: string, options: { busyTimeoutMs: number }): SqliteStore {
    try {
      const db = new DatabaseSync(path, { readOnly: true });
      db.exec(`PRAGMA busy_timeout = ${options.busyTimeoutMs};`);
      return new SqliteStore(db, path);
    } catch (error) {
      throw databaseError(path, error);
    }
  }

  /**
   * Opens (creating if need be) the database at `path`; throws
   * {@linkcode DatabaseError}. A write waits at most `busyTimeoutMs` for
   * another process's lock before it fails.
   */
  static open(path: string, options: { busyTimeoutMs?: number } = {}): SqliteStore {
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path);
      const busy = options.busyTimeoutMs ?? 5000;
      // The timeout first: switching to WAL waits for a reader opening the file at that moment.
      db.exec(
        `PRAGMA busy_timeout = ${busy}; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;`,
      );
      db.exec(SCHEMA);
      // Databases made before rooms had epochs.
      const columns = db.prepare("PRAGMA table_info(rooms)").all() as { name: string }[];
      if (!columns.some((c) => c.name === "epoch")) {
        db.exec("ALTER TABLE rooms ADD COLUMN epoch TEXT NOT NULL DEFAULT ''");
      }
      if (!columns.some((c) => c.name === "pinned")) {
        db.exec("ALTER TABLE rooms ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0");
      }
      const messageColumns = db.prepare("PRAGMA table_info(messages)").all() as { name: string }[];
      if (!messageColumns.some((c) => c.name === "action")) {
        db.exec("ALTER TABLE messages ADD COLUMN action INTEGER NOT NULL DEFAULT 0");
      }
      return new SqliteStore(db, path);
    } catch (error) {
      db?.close();
      throw databaseError(path, error);
    }
  }

  /**
   * Loads every room with its last `retention` messages, and the next free
   * id, reserving a block of ids from it; throws {@linkcode DatabaseError}.
   */
  load(retention: number): LoadedState {
    try {
      return this.#load(retention);
    } catch (error) {
      throw databaseError(this.#path, error);
    }
  }

  #load(retention: number): LoadedState {
    const rooms = this.#db.prepare("SELECT key, name, topic, epoch, pinned FROM rooms ORDER BY key")
      .all() as unknown as RoomRow[];
    const setEpoch = this.#db.prepare("UPDATE rooms SET epoch = ? WHERE key = ?");
    for (const room of rooms) {
      if (room.epoch === "") setEpoch.run(room.epoch = newEpoch(), room.key);
    }
    const loaded = rooms.map((room) => this.#withRecent(room, retention));
    const reserved = this.#db.prepare("SELECT value FROM meta WHERE key = 'next_id'").get() as
      | { value: number }
      | undefined;
    const maxId = (this.#db.prepare("SELECT max(id) AS id FROM messages").get() as {
      id: number | null;
    }).id ?? 0;
    const nextId = Math.max(reserved?.value ?? 1, maxId + 1);
    const reservedUntil = nextId + ID_BLOCK;
    this.reserveIdsUntil(reservedUntil);
    this.#db.prepare("DELETE FROM bans WHERE until IS NOT NULL AND until <= ?").run(Date.now());
    const rows = this.#db.prepare("SELECT key, name, address, until, reason FROM bans").all() as {
      key: string;
      name: string;
      address: string | null;
      until: number | null;
      reason: string;
    }[];
    const bans = rows.map((row) => ({
      key: row.key,
      name: row.name,
      reason: row.reason,
      ...(row.address === null ? {} : { address: row.address }),
      ...(row.until === null ? {} : { until: row.until }),
    }));
    return { rooms: loaded, nextId, reservedUntil, bans };
  }

  /**
   * One room as it is stored, with its last `retention` messages, or
   * undefined if the database has no such room: for a room the server let
   * go of when it stood empty, and now made again.
   */
  loadRoom(name: string, retention: number): StoredRoom | undefined {
    const room = this.#db.prepare("SELECT key, name, topic, epoch, pinned FROM rooms WHERE key = ?")
      .get(roomKey(name)) as unknown as RoomRow | undefined;
    return room === undefined || room.epoch === "" ? undefined : this.#withRecent(room, retention);
  }

  #withRecent(room: RoomRow, retention: number): StoredRoom {
    const rows = this.#db.prepare(
      "SELECT seq, id, ts, sender, text, ref, action FROM messages WHERE room_key = ? " +
        "ORDER BY seq DESC LIMIT ?",
    ).all(room.key, retention).reverse() as unknown as Row[];
    return {
      name: room.name,
      topic: room.topic,
      epoch: room.epoch,
      pinned: room.pinned === 1,
      lastSeq: rows.at(-1)?.seq ?? 0,
      recent: rows.map((row) => fromRow(room.name, row)),
    };
  }

  /** Stores a ban, replacing any on the same name. */
  saveBan(ban: BanRecord): void {
    this.#db.prepare(
      "INSERT OR REPLACE INTO bans (key, name, address, until, reason) VALUES (?, ?, ?, ?, ?)",
    ).run(ban.key, ban.name, ban.address ?? null, ban.until ?? null, ban.reason);
  }

  /** Forgets the ban on a name's key. */
  removeBan(key: string): void {
    this.#db.prepare("DELETE FROM bans WHERE key = ?").run(key);
  }

  /** Records that no id below `until` may be handed out again, after a restart too. */
  reserveIdsUntil(until: number): void {
    this.#db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_id', ?)").run(until);
  }

  /** Stores messages and room topics in one transaction; throws on failure. */
  write(messages: StoredMessage[], rooms: RoomRecord[]): void {
    this.#db.exec("BEGIN");
    try {
      for (const room of rooms) {
        this.#upsertRoom.run(
          roomKey(room.name),
          room.name,
          room.topic,
          room.epoch,
          room.pinned ? 1 : 0,
        );
      }
      for (const m of messages) {
        this.#insertMessage.run(
          roomKey(m.room),
          m.seq,
          m.id,
          m.ts,
          m.from,
          m.text,
          m.ref ?? null,
          m.action ? 1 : 0,
        );
      }
      this.#db.exec("COMMIT");
    } catch (error) {
      this.#db.exec("ROLLBACK");
      throw error;
    }
  }

  close(): void {
    this.#db.close();
  }
}

interface RoomRow {
  key: string;
  name: string;
  topic: string;
  epoch: string;
  pinned: number;
}

interface Row {
  seq: number;
  id: number;
  ts: number;
  sender: string;
  text: string;
  ref: number | null;
  action: number;
  room?: string;
}

function fromRow(room: string, row: Row): StoredMessage {
  const message: StoredMessage = {
    room,
    seq: row.seq,
    id: row.id,
    ts: row.ts,
    from: row.sender,
    text: row.text,
  };
  if (row.ref !== null) message.ref = row.ref;
  if (row.action) message.action = true;
  return message;
}

/**
 * Reads a transcript from a database, oldest first, one room or all, from a
 * time on. Opens the database read-only, so it is safe beside a running server.
 *
 * @example
 * ```ts
 * import { readTranscript } from "./sqlite.ts";
 * for (const m of readTranscript("chat.db", { room: "lobby" })) console.log(m.text);
 * ```
 */
export function* readTranscript(
  path: string,
  options: { room?: string; sinceMs?: number } = {},
): Generator<StoredMessage> {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { readOnly: true });
  } catch (error) {
    throw databaseError(path, error);
  }
  try {
    const where = ["m.ts >= ?"];
    const params: (string | number)[] = [options.sinceMs ?? 0];
    if (options.room !== undefined) {
      where.push("m.room_key = ?");
      params.push(roomKey(options.room));
    }
    let query: StatementSync;
    try {
      query = db.prepare(
        "SELECT r.name AS room, m.seq, m.id, m.ts, m.sender, m.text, m.ref, m.action FROM messages m " +
          `JOIN rooms r ON r.key = m.room_key WHERE ${where.join(" AND ")} ORDER BY m.id`,
      );
    } catch (error) {
      throw databaseError(path, error);
    }
    for (const row of query.iterate(...params) as Iterable<Row>) yield fromRow(row.room!, row);
  } finally {
    db.close();
  }
}

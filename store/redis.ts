/**
 * Redis as the shared store of several `chat serve` nodes (`--redis URL`).
 *
 * One Redis stream, the bus, carries everything the nodes tell each other,
 * in one order: messages, events, private messages, who is where. A Lua
 * script numbers each item as it appends it (a global id; for a message,
 * its room's next seq) and stores a message in its room's stream, so a
 * message is kept before any node relays it, and every node relays the
 * messages of a room in the same order, by reading the bus. A node that
 * lost Redis for a while reads on from the last entry it had: nothing is
 * skipped.
 *
 * Names are keys with a lease the holding node renews: a name held on one
 * node is refused on the others, and a dead node's names come free when
 * their leases run out.
 *
 * @module
 */

import { Redis } from "ioredis";
import type { RoomRecord, StoredMessage, StoredRoom } from "./sqlite.ts";
import type { DirectFrame } from "../protocol.ts";
import type { BanRecord } from "../server/moderation.ts";
import { type Journal, NotSent, type Numbered, type SharedNames, type Tagged } from "./journal.ts";
import { redisSettings } from "./redis_url.ts";

/** Where a node's Redis is and how to reach it. */
export interface RedisOptions {
  /** `redis://[:PASSWORD@]HOST[:PORT][/DB]`, or `rediss://` for TLS. */
  url: string;
  /** Messages kept per room in Redis for history and resume. */
  retention: number;
  /** How long a name stays claimed without renewal, in ms. */
  leaseMs: number;
  /** With `rediss://`: a PEM certificate to trust besides the system's (a lab's own). */
  ca?: string;
  log: (line: string) => void;
}

const PREFIX = "chat:";
const BUS_MAX = 100_000;
/** Private messages kept per name for a client coming back on another node. */
const DIRECT_LOG_LENGTH = 64;

// Appends one node's items to the bus in one go, numbering them, and stores messages in their
// rooms' streams. A node tags its items in increasing order and Redis keeps the highest tag
// it took from each node, so an item tried again is published once: one key per node, not
// one per message. JSON is patched as text, not decoded: Lua's numbers would round large refs.
const PUBLISH = `
local out = {}
local retention = ARGV[1]
local taken = '${PREFIX}published:' .. ARGV[2]
local last = tonumber(redis.call('GET', taken) or '0')
for i = 3, #ARGV, 4 do
  local roomkey = ARGV[i]
  local tag = tonumber(ARGV[i + 1])
  local logs = ARGV[i + 2]
  local json = ARGV[i + 3]
  if tag <= last then
    out[#out + 1] = 0
  else
  last = tag
  local id = redis.call('INCR', '${PREFIX}ids')
  local fields = ',"id":' .. id
  if roomkey ~= '' then
    local seq = redis.call('HINCRBY', '${PREFIX}room:' .. roomkey, 'lastSeq', 1)
    redis.call('SADD', '${PREFIX}rooms', roomkey)
    fields = fields .. ',"seq":' .. seq
    json = string.sub(json, 1, -2) .. fields .. '}'
    redis.call('XADD', '${PREFIX}msgs:' .. roomkey, 'MAXLEN', '~', retention, seq .. '-0', 'm', json)
  else
    json = string.sub(json, 1, -2) .. fields .. '}'
  end
  redis.call('XADD', '${PREFIX}bus', 'MAXLEN', '~', ${BUS_MAX}, '*', 'd', json)
  for key in string.gmatch(logs, '[^\\n]+') do
    redis.call('RPUSH', '${PREFIX}dms:' .. key, json)
    redis.call('LTRIM', '${PREFIX}dms:' .. key, -${DIRECT_LOG_LENGTH}, -1)
    redis.call('EXPIRE', '${PREFIX}dms:' .. key, 3600)
  end
  out[#out + 1] = id
  end
end
redis.call('SET', taken, last, 'EX', 86400)
return out`;

// Claims a name: free (1), or held under the token presented (2: a client coming back).
const CLAIM = `
local v = redis.call('GET', KEYS[1])
local answer = 1
if v then
  local token = string.sub(v, 1, (string.find(v, '|', 1, true) or 0) - 1)
  if ARGV[1] == '' or token ~= ARGV[1] then return 0 end
  answer = 2
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return answer`;

// Lets a name go, unless another node took it over meanwhile.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

type Scripted = Redis & {
  chatPublish(...args: (string | number)[]): Promise<number[]>;
  chatClaim(key: string, presented: string, value: string, leaseMs: number): Promise<number>;
  chatRelease(key: string, value: string): Promise<number>;
};

/**
 * One node's connection to the shared Redis.
 *
 * @example
 * ```ts ignore
 * import { RedisStore } from "./redis.ts";
 * const store = await RedisStore.connect({
 *   url: "redis://127.0.0.1:6379", retention: 1000, leaseMs: 15_000, log: console.error,
 * });
 * store.follow((items) => console.log(items));
 * ```
 */
export class RedisStore implements Journal, SharedNames {
  /** This node's name on the bus. */
  readonly node = crypto.randomUUID().slice(0, 8);
  /** Names the seqs of this Redis dataset: a wiped Redis starts a new one. */
  readonly epoch: string;
  /** Redis numbers what the nodes write, in one order. */
  readonly numbers = true;
  readonly immediate = false;
  /** Names are held across the nodes. */
  readonly shared: SharedNames = this;
  readonly #redis: Scripted;
  readonly #reader: Redis;
  readonly #options: RedisOptions;
  #lastId: string;
  #following = false;
  #closed = false;

  private constructor(
    redis: Scripted,
    reader: Redis,
    epoch: string,
    lastId: string,
    options: RedisOptions,
  ) {
    this.#redis = redis;
    this.#reader = reader;
    this.epoch = epoch;
    this.#lastId = lastId;
    this.#options = options;
  }

  /** Connects, or throws an Error that says why (the server exits 3). */
  static async connect(options: RedisOptions): Promise<RedisStore> {
    const settings = redisSettings(options.url);
    if (settings.tls && options.ca) settings.tls = { ca: [options.ca] };
    const make = (resend: boolean) =>
      new Redis({
        ...settings,
        lazyConnect: true,
        connectTimeout: 3000,
        maxRetriesPerRequest: 1,
        // A write cut off by a lost connection is not sent again by itself: the hub
        // decides. The bus reader's blocking read is sent again, or it would wait for ever.
        autoResendUnfulfilledCommands: resend,
        // Reconnect for ever, backing off to 2 s; commands meanwhile fail at once.
        retryStrategy: (times: number) => Math.min(2000, 50 * 2 ** Math.min(times, 6)),
      });
    const redis = make(false) as Scripted;
    const reader = make(true);
    let lost = false;
    let connected = false;
    for (const connection of [redis, reader]) {
      connection.on("error", () => {}); // told once, below, by "close"
      connection.on("close", () => {
        if (!connected) return; // the first connect's failure is told by the error below
        if (!lost && connection.status !== "end") {
          options.log(
            "redis: lost the connection to Redis; new messages are refused until it is back",
          );
        }
        lost = true;
      });
      connection.on("ready", () => {
        if (lost) options.log("redis: connected again");
        lost = false;
      });
    }
    try {
      await Promise.all([redis.connect(), reader.connect()]);
      connected = true;
    } catch (error) {
      redis.disconnect();
      reader.disconnect();
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(
        `cannot reach Redis at ${settings.host}:${settings.port}: ${reason.replace(/\.$/, "")}`,
      );
    }
    redis.defineCommand("chatPublish", { numberOfKeys: 0, lua: PUBLISH });
    redis.defineCommand("chatClaim", { numberOfKeys: 1, lua: CLAIM });
    redis.defineCommand("chatRelease", { numberOfKeys: 1, lua: RELEASE });
    await redis.setnx(`${PREFIX}epoch`, crypto.randomUUID().replaceAll("-", "").slice(0, 12));
    const epoch = (await redis.get(`${PREFIX}epoch`))!;
    const last = await redis.xrevrange(`${PREFIX}bus`, "+", "-", "COUNT", 1);
    return new RedisStore(redis, reader, epoch, last[0]?.[0] ?? "0-0", options);
  }

  /** Whether commands can be sent now. */
  get available(): boolean {
    return this.#redis.status === "ready";
  }

  /**
   * The rooms stored, with their last `retention` messages; read after the
   * bus position was taken, so what the bus brings next is not older.
   */
  async loadRooms(): Promise<StoredRoom[]> {
    const keys = await this.#redis.smembers(`${PREFIX}rooms`);
    const rooms: StoredRoom[] = [];
    for (const key of keys) {
      const room = await this.#loadRoom(key);
      if (room) rooms.push(room);
    }
    return rooms;
  }

  /** One room as stored, with its last `retention` messages; undefined if there is none. */
  loadRoom(name: string): Promise<StoredRoom | undefined> {
    return this.#loadRoom(roomKey(name));
  }

  async #loadRoom(key: string): Promise<StoredRoom | undefined> {
    const record = await this.#redis.hgetall(`${PREFIX}room:${key}`);
    const entries = await this.#redis.xrevrange(
      `${PREFIX}msgs:${key}`,
      "+",
      "-",
      "COUNT",
      this.#options.retention,
    );
    const recent = entries.reverse().map(([, fields]) => toMessage(JSON.parse(fields[1])));
    const name = record.name ?? recent.at(-1)?.room;
    if (name === undefined) return undefined;
    return {
      name,
      topic: record.topic ?? "",
      pinned: record.pinned === "1",
      epoch: this.epoch,
      lastSeq: Number(record.lastSeq ?? 0),
      recent,
    };
  }

  /**
   * Appends this node's items to the bus and stores the room records. An
   * item whose tag Redis has taken already is skipped, so trying a batch
   * again is safe. Every node, this one too, relays the items when it reads
   * them from the bus.
   */
  async write(items: Tagged[], rooms: RoomRecord[]): Promise<void> {
    await Promise.all([
      items.length > 0 ? this.publish(items) : undefined,
      ...rooms.map((record) => this.saveRoom(record)),
    ]);
  }

  /**
   * Appends this node's items to the bus, numbered, in the order of their
   * tags; returns their ids (0 for one skipped). Rejects when Redis cannot
   * take them.
   */
  async publish(items: Tagged[]): Promise<number[]> {
    if (!this.available) throw new NotSent("Redis is not reachable");
    const args: string[] = [String(this.#options.retention), this.node];
    for (const item of items) {
      // A private message is kept for both names, to be replayed to either on another node.
      const logs = item.kind === "dm" ? (item.keys ?? []).join("\n") : "";
      args.push(
        item.kind === "msg" ? roomKey(item.message.room) : "",
        String(item.tag),
        logs,
        JSON.stringify(item),
      );
    }
    return await this.#redis.chatPublish(...args);
  }

  /** Stores a room's topic and whether it is pinned. */
  async saveRoom(record: RoomRecord): Promise<void> {
    if (!this.available) return;
    await this.#redis.hset(`${PREFIX}room:${roomKey(record.name)}`, {
      name: record.name,
      topic: record.topic,
      pinned: record.pinned ? "1" : "0",
    });
    await this.#redis.sadd(`${PREFIX}rooms`, roomKey(record.name));
  }

  /** Keeps a ban for every node, across restarts. */
  saveBan(ban: BanRecord): void {
    if (!this.available) return;
    this.#redis.hset(`${PREFIX}bans`, ban.key, JSON.stringify(ban)).catch(() => {});
  }

  /** Forgets a ban. */
  removeBan(key: string): void {
    if (!this.available) return;
    this.#redis.hdel(`${PREFIX}bans`, key).catch(() => {});
  }

  /** Keeps the message of the day for nodes that start later. */
  saveMotd(text: string): void {
    if (!this.available) return;
    this.#redis.set(`${PREFIX}motd`, text).catch(() => {});
  }

  /** The bans in force and the message of the day, as stored. */
  async loadModeration(): Promise<{ bans: BanRecord[]; motd: string }> {
    const bans = Object.values(await this.#redis.hgetall(`${PREFIX}bans`))
      .map((json) => JSON.parse(json) as BanRecord)
      .filter((ban) => ban.until === undefined || ban.until > Date.now());
    return { bans, motd: (await this.#redis.get(`${PREFIX}motd`)) ?? "" };
  }

  /**
   * Claims a name for this node: `free`, or `resumed` when it was held
   * under `presented` (the token of a client coming back, perhaps from
   * another node); false when someone else holds it. `own` is the token the
   * holder will come back with.
   */
  async claim(
    key: string,
    presented: string | undefined,
    own: string,
  ): Promise<false | "free" | "resumed"> {
    if (!this.available) throw new NotSent("Redis is not reachable");
    const value = `${own}|${this.node}`;
    const answer = await this.#redis.chatClaim(
      `${PREFIX}name:${key}`,
      presented ?? "",
      value,
      this.#options.leaseMs,
    );
    return answer === 2 ? "resumed" : answer === 1 ? "free" : false;
  }

  /** The private messages to or from a name key with an id above `afterId`, still kept. */
  async directsAfter(key: string, afterId: number): Promise<DirectFrame[]> {
    if (!this.available) return [];
    const kept = await this.#redis.lrange(`${PREFIX}dms:${key}`, 0, -1);
    return kept.map((json) => JSON.parse(json) as Numbered).flatMap((item) =>
      item.kind === "dm" && item.id > afterId
        ? [{ type: "dm", id: item.id, ts: item.ts, from: item.from, to: item.to, text: item.text }]
        : []
    );
  }

  /** True for the one node that asks first about `topic` within a minute. */
  async elect(topic: string): Promise<boolean> {
    if (!this.available) return false;
    return await this.#redis.set(`${PREFIX}elect:${topic}`, this.node, "EX", 60, "NX") === "OK";
  }

  /** Keeps this node's names claimed for another lease. */
  async renew(claims: { key: string; own: string }[]): Promise<void> {
    if (!this.available || claims.length === 0) return;
    const pipeline = this.#redis.pipeline();
    for (const { key } of claims) {
      pipeline.pexpire(`${PREFIX}name:${key}`, this.#options.leaseMs);
    }
    await pipeline.exec();
  }

  /** Lets a name go, unless another node has taken it over. */
  async release(key: string, own: string): Promise<void> {
    if (!this.available) return; // its lease runs out by itself
    await this.#redis.chatRelease(`${PREFIX}name:${key}`, `${own}|${this.node}`);
  }

  /**
   * Reads the bus from where this node stands, for good, handing over what
   * comes in order; after a lost connection it reads on from the same place.
   */
  follow(relay: (items: Numbered[]) => void): void {
    if (this.#following) return;
    this.#following = true;
    (async () => {
      while (!this.#closed) {
        try {
          const answer = await this.#reader.xread(
            "COUNT",
            1000,
            "BLOCK",
            2000,
            "STREAMS",
            `${PREFIX}bus`,
            this.#lastId,
          );
          const entries = answer?.[0]?.[1] ?? [];
          if (entries.length === 0) continue;
          this.#lastId = entries[entries.length - 1][0];
          relay(entries.map(([, fields]) => JSON.parse(fields[1]) as Numbered));
        } catch {
          if (this.#closed) return;
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
      }
    })();
  }

  /** Stops reading and closes both connections. */
  close(): void {
    this.#closed = true;
    this.#reader.disconnect();
    this.#redis.disconnect();
  }
}

/** A room's key in Redis: its name, case-folded. */
export function roomKey(name: string): string {
  return name.normalize("NFKC").toLowerCase();
}

function toMessage(item: Numbered): StoredMessage {
  if (item.kind !== "msg") throw new Error("not a message");
  return { ...item.message, id: item.id, seq: item.seq! };
}

/**
 * `chat serve`: the listener, the life of the server, and its command line.
 *
 * The design in plain words: one loop accepts connections (`for await` over
 * the listener) and starts a {@linkcode Session} for each, which reads its
 * own socket. Sessions talk to each other only through the {@linkcode Hub},
 * which owns who is online and broadcasts by pushing the same encoded bytes
 * into each session's bounded outbound queue, never waiting on anyone.
 * Shutdown is an explicit path: stop accepting, tell every client
 * `server_shutdown` after what it is already owed, give the queues a bounded
 * time to drain, close every socket, and resolve.
 *
 * @module
 */

import {
  ExitCode,
  Failure,
  formatAddress,
  integerFlag,
  parseAddress,
  parseFlags,
  UsageError,
} from "./common/cli.ts";
import { Hub } from "./server/hub.ts";
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, type ErrorFrame, type Limits } from "./protocol.ts";
import {
  type Connection,
  replaced as replacedNotice,
  Session,
  type SessionContext,
  slowConsumer,
} from "./server/session.ts";
import type { RedisStore } from "./store/redis.ts";
import { redisSettings } from "./store/redis_url.ts";
import type { StoredRoom } from "./store/sqlite.ts";
import type { BanRecord } from "./server/moderation.ts";
import { DatabaseError } from "./store/sqlite.ts";
import { StoreWriter } from "./store/writer.ts";
import { Gate } from "./server/auth.ts";
import { AddressLimits } from "./server/address_limits.ts";
import { OutboundBudget } from "./server/outbound_budget.ts";
import { addressKey } from "./server/address_key.ts";
import { type Assets, handleHttp, machineNames, readAssets } from "./server/web.ts";
import { within } from "./common/timeout.ts";

/** Everything `chat serve` can be told; every field has a default. */
export interface ServeOptions {
  /** Address to listen on. Default `0.0.0.0`. */
  hostname?: string;
  /** Port; 0 picks a free one. Default 5050. */
  port?: number;
  /** Display name announced to clients. Default `chat`. */
  name?: string;
  /** Largest frame in bytes. Default 16 KiB. */
  maxFrameBytes?: number;
  /** Most connections at once. Default 1000. */
  maxClients?: number;
  /** Most connections at once from one address. Default 16. */
  maxPerAddress?: number;
  /** Messages per second per client. Default 20. */
  rate?: number;
  /** Messages a client may send at once. Default 40. */
  burst?: number;
  /** Bytes of messages per second per client, after a burst of four frames. Default 16 KiB. */
  rateBytes?: number;
  /** Longest name. Default 32. */
  maxNameLength?: number;
  /** Bytes a client may fall behind before it is cut off. Default 256 KiB. */
  maxQueueBytes?: number;
  /** Join/leave notices only while a room has at most this many. Default 200. */
  announceLimit?: number;
  /** Messages kept per room for replay. Default 1000. */
  retention?: number;
  /** Bytes of messages kept per room for replay. Default 8 MiB. */
  roomHistoryBytes?: number;
  /** Bytes of messages kept for replay in all rooms together. Default 128 MiB. */
  historyBytes?: number;
  /** Most rooms. Default 100. */
  maxRooms?: number;
  /** Earlier messages shown on entering a room, unless the client asks. Default 20. */
  defaultHistory?: number;
  /** SQLite file for durable history; none keeps it in memory. */
  db?: string;
  /** Also serve the web page and its WebSocket here (`--web`); off unless given. */
  web?: { hostname: string; port: number };
  /** Origins whose pages may open a chat socket besides the page's own (`--web-origin`). */
  webOrigins?: string[];
  /**
   * With `--redis`: the shared store, connected, and the rooms it held at
   * start. The server then shares one chat with every node on that Redis.
   */
  redis?: { store: RedisStore; rooms: StoredRoom[]; bans: BanRecord[]; motd: string };
  /** Share the port with other nodes on this machine (SO_REUSEPORT; Linux). */
  reusePort?: boolean;
  /** How long a node's claim on a name lasts unrenewed, with `redis`. Default 15 s. */
  nameLeaseMs?: number;
  /**
   * PEM certificate chain and private key: the port then speaks TLS only
   * (after `await loadTls()`).
   */
  tls?: { cert: string; key: string };
  /** A password every client must give; none lets anyone in. */
  password?: string;
  /** The token that makes a client an operator; a random one is made if none is given. */
  opToken?: string;
  /** Silence before a connection is taken for a plain-text client. Default 300 ms. */
  plainTextAfterMs?: number;
  /** Time a closing connection gets to receive what it is owed. Default 2000 ms. */
  closeGraceMs?: number;
  /** Time to finish the hello or a first plain-text line. Default 10 s. */
  handshakeTimeoutMs?: number;
  /** Silence after which a protocol client is pinged (at half) and closed. Default 60 s. */
  idleTimeoutMs?: number;
  /** How often timeouts are checked. Default 1000 ms. */
  livenessCheckMs?: number;
  /** How long a dropped client's name is kept for its token. Default 60 s. */
  nameGraceMs?: number;
  /** How long a client may take nothing it is owed before it is cut off. Default 30 s. */
  stallTimeoutMs?: number;
  /** How long a room with messages but no topic may stand empty. Default 10 minutes. */
  roomExpiryMs?: number;
  /** Where log lines go. Default: nowhere. */
  log?: (line: string) => void;
}

const MB = 1024 * 1024;
/** A reader that took nothing for this long does not hold the others back (see OutboundBudget). */
const STALLED_AFTER_MS = 5000;
/** A node says it is alive on the bus every second; one silent this long is taken for dead. */
const CLUSTER_DEAD_MS = 6000;

/** The defaults of {@linkcode ServeOptions}, shown in `chat serve --help`. */
export const SERVE_DEFAULTS = {
  hostname: "0.0.0.0",
  port: 5050,
  name: "chat",
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  maxClients: 1000,
  maxPerAddress: 16,
  rate: 20,
  burst: 40,
  rateBytes: 16 * 1024,
  maxNameLength: 32,
  maxQueueBytes: 256 * 1024,
  announceLimit: 200,
  retention: 1000,
  roomHistoryBytes: 8 * 1024 * 1024,
  historyBytes: 128 * 1024 * 1024,
  maxRooms: 100,
  defaultHistory: 20,
  plainTextAfterMs: 300,
  closeGraceMs: 2000,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  livenessCheckMs: 1000,
  nameGraceMs: 60_000,
  stallTimeoutMs: 30_000,
  roomExpiryMs: 10 * 60_000,
  nameLeaseMs: 15_000,
} as const;

/** The web page's address could not be listened on (the chat's could). */
export class WebListenError extends Error {
  constructor(readonly reason: unknown) {
    super(reason instanceof Error ? reason.message : String(reason));
  }
}

/** A running server. */
export interface ChatServer {
  /** Where it listens (the real port when 0 was asked for). */
  readonly addr: Deno.NetAddr;
  /** Where the web page is served, with `web`. */
  readonly webAddr: Deno.NetAddr | undefined;
  /** How many connections are open. */
  readonly connections: number;
  /** Shuts down gracefully; resolves when every socket is closed. */
  shutdown(): Promise<void>;
}

/** TLS, loaded only by a server that uses it: `node:tls` costs every start some 30 ms. */
let tlsModule: typeof import("./server/tls_conn.ts") | undefined;

/**
 * Loads what {@linkcode serve} needs for its `tls` option; call it first.
 *
 * @example
 * ```ts ignore
 * import { loadTls, serve } from "./server.ts";
 * await loadTls();
 * const server = serve({ port: 0, tls: { cert: "…", key: "…" } });
 * ```
 */
export async function loadTls(): Promise<void> {
  tlsModule ??= await import("./server/tls_conn.ts");
}

function tlsSupport(): typeof import("./server/tls_conn.ts") {
  if (!tlsModule) throw new Error("serve() with tls needs `await loadTls()` first");
  return tlsModule;
}

/**
 * Starts a chat server. Throws what `Deno.listen` throws when it cannot
 * listen, and what SQLite throws when the `db` cannot be opened.
 *
 * @example
 * ```ts
 * import { serve } from "./server.ts";
 * const server = serve({ hostname: "127.0.0.1", port: 0 });
 * console.log(`listening on port ${server.addr.port}`);
 * await server.shutdown();
 * ```
 */
export function serve(options: ServeOptions = {}): ChatServer {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  const config = { ...SERVE_DEFAULTS, ...given } as typeof SERVE_DEFAULTS & ServeOptions;
  const log = options.log ?? (() => {});
  const opened = config.db === undefined
    ? undefined
    : StoreWriter.open(config.db, { retention: config.retention });
  const sessions = new Set<Session>();
  /** Resolves the shutdown's wait once the last session has ended. */
  let lastEnded: (() => void) | undefined;
  let hub: Hub;
  let listener: Deno.TcpListener;
  let webListener: Deno.TcpListener | undefined;
  let assets: Assets | undefined;
  try {
    assets = config.web ? readAssets() : undefined;
    hub = new Hub({
      loaded: config.redis
        ? { rooms: config.redis.rooms, nextId: 1, reservedUntil: 1, bans: [] }
        : opened?.loaded,
      onReplaced: (member) =>
        (member as Session).close("replaced by a new connection", {
          takeover: true,
          notice: replacedNotice(),
        }),
      announceLimit: config.announceLimit,
      retention: config.retention,
      roomHistoryBytes: config.roomHistoryBytes,
      historyBytes: config.historyBytes,
      maxRooms: config.maxRooms,
      journal: config.redis?.store ?? opened?.writer,
      bans: config.redis?.bans ?? opened?.loaded.bans,
      keepEmptyRoomMs: config.nameGraceMs,
      log,
      onRemove: (member, notice, reason) =>
        (member as Session).close(reason, { notice, release: true, announce: false }),
      onOverflow: (member) =>
        (member as Session).close("slow_consumer", {
          notice: slowConsumer(config.maxQueueBytes),
          dropQueued: true,
        }),
      onStoreError: (error, refused) => {
        log(`cannot store ${refused.length} message(s): ${error}`);
        for (const { member, ref } of refused) {
          const error: ErrorFrame = {
            type: "error",
            code: "storage_failed",
            message: "the server could not store your message, so it was not sent; try again",
            ...(ref === undefined ? {} : { ref }),
          };
          member.deliver(member.codec.encode(error));
        }
      },
    });
    if (config.redis?.motd) hub.moderation.motd = config.redis.motd;
    listener = Deno.listen({
      hostname: config.hostname,
      port: config.port,
      ...(config.reusePort ? { reusePort: true } : {}),
    });
    try {
      if (config.web) webListener = Deno.listen(config.web);
    } catch (error) {
      listener.close();
      throw new WebListenError(error);
    }
  } catch (error) {
    opened?.writer.close();
    throw error;
  }
  const limits: Limits = {
    maxFrameBytes: config.maxFrameBytes,
    maxNameLength: config.maxNameLength,
    rate: config.rate,
    burst: config.burst,
    rateBytes: config.rateBytes,
  };
  const addressLimits = new AddressLimits({
    maxPerAddress: config.maxPerAddress,
    rateBytes: config.rateBytes,
    maxFrameBytes: config.maxFrameBytes,
  });
  // Whole milliseconds: small integers, which a session stores without a box of their own.
  const clock = { now: Math.round(performance.now()) };
  const context: SessionContext = {
    hub,
    serverName: config.name,
    limits,
    maxQueueBytes: config.maxQueueBytes,
    plainTextAfterMs: config.plainTextAfterMs,
    closeGraceMs: config.closeGraceMs,
    defaultHistory: config.defaultHistory,
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    nameGraceMs: config.nameGraceMs,
    stallTimeoutMs: config.stallTimeoutMs,
    clock,
    gate: new Gate({ password: config.password, opToken: config.opToken }),
    addressLimits,
    budget: new OutboundBudget({ perConnection: config.maxQueueBytes / 4, clock }),
    ended(session) {
      sessions.delete(session);
      context.budget.connections = sessions.size;
      const left = perAddress.get(session.address)! - 1;
      if (left === 0) perAddress.delete(session.address);
      else perAddress.set(session.address, left);
      if (sessions.size === 0) lastEnded?.();
    },
    log,
  };
  const perAddress = new Map<string, number>();
  // Checked here, so that a bad certificate or key is reported before anyone connects.
  const overTls = config.tls ? tlsSupport().tlsWrapper(config.tls) : undefined;
  const liveness = setInterval(() => {
    const now = context.clock.now = Math.round(performance.now());
    let stalled = 0;
    for (const session of sessions) {
      session.checkLiveness(now);
      stalled += session.stalledBytes(now, STALLED_AFTER_MS);
    }
    context.budget.setStalled(stalled);
    hub.expire(now, config.roomExpiryMs);
    hub.heartbeat(now, CLUSTER_DEAD_MS);
  }, config.livenessCheckMs);
  // With --redis: this node's names kept claimed.
  const store = config.redis?.store;
  const renewal = store
    ? setInterval(() => store.renew(hub.claims).catch(() => {}), config.nameLeaseMs / 3)
    : undefined;
  let stopping: Promise<void> | undefined;

  /** Sets up a new TCP connection: TLS over it if configured. */
  function wrap(tcp: Deno.TcpConn): Connection {
    try {
      tcp.setNoDelay(true);
      tcp.setKeepAlive(true);
    } catch {
      // The peer may already be gone; the read will tell.
    }
    return overTls ? overTls(tcp) : tcp;
  }

  function accept(tcp: Deno.TcpConn): void {
    admit(wrap(tcp), { plainText: true });
  }

  const webOptions = {
    assets: assets!,
    origins: config.webOrigins ?? [],
    hostNames: machineNames(),
    timeoutMs: config.handshakeTimeoutMs,
  };
  /** Web connections still in their HTTP request, by address: bounded like sessions. */
  const httpPending = new Map<string, number>();
  const httpConns = new Set<Connection>();

  async function acceptWeb(tcp: Deno.TcpConn): Promise<void> {
    const conn = wrap(tcp);
    const address = addressKey(conn.remoteAddr.hostname);
    const pending = httpPending.get(address) ?? 0;
    if (pending >= config.maxPerAddress || httpConns.size >= config.maxClients) {
      conn.close();
      return;
    }
    httpPending.set(address, pending + 1);
    httpConns.add(conn);
    let ws: Connection | undefined;
    try {
      ws = await handleHttp(conn, webOptions);
    } finally {
      httpConns.delete(conn);
      const left = httpPending.get(address)! - 1;
      if (left === 0) httpPending.delete(address);
      else httpPending.set(address, left);
    }
    if (ws === undefined) return;
    if (stopping !== undefined) return ws.close();
    admit(ws, { plainText: false });
  }

  /** Starts a session on `conn`, unless the server or its address has too many. */
  function admit(conn: Connection, { plainText }: { plainText: boolean }): void {
    if (sessions.size >= config.maxClients) {
      const { hostname, port } = conn.remoteAddr;
      log(`refused ${formatAddress(hostname, port)}: server full`);
      refuse(conn, {
        type: "error",
        code: "server_full",
        message: `the server is full (${config.maxClients} connections); try again later`,
      });
      return;
    }
    const address = addressKey(conn.remoteAddr.hostname);
    const fromAddress = perAddress.get(address) ?? 0;
    if (fromAddress >= config.maxPerAddress) {
      log(`refused ${formatAddress(address, conn.remoteAddr.port)}: too many from that address`);
      refuse(conn, {
        type: "error",
        code: "too_many_connections",
        message: `${address} already has ${fromAddress} connections to this server, the most ` +
          "one address may have; close one, or ask whoever runs the server to raise --max-per-address",
      });
      return;
    }
    const wait = addressLimits.connect(address, performance.now());
    if (wait > 0) {
      log(`refused ${formatAddress(address, conn.remoteAddr.port)}: connecting too fast`);
      refuse(conn, {
        type: "error",
        code: "rate_limited",
        message: `too many new connections from ${address} in a short time; ` +
          `try again in ${Math.ceil(wait / 1000)} s`,
        retryMs: wait,
      });
      return;
    }
    perAddress.set(address, fromAddress + 1);
    const session = new Session(conn, context, { plainText });
    sessions.add(session);
    context.budget.connections = sessions.size;
    session.run();
  }

  async function acceptLoop(
    listener: Deno.TcpListener,
    accept: (conn: Deno.TcpConn) => void,
  ): Promise<void> {
    while (stopping === undefined) {
      try {
        for await (const conn of listener) accept(conn);
        return;
      } catch (error) {
        if (stopping !== undefined) return;
        // Out of file descriptors and the like: keep serving those connected.
        log(`accept failed: ${error instanceof Error ? error.message : error}; retrying`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
  const accepting = Promise.all([
    acceptLoop(listener, accept),
    webListener
      ? acceptLoop(webListener, (tcp) => {
        acceptWeb(tcp).catch((error) => log(`web connection failed: ${error}`));
      })
      : undefined,
  ]);

  return {
    addr: listener.addr as Deno.NetAddr,
    webAddr: webListener?.addr as Deno.NetAddr | undefined,
    get connections() {
      return sessions.size;
    },
    shutdown() {
      stopping ??= (async () => {
        listener.close();
        webListener?.close();
        clearInterval(liveness);
        await accepting;
        for (const conn of httpConns) conn.close();
        await hub.close();
        const notice: ErrorFrame = {
          type: "error",
          code: "server_shutdown",
          message: "the server is shutting down",
        };
        const allEnded = new Promise<void>((resolve) => lastEnded = resolve);
        for (const session of sessions) session.close("server_shutdown", { notice });
        if (sessions.size > 0) await allEnded;
        await opened?.writer.close();
        clearInterval(renewal);
        await hub.leaveCluster();
        store?.close();
        log("stopped");
      })();
      return stopping;
    },
  };
}

/** Tells a connection why it is turned away, briefly, then closes it. */
async function refuse(conn: Connection, notice: ErrorFrame): Promise<void> {
  try {
    await within(conn.write(encodeFrame(notice)), 1000);
  } catch {
    // Gone already.
  } finally {
    conn.close();
  }
}

// ---------------------------------------------------------------- CLI

/** `chat serve --help`. */
export const SERVE_HELP = `Usage: chat serve [options]

Runs a chat server. Clients join with "chat join HOST[:PORT]", or with nc or
telnet for plain text.

Options:
  --host HOST             address to listen on (default ${SERVE_DEFAULTS.hostname}: every interface)
  --port PORT             port to listen on, 0 for any free one (default ${SERVE_DEFAULTS.port})
  --name NAME             server name shown to clients (default ${SERVE_DEFAULTS.name})
  --max-clients N         most connections at once (default ${SERVE_DEFAULTS.maxClients})
  --max-per-address N     most connections at once from one address
                          (default ${SERVE_DEFAULTS.maxPerAddress}; raise it for clients behind NAT)
  --name-grace SECS       keep a dropped chat client's name this long, so that
                          it can come back (default ${SERVE_DEFAULTS.nameGraceMs / 1000})
  --idle-timeout SECS     ping a quiet chat client after half this, and
                          disconnect it after this (default ${SERVE_DEFAULTS.idleTimeoutMs / 1000})
  --max-frame-bytes N     largest message line in bytes (default ${SERVE_DEFAULTS.maxFrameBytes})
  --rate N                messages per second per client (default ${SERVE_DEFAULTS.rate})
  --burst N               messages a client may send at once (default ${SERVE_DEFAULTS.burst})
  --rate-bytes N          bytes of messages per second per client, after a
                          burst of four longest lines (default ${SERVE_DEFAULTS.rateBytes})
  --max-name-length N     longest name in characters (default ${SERVE_DEFAULTS.maxNameLength})
  --max-queue-bytes N     bytes a client may fall behind before it is
                          disconnected as a slow consumer (default ${SERVE_DEFAULTS.maxQueueBytes})
  --announce-limit N      send join/leave notices only while a room has at
                          most N people (default ${SERVE_DEFAULTS.announceLimit})
  --password-env VAR      every client must give the password in this
                          environment variable (never on the command line)
  --password-file FILE    ... or the first line of this file
  --op-token-env VAR      the operator token (for /op); default: a new one
                          is made and printed at start
  --web [HOST:]PORT       also serve the chat's web page and its WebSocket
                          on this port (HOST defaults to --host's)
  --web-origin ORIGIN     also let pages from ORIGIN (e.g. https://chat.lab.edu,
                          for a DNS name) open a chat socket; a page's own
                          origin is allowed when reached by IP address,
                          localhost or this machine's name (repeatable)
  --tls-cert FILE         serve TLS only, with this PEM certificate (chain)
  --tls-key FILE          ... and this PEM private key (the web page too is
                          then served over HTTPS only)
  --db FILE               keep rooms and messages in this SQLite file, so they
                          survive a restart (default: in memory only)
  --redis URL             share one chat with every chat serve on this Redis
                          (redis://[:PASSWORD@]HOST[:PORT][/DB], rediss:// for
                          TLS); Redis then keeps the history
  --redis-ca FILE         trust this PEM certificate for a rediss:// Redis (a
                          lab's own), besides the system's
  --redis-lease SECS      how long a stopped node's names stay taken (default
                          ${SERVE_DEFAULTS.nameLeaseMs / 1000})
  --reuse-port            let several nodes on this machine listen on the same
                          port, the kernel sharing connections out (Linux;
                          needs --redis)
  --retention N           messages kept per room for replay (default ${SERVE_DEFAULTS.retention})
  --room-history-mb N     most megabytes of messages kept per room for
                          replay, oldest dropped first (default ${
  SERVE_DEFAULTS.roomHistoryBytes / MB
})
  --history-mb N          most megabytes of messages kept for replay in all
                          rooms together (default ${SERVE_DEFAULTS.historyBytes / MB})
  --max-rooms N           most rooms (default ${SERVE_DEFAULTS.maxRooms})
  --history N             earlier messages shown to plain-text clients on
                          joining a room (default ${SERVE_DEFAULTS.defaultHistory})
  --quiet                 no log lines on stderr
  -h, --help              show this help

Ctrl-C (or SIGTERM) shuts down gracefully: clients are told, exit code 0.
Exit codes: 0 stopped cleanly, 2 bad command line, 3 cannot listen or
cannot open the database.`;

/** Where `chat serve` is to read its secrets and certificate from: never argv values. */
export interface SecretSources {
  passwordEnv?: string;
  passwordFile?: string;
  opTokenEnv?: string;
  tlsCert?: string;
  /** A PEM certificate to trust for a `rediss://` Redis. */
  redisCa?: string;
  tlsKey?: string;
}

/** Reads `chat serve` arguments into options; throws {@linkcode UsageError}. */
export function parseServeArgs(
  args: string[],
): (ServeOptions & { secrets: SecretSources; redisUrl?: string }) | "help" {
  const help = "Run 'chat serve --help' for the options.";
  const { values } = parseFlags(
    args,
    {
      host: { type: "string" },
      port: { type: "string" },
      name: { type: "string" },
      "max-clients": { type: "string" },
      "max-per-address": { type: "string" },
      "password-env": { type: "string" },
      "password-file": { type: "string" },
      "op-token-env": { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      web: { type: "string" },
      "web-origin": { type: "string", multiple: true },
      "idle-timeout": { type: "string" },
      "name-grace": { type: "string" },
      "max-frame-bytes": { type: "string" },
      rate: { type: "string" },
      burst: { type: "string" },
      "rate-bytes": { type: "string" },
      "max-name-length": { type: "string" },
      "max-queue-bytes": { type: "string" },
      "announce-limit": { type: "string" },
      db: { type: "string" },
      redis: { type: "string" },
      "redis-lease": { type: "string" },
      "redis-ca": { type: "string" },
      "reuse-port": { type: "boolean" },
      retention: { type: "string" },
      "room-history-mb": { type: "string" },
      "history-mb": { type: "string" },
      "max-rooms": { type: "string" },
      history: { type: "string" },
      quiet: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    false,
    help,
  );
  if (values.help) return "help";
  const int = (name: string, value: string | undefined, min: number, max: number) =>
    value === undefined ? undefined : integerFlag(name, value, { min, max, help });
  const seconds = (n: number | undefined) => n === undefined ? undefined : n * 1000;
  const megabytes = (n: number | undefined) => n === undefined ? undefined : n * MB;
  const name = values.name?.trim();
  if (name !== undefined && (name === "" || name.length > 64)) {
    throw new UsageError("--name must be 1 to 64 characters", help);
  }
  if (values["password-env"] !== undefined && values["password-file"] !== undefined) {
    throw new UsageError("give the password one way: --password-env or --password-file", help);
  }
  if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)) {
    throw new UsageError("--tls-cert and --tls-key go together", help);
  }
  let web: ServeOptions["web"];
  if (values.web !== undefined) {
    web = parseWebAddress(values.web, values.host ?? SERVE_DEFAULTS.hostname);
    if (web === undefined) {
      throw new UsageError(
        `--web ${values.web}: expected PORT or HOST:PORT, e.g. --web 8080`,
        help,
      );
    }
  }
  // As a browser writes it (lower case, no default port), so that the comparison is exact.
  const webOrigins = values["web-origin"]?.flatMap((list) => list.split(",")).map((origin) => {
    const url = URL.canParse(origin) ? new URL(origin) : undefined;
    if (!/^https?:\/\/[^/\s]+\/?$/.test(origin) || !url) {
      throw new UsageError(
        `--web-origin ${origin}: expected an origin such as https://chat.example.edu (scheme, ` +
          "host and port if not the default; no path)",
        help,
      );
    }
    return url.origin;
  });
  if (values.redis !== undefined) {
    try {
      redisSettings(values.redis);
    } catch (error) {
      throw new UsageError(`--redis: ${error instanceof Error ? error.message : error}`, help);
    }
  }
  if (values.db !== undefined && values.redis !== undefined) {
    throw new UsageError(
      "--db and --redis do not go together: with --redis, Redis keeps the history",
      help,
    );
  }
  if (values["redis-ca"] !== undefined && !values.redis?.startsWith("rediss://")) {
    throw new UsageError("--redis-ca goes with a rediss:// (TLS) --redis URL", help);
  }
  if (values["redis-lease"] !== undefined && values.redis === undefined) {
    throw new UsageError("--redis-lease needs --redis", help);
  }
  if (values["reuse-port"] && values.redis === undefined) {
    throw new UsageError(
      "--reuse-port needs --redis: nodes sharing a port must share one chat",
      help,
    );
  }
  if (values["reuse-port"] && Deno.build.os !== "linux") {
    throw new UsageError("--reuse-port works on Linux only", help);
  }
  if (webOrigins !== undefined && web === undefined) {
    throw new UsageError("--web-origin needs --web", help);
  }
  return {
    redisUrl: values.redis,
    reusePort: values["reuse-port"],
    nameLeaseMs: seconds(int("redis-lease", values["redis-lease"], 2, 3600)),
    web,
    webOrigins,
    secrets: {
      passwordEnv: values["password-env"],
      passwordFile: values["password-file"],
      opTokenEnv: values["op-token-env"],
      tlsCert: values["tls-cert"],
      tlsKey: values["tls-key"],
      redisCa: values["redis-ca"],
    },
    hostname: values.host,
    port: int("port", values.port, 0, 65535),
    name,
    maxClients: int("max-clients", values["max-clients"], 1, 1_000_000),
    maxPerAddress: int("max-per-address", values["max-per-address"], 1, 1_000_000),
    idleTimeoutMs: seconds(int("idle-timeout", values["idle-timeout"], 2, 86_400)),
    nameGraceMs: seconds(int("name-grace", values["name-grace"], 0, 86_400)),
    maxFrameBytes: int("max-frame-bytes", values["max-frame-bytes"], 256, 16 * 1024 * 1024),
    rate: int("rate", values.rate, 1, 1_000_000_000),
    burst: int("burst", values.burst, 1, 1_000_000_000),
    rateBytes: int("rate-bytes", values["rate-bytes"], 1024, 1024 ** 3),
    maxNameLength: int("max-name-length", values["max-name-length"], 1, 256),
    maxQueueBytes: int("max-queue-bytes", values["max-queue-bytes"], 1024, 1024 ** 3),
    announceLimit: int("announce-limit", values["announce-limit"], 0, 1_000_000),
    db: values.db,
    retention: int("retention", values.retention, 1, 1_000_000),
    roomHistoryBytes: megabytes(int("room-history-mb", values["room-history-mb"], 1, 1_000_000)),
    historyBytes: megabytes(int("history-mb", values["history-mb"], 1, 1_000_000)),
    maxRooms: int("max-rooms", values["max-rooms"], 1, 100_000),
    defaultHistory: int("history", values.history, 0, 1_000_000),
    log: values.quiet ? undefined : (line) => console.error(`${new Date().toISOString()} ${line}`),
  };
}

/**
 * Runs `chat serve` until Ctrl-C or SIGTERM; returns the exit code.
 *
 * @example
 * ```ts
 * import { runServe } from "./server.ts";
 * Deno.exit(await runServe(["--port", "5050"]));
 * ```
 */
export async function runServe(args: string[]): Promise<number> {
  const options = parseServeArgs(args);
  if (options === "help") {
    console.log(SERVE_HELP);
    return ExitCode.ok;
  }
  const hostname = options.hostname ?? SERVE_DEFAULTS.hostname;
  const port = options.port ?? SERVE_DEFAULTS.port;
  Object.assign(options, readSecrets(options.secrets));
  options.opToken ??= crypto.randomUUID().replaceAll("-", "").slice(0, 16);
  if (options.redisUrl !== undefined) {
    const ca = options.secrets.redisCa === undefined
      ? undefined
      : readFileOrFail("Redis CA certificate", options.secrets.redisCa);
    options.redis = await connectRedis(options.redisUrl, options, ca);
  }
  let server: ChatServer;
  if (options.tls) await loadTls();
  try {
    server = serve(options);
  } catch (error) {
    options.redis?.store.close();
    if (error instanceof DatabaseError) {
      throw new Failure(
        `${error.message}. Check the path, that its folder exists and is writable, ` +
          "and that the file is a chat database.",
        ExitCode.unavailable,
      );
    }
    if (options.tls && !(error instanceof Deno.errors.AddrInUse)) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Failure(
        `cannot use the TLS certificate and key: ${reason}. Both must be PEM files, the key ` +
          "the certificate's own; the README's Security section shows how to make them.",
        ExitCode.unavailable,
      );
    }
    if (error instanceof WebListenError && options.web) {
      const { hostname, port } = options.web;
      throw new Failure(
        listenFailure(error.reason, hostname, port).replace("--port", "--web"),
        ExitCode.unavailable,
      );
    }
    throw new Failure(listenFailure(error, hostname, port), ExitCode.unavailable);
  }
  // Listen for Ctrl-C and SIGTERM before saying we are up, so that a stop asked for at once
  // is still a graceful one.
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const { promise: stopAsked, resolve: stop } = Promise.withResolvers<void>();
  let asked = false;
  const onSignal = () => {
    if (asked) Deno.exit(ExitCode.interrupted); // a second Ctrl-C: don't wait
    asked = true;
    console.error("shutting down (Ctrl-C again to stop at once)");
    stop();
  };
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);

  printBanner(server, options.name ?? SERVE_DEFAULTS.name, options.tls !== undefined);
  if (options.redisUrl !== undefined) {
    const { host, port } = redisSettings(options.redisUrl);
    console.log(
      `One chat with every node on Redis at ${formatAddress(host, port)}: give them all the ` +
        "same --op-token-env (and password)",
    );
  }
  if (options.secrets.opTokenEnv === undefined) {
    console.log(
      `Operator token${options.redisUrl === undefined ? "" : " of this node"} ` +
        `(type "/op ${options.opToken}" in chat join to moderate): keep it to yourself`,
    );
  }
  warnIfFewFiles(options.maxClients ?? SERVE_DEFAULTS.maxClients);
  await stopAsked;
  await server.shutdown();
  for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
  return ExitCode.ok;
}

/** Reads the password, operator token and TLS files named on the command line. */
function readSecrets(sources: SecretSources): Pick<ServeOptions, "password" | "opToken" | "tls"> {
  const env = (flag: string, name: string) => {
    const value = Deno.env.get(name);
    if (value === undefined || value === "") {
      throw new UsageError(
        `${flag} ${name}: the environment variable ${name} is not set or empty`,
        `Set it first, e.g. read -rs ${name} && export ${name}`,
      );
    }
    return value;
  };
  const file = readFileOrFail;
  const secrets: Pick<ServeOptions, "password" | "opToken" | "tls"> = {};
  if (sources.passwordEnv !== undefined) {
    secrets.password = env("--password-env", sources.passwordEnv);
  }
  if (sources.passwordFile !== undefined) {
    // The first line is the password, so an editor's final newline is no part of it.
    secrets.password = file("password file", sources.passwordFile).split(/\r?\n/)[0];
    if (secrets.password === "") {
      throw new Failure(`the password file ${sources.passwordFile} is empty`, ExitCode.unavailable);
    }
  }
  if (sources.opTokenEnv !== undefined) {
    secrets.opToken = env("--op-token-env", sources.opTokenEnv);
  }
  if (sources.tlsCert !== undefined && sources.tlsKey !== undefined) {
    secrets.tls = {
      cert: file("TLS certificate", sources.tlsCert),
      key: file("TLS key", sources.tlsKey),
    };
  }
  return secrets;
}

/** `--web`'s value: PORT (on the chat's host) or HOST:PORT; port 0 picks a free one. */
function parseWebAddress(
  text: string,
  defaultHost: string,
): { hostname: string; port: number } | undefined {
  if (/^\d+$/.test(text)) {
    const port = Number(text);
    return port <= 65535 ? { hostname: defaultHost, port } : undefined;
  }
  if (text.endsWith(":0")) {
    const address = parseAddress(text.slice(0, -2), 1);
    return address && { hostname: address.hostname, port: 0 };
  }
  return parseAddress(text, 8080);
}

/** Connects to Redis and reads its rooms, or fails with exit code 3 and what to do. */
async function connectRedis(
  url: string,
  options: ServeOptions,
  ca: string | undefined,
): Promise<NonNullable<ServeOptions["redis"]>> {
  let store: RedisStore;
  try {
    // Loaded only with --redis: a single server need not carry the Redis client.
    const { RedisStore } = await import("./store/redis.ts");
    store = await RedisStore.connect({
      url,
      retention: options.retention ?? SERVE_DEFAULTS.retention,
      leaseMs: options.nameLeaseMs ?? SERVE_DEFAULTS.nameLeaseMs,
      ca,
      log: options.log ?? (() => {}),
    });
  } catch (error) {
    throw new Failure(
      `--redis: ${error instanceof Error ? error.message : error}. Start Redis (redis-server), ` +
        "or check the address, password and database in the URL.",
      ExitCode.unavailable,
    );
  }
  try {
    return { store, rooms: await store.loadRooms(), ...await store.loadModeration() };
  } catch (error) {
    store.close();
    throw new Failure(
      `--redis: cannot read the chat's rooms: ${error instanceof Error ? error.message : error}`,
      ExitCode.unavailable,
    );
  }
}

/** A file the command line names, or a Failure (exit 3) that says why it cannot be read. */
function readFileOrFail(what: string, path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Failure(`cannot read the ${what} ${path}: ${reason}`, ExitCode.unavailable);
  }
}

function listenFailure(error: unknown, hostname: string, port: number): string {
  const where = formatAddress(hostname, port);
  if (error instanceof Deno.errors.AddrInUse) {
    return `cannot listen on ${where}: the port is already in use (another chat server?). ` +
      "Stop that program or choose another port with --port.";
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `cannot listen on ${where}: permission denied. Ports below 1024 need ` +
      "administrator rights; choose a port above 1024 with --port.";
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return `cannot listen on ${where}: this machine has no such address. ` +
      "Use --host 0.0.0.0 for every interface.";
  }
  const message = error instanceof Error ? error.message : String(error);
  return `cannot listen on ${where}: ${message}`;
}

/** Prints where the server listens and the ready-to-copy join commands and page links. */
function printBanner(server: ChatServer, name: string, tls: boolean): void {
  const { addr, webAddr } = server;
  const where = formatAddress(addr.hostname, addr.port);
  const lines = [`chat: "${name}" listening on ${where}${tls ? " (TLS only)" : ""}`];
  const hostsOf = (addr: Deno.NetAddr) => {
    const wildcard = addr.hostname === "0.0.0.0" || addr.hostname === "::";
    return wildcard ? lanAddresses(addr.hostname === "::") : [addr.hostname];
  };
  const hosts = hostsOf(addr);
  const join = (host: string) =>
    `${joinCommand()} ${formatAddress(host, addr.port)}${tls ? " --tls --ca CERT.pem" : ""}`;
  const plain = (host: string) =>
    tls
      ? `openssl s_client -quiet -connect ${formatAddress(host, addr.port)}`
      : `nc ${host} ${addr.port}`;
  if (hosts.length > 0) {
    lines.push("Join with:");
    for (const host of hosts) lines.push(`  ${join(host)}`, `  ${plain(host)}`);
  } else {
    lines.push(`Join on this machine with: ${join("127.0.0.1")}`);
  }
  if (webAddr) {
    const webHosts = hostsOf(webAddr);
    const url = (host: string) =>
      `${tls ? "https" : "http"}://${formatAddress(host, webAddr.port)}/`;
    lines.push("Or in a browser (add ?name=NAME&room=ROOM to hand out a ready link):");
    for (const host of webHosts.length > 0 ? webHosts : ["127.0.0.1"]) {
      lines.push(`  ${url(host)}`);
    }
  }
  console.log(lines.join("\n"));
}

/**
 * How someone on this machine starts the client, as this server was
 * started: the compiled binary by its name, or Deno's task from the
 * project folder (through npx when Deno came that way).
 */
function joinCommand(): string {
  const exec = Deno.execPath();
  const name = exec.split(/[\\/]/).at(-1)!.replace(/\.exe$/i, "");
  if (name !== "deno") return `${name === "chat" ? "chat" : exec} join`;
  if (/[\\/]_npx[\\/]/.test(exec)) return `npx --yes deno@${Deno.version.deno} task join`;
  return "deno task join";
}

/** This machine's non-loopback addresses, IPv4 first. */
function lanAddresses(includeIpv6: boolean): string[] {
  try {
    return Deno.networkInterfaces()
      .filter((i) => !i.address.startsWith("127.") && i.address !== "::1")
      .filter((i) => i.family === "IPv4" || (includeIpv6 && !i.address.startsWith("fe80")))
      .sort((a, b) => a.family.localeCompare(b.family))
      .map((i) => i.address);
  } catch {
    return []; // No permission to list interfaces: the listen line still says where.
  }
}

/** Warns when the open-files limit is below the client limit (Linux). */
function warnIfFewFiles(maxClients: number): void {
  let limits: string;
  try {
    limits = Deno.readTextFileSync("/proc/self/limits");
  } catch {
    return; // Not Linux, or not allowed: nothing to say.
  }
  const soft = /^Max open files\s+(\d+|unlimited)/m.exec(limits)?.[1];
  if (soft === undefined || soft === "unlimited") return;
  const needed = maxClients + 32; // the listener, stdio and the runtime's own
  if (Number(soft) < needed) {
    console.error(
      `warning: this process may open only ${soft} files, fewer than --max-clients ` +
        `${maxClients} needs; raise the limit first (for example "ulimit -n ${needed}") ` +
        "or lower --max-clients. See the README, section Limits.",
    );
  }
}

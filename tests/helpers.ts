/**
 * Test helpers: a server on a free loopback port, and raw socket clients
 * that speak the protocol (or plain text) and wait for what they expect.
 * Every wait has a deadline, so a broken server fails a test instead of
 * hanging it.
 *
 * @module
 */

import { type ChatServer, serve, type ServeOptions } from "../server.ts";
import { TIMED_OUT, within } from "../common/timeout.ts";
import {
  type ClientFrame,
  encodeFrame,
  type HelloFrame,
  LineDecoder,
  parseServerFrame,
  type ServerFrame,
  type WelcomeFrame,
} from "../protocol.ts";

/** Starts a server on 127.0.0.1 and a free port, quick to detect plain text. */
export function startServer(options: ServeOptions = {}): ChatServer {
  // Every test client comes from 127.0.0.1; the hostile-client tests set their own limit.
  return serve({
    hostname: "127.0.0.1",
    port: 0,
    plainTextAfterMs: 150,
    maxPerAddress: 100_000,
    // Options parsed from a command line carry undefined for what it did not say.
    ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
  });
}

/**
 * Runs `body` with a server started with `options`, then closes whatever the
 * body put in `clients` and shuts the server down, whether or not it failed.
 */
export async function withServer(
  options: ServeOptions,
  body: (server: ChatServer, clients: { close(): Promise<void> }[]) => Promise<void>,
): Promise<void> {
  const server = startServer(options);
  const clients: { close(): Promise<void> }[] = [];
  try {
    await body(server, clients);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.shutdown();
  }
}

const DEFAULT_WAIT_MS = 10_000;

/** Resolves with `promise`, or rejects after `ms` with `what` in the message. */
export async function deadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  const result = await within(promise, ms);
  if (result === TIMED_OUT) throw new Error(`timed out after ${ms} ms: ${what}`);
  return result;
}

/** Reads lines from a socket into a list, and lets a test wait for one. */
class LineReader<T> {
  readonly received: T[] = [];
  ended = false;
  #waiters = new Set<() => void>();
  readonly done: Promise<void>;

  constructor(conn: Deno.Conn, parse: (line: Uint8Array) => T) {
    this.done = (async () => {
      const decoder = new LineDecoder({ maxLineBytes: 4 * 1024 * 1024 });
      try {
        for await (const chunk of conn.readable) {
          for (const line of decoder.push(chunk)) {
            if (!(line instanceof Uint8Array)) throw new Error(line.message);
            this.received.push(parse(line));
          }
          this.#wake();
        }
      } catch {
        // A reset ends the stream like a close.
      } finally {
        this.ended = true;
        this.#wake();
      }
    })();
  }

  #wake(): void {
    for (const wake of this.#waiters) wake();
  }

  /** Waits until `test` holds for what was received; returns the first match. */
  async waitFor(test: (item: T) => boolean, what: string, ms = DEFAULT_WAIT_MS): Promise<T> {
    let seen = 0;
    const found = () => {
      for (; seen < this.received.length; seen++) {
        if (test(this.received[seen])) return this.received[seen];
      }
      return undefined;
    };
    let waker: (() => void) | undefined;
    try {
      return await deadline(
        new Promise<T>((resolve, reject) => {
          waker = () => {
            const item = found();
            if (item !== undefined) resolve(item);
            else if (this.ended) reject(new Error(`connection ended before ${what}`));
          };
          this.#waiters.add(waker);
          waker();
        }),
        ms,
        what,
      );
    } finally {
      if (waker) this.#waiters.delete(waker);
    }
  }

  /** Waits for the server to close the connection. */
  async waitForEnd(what = "the connection to end", ms = DEFAULT_WAIT_MS): Promise<void> {
    await deadline(this.done, ms, what);
  }
}

/** A protocol client on a raw socket. */
export class TestClient {
  readonly conn: Deno.Conn;
  readonly frames: LineReader<ServerFrame>;
  name = "";
  welcome: WelcomeFrame | undefined;

  private constructor(conn: Deno.Conn) {
    this.conn = conn;
    this.frames = new LineReader(conn, (line) => {
      const frame = parseServerFrame(line);
      if (frame.type === "frame_error") throw new Error(`server sent ${frame.message}`);
      return frame;
    });
  }

  /** Reads from an already-open socket, from now on. */
  static fromConn(conn: Deno.Conn): TestClient {
    return new TestClient(conn);
  }

  /** Connects without saying hello. */
  static async connect(server: ChatServer): Promise<TestClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    conn.setNoDelay(true);
    return new TestClient(conn);
  }

  /** Connects and joins with `name`; throws if the server refuses. */
  static async join(
    server: ChatServer,
    name?: string,
    hello: Partial<HelloFrame> = {},
  ): Promise<TestClient> {
    const client = await TestClient.connect(server);
    await client.send({
      type: "hello",
      version: 1,
      ...(name === undefined ? {} : { name }),
      ...hello,
    });
    const answer = await client.frames.waitFor(
      (f) => f.type === "welcome" || f.type === "error",
      `welcome for ${name}`,
    );
    if (answer.type !== "welcome") {
      await client.close();
      throw new Error(`join refused: ${JSON.stringify(answer)}`);
    }
    client.name = answer.name;
    client.welcome = answer;
    return client;
  }

  async send(frame: ClientFrame | Record<string, unknown>): Promise<void> {
    await this.sendRaw(encodeFrame(frame as ClientFrame));
  }

  async sendRaw(bytes: Uint8Array | string): Promise<void> {
    let data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
    while (data.length > 0) data = data.subarray(await this.conn.write(data));
  }

  /** The chat messages received, in order, replayed ones included. */
  messages(): Extract<ServerFrame, { type: "msg" }>[] {
    return this.frames.received.filter((f) => f.type === "msg");
  }

  /** Waits until `count` chat messages have arrived. */
  async waitForMessages(count: number): Promise<void> {
    await this.frames.waitFor(
      () => this.messages().length >= count,
      `${count} messages at ${this.name}`,
    );
  }

  /** Waits for an error frame with `code`. */
  waitForError(code: string): Promise<ServerFrame> {
    return this.frames.waitFor((f) => f.type === "error" && f.code === code, `error ${code}`);
  }

  /** Waits for a leave, join or rename event about `name`. */
  waitForEvent(event: string, name: string): Promise<ServerFrame> {
    return this.frames.waitFor(
      (f) => f.type === "event" && f.event === event && f.name === name,
      `${event} of ${name}`,
    );
  }

  /** Closes the socket (abruptly, if nothing was said) and waits for the reader. */
  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
    await this.frames.done;
  }
}

/** A plain-text client, as nc or telnet would be. */
export class PlainClient {
  readonly conn: Deno.TcpConn;
  readonly lines: LineReader<string>;

  private constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    const decoder = new TextDecoder();
    this.lines = new LineReader(conn, (line) => decoder.decode(line).replace(/\r$/, ""));
  }

  static async connect(server: { addr: { port: number } }): Promise<PlainClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    return new PlainClient(conn);
  }

  async send(text: string): Promise<void> {
    let data = new TextEncoder().encode(text);
    while (data.length > 0) data = data.subarray(await this.conn.write(data));
  }

  waitFor(test: (line: string) => boolean, what: string): Promise<string> {
    return this.lines.waitFor(test, what);
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
    await this.lines.done;
  }
}

/**
 * A loopback TCP proxy in front of a server, so a test can cut a client's
 * connection as a dropped Wi-Fi would, while the client keeps running.
 */
export class Proxy {
  readonly port: number;
  readonly #listener: Deno.TcpListener;
  readonly #pairs = new Set<[Deno.TcpConn, Deno.TcpConn]>();
  readonly #tasks = new Set<Promise<unknown>>();
  readonly #accepting: Promise<void>;
  /** Resolved while connections may go through; see {@linkcode Proxy.hold}. */
  #open = Promise.withResolvers<void>();
  /** How many connections it has carried. */
  connections = 0;
  #closed = false;
  /** Set by {@linkcode Proxy.cutAfter}: the next connection's downstream byte budget. */
  #cutAfter: number | undefined;

  /**
   * With `slowStart`, what a client sends first is held back until the
   * server has sent something: a network slow enough for the server to
   * take the client for a silent plain-text one.
   */
  constructor(targetPort: number, options: { slowStart?: boolean } = {}) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#listener = listener;
    this.port = listener.addr.port;
    this.#open.resolve();
    this.#accepting = (async () => {
      for await (const conn of listener) this.#carry(conn, targetPort, options.slowStart ?? false);
    })();
  }

  async #carry(conn: Deno.TcpConn, targetPort: number, slowStart: boolean): Promise<void> {
    this.connections++;
    await this.#open.promise;
    if (this.#closed) return conn.close();
    let upstream: Deno.TcpConn;
    try {
      upstream = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    } catch {
      conn.close(); // the server is gone
      return;
    }
    const pair: [Deno.TcpConn, Deno.TcpConn] = [conn, upstream];
    this.#pairs.add(pair);
    let budget = this.#cutAfter ?? Infinity;
    this.#cutAfter = undefined;
    const serverSpoke = Promise.withResolvers<void>();
    const pipe = (from: Deno.TcpConn, to: Deno.TcpConn) =>
      from.readable.pipeTo(to.writable).catch(() => {}).finally(() => {
        serverSpoke.resolve();
        this.#cutPair(pair);
      });
    const up = async () => {
      if (slowStart) await serverSpoke.promise;
      await pipe(conn, upstream);
    };
    const task = Promise.all([
      up(),
      upstream.readable
        .pipeThrough(
          new TransformStream({
            transform: (chunk, out) => {
              serverSpoke.resolve();
              out.enqueue(chunk);
              budget -= chunk.length;
              if (budget <= 0) queueMicrotask(() => this.#cutPair(pair));
            },
          }),
        )
        .pipeTo(conn.writable).catch(() => {}).finally(() => {
          serverSpoke.resolve();
          this.#cutPair(pair);
        }),
    ]);
    this.#tasks.add(task);
    await task;
    this.#tasks.delete(task);
  }

  #cutPair(pair: [Deno.TcpConn, Deno.TcpConn]): void {
    if (!this.#pairs.delete(pair)) return;
    for (const conn of pair) {
      try {
        conn.close();
      } catch {
        // Closed by the pipe already.
      }
    }
  }

  /** Cuts the next connection once it has carried `bytes` from the server: a drop mid-replay. */
  cutAfter(bytes: number): void {
    this.#cutAfter = bytes;
  }

  /** New connections wait (a network that is down) until {@linkcode Proxy.release}. */
  hold(): void {
    this.#open = Promise.withResolvers<void>();
  }

  /** Lets held and new connections through again. */
  release(): void {
    this.#open.resolve();
  }

  /** Cuts every connection through the proxy, both ways, at once. */
  cut(): void {
    for (const pair of [...this.#pairs]) this.#cutPair(pair);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listener.close();
    this.release();
    await this.#accepting.catch(() => {});
    this.cut();
    await Promise.all(this.#tasks);
  }
}

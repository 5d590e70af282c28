/**
 * TLS on the server side, over a TCP connection the server keeps in hand.
 *
 * Deno's own `Deno.listenTls` cannot close a connection whose handshake
 * never finishes: `close()` waits for the handshake, so a client that opens
 * a TCP connection and says nothing would hold a socket for good. Here the
 * server accepts plain TCP with `Deno.listen` and runs TLS over it with
 * `node:tls`, so closing the TCP connection always closes it.
 *
 * @module
 */

import { Duplex } from "node:stream";
import tls from "node:tls";

/** Bytes read ahead of the session before the socket is paused. */
const READ_AHEAD_BYTES = 64 * 1024;

/**
 * The server's end of a TLS connection, with the part of `Deno.Conn` a
 * session uses: `read`, `write`, `close`, `remoteAddr`, and `handshake`.
 *
 * @example
 * ```ts ignore
 * import tls from "node:tls";
 * import { TlsServerConn } from "./tls_conn.ts";
 * const context = tls.createSecureContext({ cert: "…", key: "…" });
 * for await (const tcp of Deno.listen({ port: 5050 })) {
 *   const conn = new TlsServerConn(tcp, context);
 *   await conn.handshake();
 *   await conn.write(new TextEncoder().encode("hello\n"));
 *   conn.close();
 * }
 * ```
 */
export class TlsServerConn {
  readonly remoteAddr: Deno.NetAddr;
  readonly #tcp: Deno.TcpConn;
  readonly #socket: tls.TLSSocket;
  readonly #secured: Promise<void>;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #failure: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(tcp: Deno.TcpConn, context: tls.SecureContext) {
    this.#tcp = tcp;
    this.remoteAddr = tcp.remoteAddr;
    const duplex = Duplex.fromWeb({ readable: tcp.readable, writable: tcp.writable });
    duplex.on("error", () => {}); // reported through the TLS socket
    const socket = new tls.TLSSocket(duplex, { isServer: true, secureContext: context });
    this.#socket = socket;
    this.#secured = new Promise<void>((resolve, reject) => {
      socket.once("secure", resolve);
      socket.once("error", reject);
      socket.once("close", () => reject(new Error("closed during the TLS handshake")));
    });
    this.#secured.catch(() => {}); // a session that never asks still must not see it unhandled
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered > READ_AHEAD_BYTES) socket.pause();
      this.#wakeReader();
    });
    socket.on("end", () => this.#finish());
    socket.on("close", () => this.#finish());
    socket.on("error", (error: Error) => this.#finish(error));
  }

  /** Resolves once the TLS handshake is done; rejects if it fails. */
  handshake(): Promise<void> {
    return this.#secured;
  }

  /** Reads into `buffer`; null at the end of the stream. */
  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#failure) throw this.#failure;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    const head = this.#chunks[0];
    const n = Math.min(buffer.length, head.length);
    buffer.set(head.subarray(0, n));
    if (n === head.length) this.#chunks.shift();
    else this.#chunks[0] = head.subarray(n);
    this.#buffered -= n;
    if (this.#buffered <= READ_AHEAD_BYTES / 2 && this.#socket.isPaused()) this.#socket.resume();
    return n;
  }

  /** Writes all of `bytes`; resolves once they are handed to the TCP connection. */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#ended) return Promise.reject(new Deno.errors.BrokenPipe("connection closed"));
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (error) => error ? reject(error) : resolve(bytes.length));
    });
  }

  /** Closes at once, whatever state the handshake is in. */
  close(): void {
    this.#finish();
    this.#socket.destroy();
    try {
      this.#tcp.close();
    } catch {
      // Closed already.
    }
  }

  #finish(error?: Error): void {
    if (error && !this.#ended) this.#failure = error;
    this.#ended = true;
    this.#wakeReader();
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/**
 * Checks a PEM certificate and key (throwing if they cannot be used) and
 * returns what puts TLS over each accepted TCP connection.
 *
 * @example
 * ```ts ignore
 * import { tlsWrapper } from "./tls_conn.ts";
 * const overTls = tlsWrapper({ cert: "…", key: "…" });
 * for await (const tcp of Deno.listen({ port: 5050 })) overTls(tcp);
 * ```
 */
export function tlsWrapper(settings: { cert: string; key: string }): (
  tcp: Deno.TcpConn,
) => TlsServerConn {
  const context = tls.createSecureContext(settings);
  return (tcp) => new TlsServerConn(tcp, context);
}

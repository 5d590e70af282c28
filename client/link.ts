/**
 * One connection to a chat server, as frames: connect (TCP or TLS), say
 * hello and wait for the welcome, send frames in order, read the next one.
 * A server that sent text first (it took a slow hello for a plain-text
 * client) is read past; anything else it cannot parse is a protocol error.
 *
 * @module
 */

import { ExitCode, Failure, formatAddress } from "../common/cli.ts";
import {
  type ClientFrame,
  encodeFrame,
  LineDecoder,
  parseServerFrame,
  type ServerFrame,
  type WelcomeFrame,
} from "../protocol.ts";
import { TIMED_OUT, within } from "../common/timeout.ts";
import { neutralize } from "../text/render.ts";

/** Server frames can be larger than client frames (a who list, say). */
const MAX_SERVER_FRAME_BYTES = 1024 * 1024;
/** How long connecting, the TLS handshake and the welcome may each take. */
const HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * One connection as frames: send one, or wait for the next.
 *
 * @example
 * ```ts ignore
 * import { Link } from "./link.ts";
 * const link = await Link.open("127.0.0.1", 5050);
 * const welcome = await link.hello({ version: 1, name: "ada" });
 * link.send({ type: "msg", text: "hi" });
 * link.close();
 * ```
 */
export class Link {
  readonly #conn: Deno.Conn;
  readonly #where: string;
  readonly #frames: AsyncGenerator<ServerFrame>;
  #writing: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** The first line of text skipped while waiting for the welcome. */
  #skipped: string | undefined;
  readonly #tls: boolean;
  #heardAt = performance.now();
  #watch: ReturnType<typeof setInterval> | undefined;
  /** Set when the link was closed because the server went quiet. */
  silentFor: number | undefined;

  private constructor(conn: Deno.Conn, where: string, tls: boolean) {
    this.#tls = tls;
    this.#conn = conn;
    this.#where = where;
    this.#frames = this.#read();
  }

  /** Connects; throws a {@linkcode Failure} that says what went wrong. */
  static async open(
    hostname: string,
    port: number,
    tls?: { caCerts?: string[] },
  ): Promise<Link> {
    const where = formatAddress(hostname, port);
    let conn: Deno.Conn<Deno.NetAddr> | undefined;
    try {
      const connecting: Promise<Deno.Conn<Deno.NetAddr>> = tls
        ? Deno.connectTls({ hostname, port, caCerts: tls.caCerts })
        : Deno.connect({ hostname, port });
      const connected = await within(connecting, HANDSHAKE_TIMEOUT_MS);
      if (connected === TIMED_OUT) {
        connecting.then((late) => late.close(), () => {});
        throw new Deno.errors.TimedOut();
      }
      conn = connected;
      if (tls) {
        // Check the certificate now, so that a bad one is reported as such.
        const shaken = await within((conn as Deno.TlsConn).handshake(), HANDSHAKE_TIMEOUT_MS);
        if (shaken === TIMED_OUT) throw new Deno.errors.TimedOut();
      } else {
        (conn as Deno.TcpConn).setNoDelay(true);
      }
      return new Link(conn, where, tls !== undefined);
    } catch (error) {
      try {
        conn?.close();
      } catch {
        // Never opened.
      }
      throw new Failure(connectFailure(error, where, tls !== undefined), ExitCode.unavailable);
    }
  }

  /** Sends a frame; writes are kept in order, and fail quietly once closed. */
  send(frame: ClientFrame): void {
    const bytes = encodeFrame(frame);
    this.#writing = this.#writing.then(() => writeAll(this.#conn, bytes)).catch(() => {});
  }

  /** Resolves once every frame sent so far is written (or writing failed), within `ms`. */
  async sent(ms = 1000): Promise<void> {
    await within(this.#writing, ms);
  }

  /** The next frame, or undefined when the connection has ended. */
  async next(): Promise<ServerFrame | undefined> {
    const result = await this.#frames.next();
    return result.done ? undefined : result.value;
  }

  /** Says hello and waits for the welcome; throws a {@linkcode Failure}. */
  async hello(hello: Omit<Extract<ClientFrame, { type: "hello" }>, "type">): Promise<WelcomeFrame> {
    this.send({ type: "hello", ...hello });
    const frame = await within(this.next(), HANDSHAKE_TIMEOUT_MS);
    if ((frame === TIMED_OUT || frame === undefined) && this.#skipped !== undefined) {
      throw new Failure(
        `${this.#where} answered "${this.#skipped}" instead of a welcome: is it a chat server?`,
        ExitCode.protocol,
      );
    }
    if (frame === TIMED_OUT) {
      throw new Failure(
        `${this.#where} did not answer the greeting: is it a chat server?`,
        ExitCode.protocol,
      );
    }
    if (frame?.type === "welcome") return frame;
    if (frame?.type === "error") {
      const code = frame.code === "name_taken" || frame.code === "bad_name"
        ? ExitCode.nameRefused
        : frame.code === "auth_failed"
        ? ExitCode.authFailed
        : frame.code === "server_full" || frame.code === "too_many_connections" ||
            frame.code === "storage_failed"
        ? ExitCode.unavailable
        : frame.code === "server_shutdown" || frame.code === "replaced" || frame.code === "banned"
        ? ExitCode.disconnected
        : ExitCode.protocol;
      throw new Failure(
        `${this.#where} refused to let you in: ${frame.message}`,
        code,
        frame.retryMs,
      );
    }
    throw new Failure(
      frame === undefined
        ? `${this.#where} closed the connection during the greeting` +
          (this.#tls ? "" : " (if it speaks TLS, as chat serve --tls-cert does, add --tls)")
        : `${this.#where} answered with a "${frame.type}" frame instead of a welcome`,
      frame === undefined ? ExitCode.disconnected : ExitCode.protocol,
    );
  }

  /**
   * Pings the server once it has been quiet for half `idleMs`, and closes the
   * link if it stays quiet for `idleMs`: a dead server or network is noticed
   * even when nobody is talking.
   */
  watch(idleMs: number): void {
    let pinged = false;
    this.#watch = setInterval(() => {
      const silent = performance.now() - this.#heardAt;
      if (silent < idleMs / 2) {
        pinged = false;
      } else if (silent >= idleMs) {
        this.silentFor = silent;
        this.close();
      } else if (!pinged) {
        pinged = true;
        this.send({ type: "ping", data: "idle" });
      }
    }, Math.min(1000, idleMs / 4));
  }

  close(): void {
    clearInterval(this.#watch);
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  async *#read(): AsyncGenerator<ServerFrame> {
    const decoder = new LineDecoder({ maxLineBytes: MAX_SERVER_FRAME_BYTES });
    let welcomed = false;
    try {
      for await (const chunk of this.#conn.readable) {
        this.#heardAt = performance.now();
        for (const line of decoder.push(chunk)) {
          // A server that took a slow hello for a plain-text client has sent text first.
          if (!welcomed && line instanceof Uint8Array && line[0] !== 0x7b /* { */) {
            this.#skipped ??= neutralize(new TextDecoder().decode(line.subarray(0, 60)));
            continue;
          }
          welcomed = true;
          const frame = line instanceof Uint8Array ? parseServerFrame(line) : line;
          if (frame.type === "frame_error") {
            throw new Failure(
              `${this.#where} sent something this client cannot read (${frame.message}); ` +
                "is it a chat server of the same release?",
              ExitCode.protocol,
            );
          }
          yield frame;
        }
      }
    } catch (error) {
      if (error instanceof Failure) throw error;
      // A reset, or our own close: the stream simply ends.
    }
  }
}

function connectFailure(error: unknown, where: string, tls: boolean): string {
  const prefix = `could not connect to ${where}`;
  const message = error instanceof Error ? error.message : String(error);
  if (tls && /certificate|UnknownIssuer|NotValidForName|handshake|tls|corrupt/i.test(message)) {
    return `${prefix} over TLS: ${message}. If the server uses a lab certificate, pass it ` +
      "with --ca FILE; if it does not speak TLS, leave out --tls.";
  }
  if (error instanceof Deno.errors.ConnectionRefused) {
    return `${prefix}: connection refused (is "chat serve" running there, on that port?)`;
  }
  if (error instanceof Deno.errors.TimedOut) {
    return `${prefix}: no answer in ${HANDSHAKE_TIMEOUT_MS / 1000} s. ` +
      "Check the address, and that no firewall blocks the port.";
  }
  return `${prefix}: ${message}. Check the address.`;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

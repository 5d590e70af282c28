/**
 * A WebSocket client on a raw socket, for tests that must send what a
 * browser never would: unmasked frames, huge lengths, floods of pings.
 *
 * @module
 */

import { parseServerFrame, type ServerFrame } from "../protocol.ts";
import { deadline } from "./helpers.ts";

/** What the upgrade request says about itself. */
export interface UpgradeOptions {
  origin?: string;
  host?: string;
  path?: string;
}

/** Sends an upgrade request; returns the status line and the open socket. */
export async function upgrade(
  port: number,
  options: UpgradeOptions = {},
): Promise<{ status: number; head: string; conn: Deno.TcpConn; rest: Uint8Array }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const lines = [
    `GET ${options.path ?? "/ws"} HTTP/1.1`,
    `Host: ${options.host ?? `127.0.0.1:${port}`}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...(options.origin ? [`Origin: ${options.origin}`] : []),
  ];
  await writeAll(conn, new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
  let buffer: Uint8Array = new Uint8Array(0);
  for (;;) {
    const chunk = new Uint8Array(4096);
    const n = await conn.read(chunk);
    if (n === null) break;
    buffer = concat(buffer, chunk.subarray(0, n));
    const text = new TextDecoder().decode(buffer);
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const headBytes = new TextEncoder().encode(text.slice(0, end + 4)).length;
      const head = text.slice(0, end);
      return { status: Number(head.split(" ")[1]), head, conn, rest: buffer.slice(headBytes) };
    }
  }
  return { status: 0, head: "", conn, rest: new Uint8Array() };
}

/** A WebSocket to the chat, frame by frame. */
export class WsTestClient {
  readonly frames: ServerFrame[] = [];
  /** Close code the server sent, once it did. */
  closeCode: number | undefined;
  pongs = 0;
  ended = false;
  readonly done: Promise<void>;
  readonly #wakers = new Set<() => void>();

  constructor(readonly conn: Deno.TcpConn, rest: Uint8Array, { read = true } = {}) {
    this.done = read ? this.#read(rest) : Promise.resolve();
  }

  /** Opens `/ws` and returns the client; throws unless the server switched protocols. */
  static async open(
    port: number,
    options: UpgradeOptions = {},
    { read = true } = {},
  ): Promise<WsTestClient> {
    const { status, head, conn, rest } = await upgrade(port, options);
    if (status !== 101) {
      conn.close();
      throw new Error(`upgrade refused: ${head}`);
    }
    return new WsTestClient(conn, rest, { read });
  }

  /** Sends one frame; masked with a fixed key unless `mask` is false. */
  async sendFrame(
    payload: Uint8Array | string,
    { opcode = 1, fin = true, mask = true, length }: {
      opcode?: number;
      fin?: boolean;
      mask?: boolean;
      /** The length to declare, if not the payload's (to lie about it). */
      length?: number | bigint;
    } = {},
  ): Promise<void> {
    const data = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
    const declared = BigInt(length ?? data.length);
    const header: number[] = [(fin ? 0x80 : 0) | opcode];
    const maskBit = mask ? 0x80 : 0;
    if (declared < 126n) header.push(maskBit | Number(declared));
    else if (declared < 65536n) {
      header.push(maskBit | 126, Number(declared >> 8n), Number(declared & 255n));
    } else {
      header.push(maskBit | 127);
      for (let shift = 56n; shift >= 0n; shift -= 8n) {
        header.push(Number((declared >> shift) & 255n));
      }
    }
    const key = [0x12, 0x34, 0x56, 0x78];
    if (mask) header.push(...key);
    const body = mask ? data.map((byte, i) => byte ^ key[i & 3]) : data;
    await writeAll(this.conn, concat(new Uint8Array(header), body));
  }

  /** Sends a frame as JSON in one text message. */
  send(frame: Record<string, unknown>): Promise<void> {
    return this.sendFrame(JSON.stringify(frame));
  }

  /** Waits until a frame passes `test`; returns it. */
  async waitFor(test: (frame: ServerFrame) => boolean, what: string, ms = 10_000) {
    let wake = () => {};
    try {
      return await deadline(
        new Promise<ServerFrame>((resolve, reject) => {
          let seen = 0;
          wake = () => {
            for (; seen < this.frames.length; seen++) {
              if (test(this.frames[seen])) return resolve(this.frames[seen]);
            }
            if (this.ended) reject(new Error(`closed before ${what}`));
          };
          this.#wakers.add(wake);
          wake();
        }),
        ms,
        what,
      );
    } finally {
      this.#wakers.delete(wake);
    }
  }

  /** Waits for the server to close the connection. */
  waitForEnd(ms = 10_000): Promise<void> {
    return deadline(this.done, ms, "the WebSocket to end");
  }

  close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // Closed already.
    }
    return this.done;
  }

  async #read(rest: Uint8Array): Promise<void> {
    let buffer: Uint8Array = rest;
    let text = "";
    try {
      for (;;) {
        while (buffer.length >= 2) {
          let length = buffer[1] & 0x7f;
          let at = 2;
          if (length === 126) [length, at] = [(buffer[2] << 8) | buffer[3], 4];
          else if (length === 127) {
            length = Number(new DataView(buffer.buffer, buffer.byteOffset + 2, 8).getBigUint64(0));
            at = 10;
          }
          if (buffer.length < at + length) break;
          const opcode = buffer[0] & 0x0f;
          const payload = buffer.slice(at, at + length);
          buffer = buffer.slice(at + length);
          if (opcode === 0x8) {
            this.closeCode = length >= 2 ? (payload[0] << 8) | payload[1] : 1005;
          } else if (opcode === 0xa) {
            this.pongs++;
          } else {
            // Every message the server sends ends with a line feed: whole JSON lines.
            text += new TextDecoder().decode(payload);
            const lines = text.split("\n");
            text = lines.pop()!;
            for (const line of lines) {
              const frame = parseServerFrame(new TextEncoder().encode(line));
              if (frame.type === "frame_error") throw new Error(`bad frame: ${line}`);
              this.frames.push(frame);
            }
          }
        }
        this.#wakers.forEach((wake) => wake());
        const chunk = new Uint8Array(64 * 1024);
        const n = await this.conn.read(chunk);
        if (n === null) break;
        buffer = concat(buffer, chunk.subarray(0, n));
      }
    } catch {
      // A reset ends it like a close.
    } finally {
      this.ended = true;
      this.#wakers.forEach((wake) => wake());
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const joined = new Uint8Array(a.length + b.length);
  joined.set(a);
  joined.set(b, a.length);
  return joined;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
}

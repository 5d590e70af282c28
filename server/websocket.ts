/**
 * A WebSocket (RFC 6455) as a {@linkcode Connection}, once the HTTP upgrade
 * is done, so that a browser's session is the same `Session` as a TCP one:
 * the same frames, validation, limits, queue and slow-consumer rule.
 *
 * Reading streams: the payload of each data message is handed on as it
 * arrives, unmasked, followed by a line feed at the end of the message, so
 * the session's bounded line decoder sees JSON lines as from TCP and a
 * message never has to be held whole. Nothing here grows with what the peer
 * sends: a frame header is at most 14 bytes, a control frame at most 125.
 * Writing wraps each batch the outbound queue writes in one text message;
 * a message may so carry several JSON lines, as PROTOCOL.md says.
 *
 * Written by hand over the TCP connection rather than with
 * `Deno.upgradeWebSocket`: that API reads messages whole (up to 64 MiB
 * each) as fast as they come, with no way to stop reading, where a session
 * must bound its memory and push back on a sender.
 *
 * @module
 */

import type { Connection } from "./session.ts";
import { within } from "../common/timeout.ts";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;
const MAX_CONTROL_PAYLOAD = 125;
const READ_BYTES = 16 * 1024;

/** Close codes this side sends (RFC 6455 §7.4.1). */
export const CloseCode = {
  normal: 1000,
  protocolError: 1002,
  tooBig: 1009,
} as const;

/**
 * The `Sec-WebSocket-Accept` value answering a client's `Sec-WebSocket-Key`.
 *
 * @example
 * ```ts
 * import { acceptKey } from "./websocket.ts";
 * await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); // "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" (RFC 6455's example)
 * ```
 */
export async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + GUID));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

/**
 * The server's side of a WebSocket over an upgraded connection.
 *
 * @example
 * ```ts ignore
 * import { WebSocketConn } from "./websocket.ts";
 * declare const tcp: Deno.TcpConn; // after the 101 response was written
 * const ws = new WebSocketConn(tcp, new Uint8Array());
 * const buffer = new Uint8Array(1024);
 * const n = await ws.read(buffer); // payload bytes; a "\n" ends each message
 * await ws.write(new TextEncoder().encode('{"type":"pong"}\n')); // one text message
 * ws.close();
 * ```
 */
export class WebSocketConn implements Connection {
  readonly remoteAddr: Deno.NetAddr;
  readonly #inner: Connection;
  /** Bytes read from the socket and not yet decoded: `#raw[#start, #end)`. */
  #raw = new Uint8Array(READ_BYTES);
  #start = 0;
  #end = 0;
  /** Payload bytes left in the frame being read; -1 between frames. */
  #left = -1;
  #opcode = 0;
  #fin = false;
  #mask = new Uint8Array(4);
  #maskAt = 0;
  /** Whether a data message is open (its first frame came, its last not yet). */
  #inMessage = false;
  /** A message ended and its line feed is still to be handed on. */
  #lineFeedOwed = false;
  /** The payload of the control frame being read. */
  #control: number[] = [];
  /** One write at a time: the queue's batches, pongs and the close frame never interleave. */
  #writing: Promise<unknown> = Promise.resolve();
  /** A ping arrived and its pong is not yet written; more pings meanwhile share it. */
  #pongOwed: Uint8Array | undefined;
  #closed = false;
  /** Why the connection was failed, if the peer broke the protocol. */
  failure: string | undefined;
  /** When anything last came from the peer, control frames included (`performance.now()`). */
  heardAt = performance.now();

  /** `leftover` is what was read past the end of the HTTP request. */
  constructor(inner: Connection, leftover: Uint8Array) {
    this.#inner = inner;
    this.remoteAddr = inner.remoteAddr;
    this.#raw.set(leftover.subarray(0, READ_BYTES));
    this.#end = Math.min(leftover.length, READ_BYTES);
  }

  /** Reads message payload; a line feed ends each message; null once the peer closed. */
  async read(buffer: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.failure !== undefined) throw new Error(this.failure);
      if (this.#closed) return null;
      const n = this.#decode(buffer);
      if (n === null) continue; // ended: the checks above say how
      if (n > 0) return n;
      if (this.#start > 0) {
        this.#raw.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      const got = await this.#inner.read(this.#raw.subarray(this.#end));
      if (got === null) return null;
      this.#end += got;
      this.heardAt = performance.now(); // a ping or a pong is a sign of life too
    }
  }

  /** Writes `bytes` as one text message; resolves with their length once written. */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new Error("the WebSocket is closed"));
    return this.#send(OP_TEXT, bytes).then(() => bytes.length);
  }

  /** Sends a close frame (for at most a second) and closes the connection. */
  close(code: number = CloseCode.normal): void {
    if (this.#closed) return;
    this.#closed = true;
    const payload = new Uint8Array([code >> 8, code & 0xff]);
    const sent = this.#writing.then(() => writeAll(this.#inner, frame(OP_CLOSE, payload)));
    within(sent, 1000).catch(() => {}).finally(() => {
      try {
        this.#inner.close();
      } catch {
        // Closed already.
      }
    });
  }

  #send(opcode: number, payload: Uint8Array): Promise<void> {
    // A large batch goes out after its header rather than copied behind it: a peer that stops
    // reading must not hold the outbound queue's bytes twice.
    const large = payload.length > COPY_LIMIT;
    const bytes = large ? header(opcode, payload.length) : frame(opcode, payload);
    const sent = this.#writing.then(async () => {
      await writeAll(this.#inner, bytes);
      if (large) await writeAll(this.#inner, payload);
    });
    this.#writing = sent.catch(() => {});
    return sent;
  }

  /**
   * Decodes what is buffered into `out`: payload bytes and line feeds.
   * Returns how many bytes it produced (0: more input needed), or null when
   * the stream ends here (a close frame, or a violation it answered).
   */
  #decode(out: Uint8Array): number | null {
    let n = 0;
    while (n < out.length) {
      if (this.#lineFeedOwed) {
        out[n++] = 0x0a;
        this.#lineFeedOwed = false;
        continue;
      }
      if (this.#left < 0) {
        const header = this.#header();
        if (header === "more") return n;
        if (header === "fail") return n > 0 ? n : null;
      }
      if (this.#isControl()) {
        const take = Math.min(this.#left, this.#end - this.#start);
        for (let i = 0; i < take; i++) this.#control.push(this.#unmask(this.#raw[this.#start++]));
        this.#left -= take;
        if (this.#left > 0) return n;
        this.#left = -1;
        if (this.#controlFrame() === "end") return n > 0 ? n : null;
        continue;
      }
      const take = Math.min(this.#left, this.#end - this.#start, out.length - n);
      for (let i = 0; i < take; i++) out[n++] = this.#unmask(this.#raw[this.#start++]);
      this.#left -= take;
      if (this.#left > 0) return n;
      this.#left = -1;
      if (this.#fin) {
        this.#inMessage = false;
        this.#lineFeedOwed = true;
      }
    }
    return n;
  }

  #isControl(): boolean {
    return (this.#opcode & 0x8) !== 0;
  }

  #unmask(byte: number): number {
    return byte ^ this.#mask[this.#maskAt++ & 3];
  }

  /** Reads a frame header if it is all buffered; checks it against the rules. */
  #header(): "ok" | "more" | "fail" {
    const raw = this.#raw;
    const available = this.#end - this.#start;
    if (available < 2) return "more";
    const b0 = raw[this.#start];
    const b1 = raw[this.#start + 1];
    let length = b1 & 0x7f;
    const extra = length === 126 ? 2 : length === 127 ? 8 : 0;
    const size = 2 + extra + 4;
    if (available < size) return "more";
    if (extra === 2) length = (raw[this.#start + 2] << 8) | raw[this.#start + 3];
    if (extra === 8) {
      const view = new DataView(raw.buffer, raw.byteOffset + this.#start + 2, 8);
      const big = view.getBigUint64(0);
      length = big > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(big);
    }
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if ((b0 & 0x70) !== 0) return this.#fail(CloseCode.protocolError, "reserved bits set");
    if ((b1 & 0x80) === 0) return this.#fail(CloseCode.protocolError, "unmasked client frame");
    if (opcode & 0x8) {
      if (opcode !== OP_CLOSE && opcode !== OP_PING && opcode !== OP_PONG) {
        return this.#fail(CloseCode.protocolError, `unknown opcode ${opcode}`);
      }
      if (!fin || length > MAX_CONTROL_PAYLOAD) {
        return this.#fail(CloseCode.protocolError, "bad control frame");
      }
    } else if (opcode === OP_CONTINUATION) {
      if (!this.#inMessage) return this.#fail(CloseCode.protocolError, "stray continuation");
    } else if (opcode === OP_TEXT || opcode === OP_BINARY) {
      if (this.#inMessage) return this.#fail(CloseCode.protocolError, "message inside a message");
      this.#inMessage = true;
    } else {
      return this.#fail(CloseCode.protocolError, `unknown opcode ${opcode}`);
    }
    this.#mask.set(raw.subarray(this.#start + 2 + extra, this.#start + size));
    this.#maskAt = 0;
    this.#start += size;
    this.#left = length;
    this.#opcode = opcode;
    if (opcode & 0x8) this.#control = [];
    else this.#fin = fin;
    return "ok";
  }

  /** Acts on a whole control frame: answers a ping, ends on a close. */
  #controlFrame(): "go on" | "end" {
    const payload = new Uint8Array(this.#control);
    this.#control = [];
    if (this.#opcode === OP_PING) {
      // A flood of pings gets one pong at a time, with the latest data.
      const waiting = this.#pongOwed !== undefined;
      this.#pongOwed = payload;
      if (!waiting) {
        this.#writing.then(() => {
          const data = this.#pongOwed!;
          this.#pongOwed = undefined;
          if (!this.#closed) return this.#send(OP_PONG, data);
        }).catch(() => {});
      }
      return "go on";
    }
    if (this.#opcode === OP_CLOSE) {
      this.close(CloseCode.normal);
      return "end";
    }
    return "go on"; // a pong: proof of life, which the read already counted
  }

  #fail(code: number, why: string): "fail" {
    this.close(code);
    this.failure = `WebSocket protocol error: ${why}`;
    return "fail";
  }
}

/** Batches up to this size are copied behind their header, to go out in one write. */
const COPY_LIMIT = 16 * 1024;

/** One unmasked frame, as a server sends it. */
function frame(opcode: number, payload: Uint8Array): Uint8Array {
  const top = header(opcode, payload.length, payload.length);
  top.set(payload, top.length - payload.length);
  return top;
}

/** A frame's header for `n` bytes of payload, with room for `extra` bytes after it. */
function header(opcode: number, n: number, extra = 0): Uint8Array {
  const size = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const bytes = new Uint8Array(size + extra);
  bytes[0] = 0x80 | opcode;
  if (n < 126) {
    bytes[1] = n;
  } else if (n < 65536) {
    bytes[1] = 126;
    bytes[2] = n >> 8;
    bytes[3] = n & 0xff;
  } else {
    bytes[1] = 127;
    new DataView(bytes.buffer).setBigUint64(2, BigInt(n));
  }
  return bytes;
}

async function writeAll(conn: Connection, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

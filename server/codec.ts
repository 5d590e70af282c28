/**
 * Codecs: how server frames become bytes for one kind of client.
 *
 * A member of the hub is served through a codec. A broadcast encodes its
 * frame once per codec in use in the room, not once per member, and pushes
 * the same bytes into every member's queue that shares the codec. A new
 * kind of client (an IRC gateway, say) is a new codec; the hub does not
 * change.
 *
 * Two exist today:
 * - {@linkcode jsonLines}, the protocol (one JSON object a line), spoken by
 *   `chat join`, scripts and the web page (over a WebSocket, the same lines
 *   travel in text messages);
 * - {@linkcode textLines}, what a person reads in nc or telnet.
 *
 * @module
 */

import type { FrameArena } from "./frame_arena.ts";
import { encodeFrame, type ServerFrame } from "../protocol.ts";
import { renderFrame } from "../text/render.ts";

/** How frames are written for one kind of client. */
export interface Codec {
  /** A short name, for logs. */
  readonly name: string;
  /** The bytes of one frame, line ending included. */
  encode(frame: ServerFrame): Uint8Array;
  /**
   * Whether a sender is sent its own message back. Protocol clients take it as
   * the confirmation (with its id and seq); a person in a terminal already
   * sees what they typed.
   */
  readonly echoesOwnMessages: boolean;
}

const textEncoder = new TextEncoder();

/**
 * The chat protocol: one JSON object a line.
 *
 * @example
 * ```ts
 * import { jsonLines } from "./codec.ts";
 * const bytes = jsonLines.encode({ type: "pong" });
 * new TextDecoder().decode(bytes); // '{"type":"pong"}\n'
 * ```
 */
export const jsonLines: Codec = {
  name: "json",
  encode: encodeFrame,
  echoesOwnMessages: true,
};

/**
 * Lines a person reads, ending in CRLF as telnet expects.
 *
 * @example
 * ```ts
 * import { textLines } from "./codec.ts";
 * const ts = Date.now();
 * const frame = { type: "msg", id: 1, ts, room: "lobby", seq: 1, from: "ada", text: "hi" } as const;
 * new TextDecoder().decode(textLines.encode(frame)); // e.g. "[14:02] ada: hi\r\n"
 * ```
 */
export const textLines: Codec = {
  name: "text",
  encode: (frame) => textEncoder.encode((renderFrame(frame) ?? "") + "\r\n"),
  echoesOwnMessages: false,
};

/**
 * Encodes a frame at most once per codec: the first call for a codec
 * encodes, later ones reuse the bytes.
 *
 * @example
 * ```ts
 * import { Encodings, jsonLines } from "./codec.ts";
 * const encodings = new Encodings({ type: "pong" });
 * encodings.for(jsonLines) === encodings.for(jsonLines); // true: the same bytes
 * ```
 */
export class Encodings {
  readonly #frame: ServerFrame;
  readonly #arena: FrameArena | undefined;
  // Most rooms use one codec, a few two: a pair of fields beats a map.
  #codec: Codec | undefined;
  #bytes: Uint8Array | undefined;
  #others: Map<Codec, Uint8Array> | undefined;

  /**
   * With an `arena` (a room's), the first encoding is kept in it, next to the
   * room's frames before; others are not, so that what lies together in it
   * is owed to the same members (see `frame_arena.ts`).
   */
  constructor(frame: ServerFrame, arena?: FrameArena) {
    this.#frame = frame;
    this.#arena = arena;
  }

  /** The frame's bytes for `codec`. */
  for(codec: Codec): Uint8Array {
    if (this.#codec === codec) return this.#bytes!;
    if (this.#codec === undefined) {
      this.#codec = codec;
      const bytes = codec.encode(this.#frame);
      return this.#bytes = this.#arena ? this.#arena.keep(bytes) : bytes;
    }
    this.#others ??= new Map();
    let bytes = this.#others.get(codec);
    if (bytes === undefined) this.#others.set(codec, bytes = codec.encode(this.#frame));
    return bytes;
  }
}

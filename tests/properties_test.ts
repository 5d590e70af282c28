/**
 * Properties of the wire format (protocol.ts) that fast-check tries on
 * thousands of generated inputs, seeded (see tests/fuzzing.ts): the line
 * decoder gives the same lines however the bytes are split, and holds a
 * bounded amount; the frame parsers never throw, and a frame they accept
 * survives being encoded and parsed again.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type ClientFrame,
  DEFAULT_MAX_FRAME_BYTES,
  encodeFrame,
  type FrameError,
  LineDecoder,
  parseClientFrame,
  parseServerFrame,
  type ServerFrame,
} from "../protocol.ts";
import { check } from "./fuzzing.ts";

const encoder = new TextEncoder();

// ---------------------------------------------------------------- the line decoder

/** A decoder's output as plain values: a line's bytes, or the error's code. */
type Out = number[] | string;

/** Pushes `bytes` cut at `cuts`; checks the bounds after each push. */
function decode(bytes: Uint8Array, cuts: number[], max: number): { out: Out[]; pending: number } {
  const decoder = new LineDecoder({ maxLineBytes: max });
  const out: Out[] = [];
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  for (const to of [...points, bytes.length]) {
    for (const line of decoder.push(bytes.subarray(from, to))) {
      if (line instanceof Uint8Array) {
        assert.ok(!line.includes(10), "a line holds no \\n");
        assert.ok(line.length <= max, `a line of ${line.length} bytes passed a limit of ${max}`);
        out.push([...line]); // copied at once: a line may be a view into the chunk
      } else {
        assert.equal(line.type, "frame_error");
        out.push(line.code);
      }
    }
    assert.ok(decoder.pendingBytes <= max + 1, `${decoder.pendingBytes} bytes pending`);
    from = to;
  }
  return { out, pending: decoder.pendingBytes };
}

/** What the decoder should give, worked out line by line. */
function model(bytes: Uint8Array, max: number): { out: Out[]; pending: number } {
  const pieces: number[][] = [[]];
  for (const byte of bytes) {
    if (byte === 10) pieces.push([]);
    else pieces.at(-1)!.push(byte);
  }
  const tail = pieces.pop()!;
  const out: Out[] = pieces.map((piece) => {
    const line = piece.at(-1) === 13 ? piece.slice(0, -1) : piece;
    return line.length > max ? "frame_too_large" : line;
  });
  // An unfinished line that cannot fit is not held, and is reported only when it ends.
  return { out, pending: tail.length > max + 1 ? 0 : tail.length };
}

/** Bytes rich in line endings, and in what often starts or breaks a frame. */
const byte = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 255 }) },
  { weight: 1, arbitrary: fc.constantFrom(10, 13, 0x7b, 0x22, 0xc3, 0xe2, 0x80) },
);
const someBytes = fc.array(byte, { maxLength: 300 }).map((b) => Uint8Array.from(b));
const cuts = fc.array(fc.nat(), { maxLength: 20 });

Deno.test("property: the line decoder gives the same lines however the bytes are split", () => {
  check(
    fc.property(someBytes, cuts, fc.integer({ min: 0, max: 40 }), (bytes, cuts, max) => {
      const whole = decode(bytes, [], max);
      const split = decode(bytes, cuts, max);
      assert.deepEqual(split, whole);
      assert.deepEqual(whole, model(bytes, max));
    }),
    3000,
  );
});

Deno.test("property: a line past the limit is reported once and never held whole", () => {
  const long = fc.record({
    before: fc.integer({ min: 0, max: 100 }),
    size: fc.integer({ min: DEFAULT_MAX_FRAME_BYTES + 1, max: 3 * DEFAULT_MAX_FRAME_BYTES }),
    end: fc.constantFrom("\n", "\r\n", ""),
    cuts: fc.array(fc.nat(), { maxLength: 40 }),
  });
  check(
    fc.property(long, ({ before, size, end, cuts }) => {
      const text = "a".repeat(before) + "\n" + "x".repeat(size) + end + '{"type":"who"}\n';
      const { out } = decode(encoder.encode(text), cuts, DEFAULT_MAX_FRAME_BYTES);
      assert.equal(out.length, end === "" ? 2 : 3);
      assert.equal((out[0] as number[]).length, before);
      assert.equal(out[1], "frame_too_large");
      if (end !== "") assert.deepEqual(out[2], [...encoder.encode('{"type":"who"}')]);
    }),
    50,
  );
});

// ---------------------------------------------------------------- frames

/** Any string, lone surrogates included (JSON can carry them escaped). */
const text = fc.string({
  unit: fc.oneof(
    { weight: 4, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) },
    { weight: 1, arbitrary: fc.constantFrom("\n", "\u2028", "\u0085", "\uD800", "\uDFFF", '"') },
  ),
  maxLength: 20,
});
const int = fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.constantFrom(0, 1, -1));

const clientFrame: fc.Arbitrary<ClientFrame> = fc.oneof(
  fc.record({
    type: fc.constant("hello" as const),
    version: int,
    name: text,
    room: text,
    history: int,
    since: int,
    epoch: text,
    token: text,
    dmSince: int,
    password: text,
    op: text,
  }, { requiredKeys: ["type", "version"] }),
  fc.record({ type: fc.constant("msg" as const), text, ref: int }, {
    requiredKeys: ["type", "text"],
  }),
  fc.record({ type: fc.constant("dm" as const), to: text, text, ref: int }, {
    requiredKeys: ["type", "to", "text"],
  }),
  fc.record({ type: fc.constant("join" as const), room: text, ref: int }, {
    requiredKeys: ["type", "room"],
  }),
  fc.record({ type: fc.constant("rooms" as const), ref: int }, { requiredKeys: ["type"] }),
  fc.record({ type: fc.constant("topic" as const), text, room: text, ref: int }, {
    requiredKeys: ["type", "text"],
  }),
  fc.record({ type: fc.constant("op" as const), token: text, ref: int }, {
    requiredKeys: ["type", "token"],
  }),
  fc.record({ type: fc.constant("kick" as const), name: text, reason: text, ref: int }, {
    requiredKeys: ["type", "name"],
  }),
  fc.record({ type: fc.constant("mute" as const), name: text, minutes: int, ref: int }, {
    requiredKeys: ["type", "name"],
  }),
  fc.record(
    { type: fc.constant("ban" as const), name: text, minutes: int, reason: text, ref: int },
    { requiredKeys: ["type", "name"] },
  ),
  fc.record({ type: fc.constant("unban" as const), name: text, ref: int }, {
    requiredKeys: ["type", "name"],
  }),
  fc.record({ type: fc.constant("motd" as const), text, ref: int }, {
    requiredKeys: ["type", "text"],
  }),
  fc.record({ type: fc.constant("nick" as const), name: text, ref: int }, {
    requiredKeys: ["type", "name"],
  }),
  fc.record({ type: fc.constant("who" as const), ref: int }, { requiredKeys: ["type"] }),
  fc.record({ type: fc.constant("ping" as const), data: text, ref: int }, {
    requiredKeys: ["type"],
  }),
  fc.record({ type: fc.constant("pong" as const), data: text }, { requiredKeys: ["type"] }),
  fc.constant({ type: "quit" as const }),
);

const names = fc.array(text, { maxLength: 4 });
const eventKind = fc.constantFrom(
  "join" as const,
  "leave" as const,
  "rename" as const,
  "topic" as const,
  "op" as const,
  "kick" as const,
  "mute" as const,
  "ban" as const,
  "unban" as const,
  "motd" as const,
);
const errorCode = fc.constantFrom("bad_frame" as const, "name_taken" as const, "timeout" as const);

const serverFrame: fc.Arbitrary<ServerFrame> = fc.oneof(
  fc.record({
    type: fc.constant("welcome" as const),
    version: int,
    name: text,
    server: text,
    limits: fc.record(
      { maxFrameBytes: int, maxNameLength: int, rate: int, burst: int, rateBytes: int },
      { requiredKeys: ["maxFrameBytes", "maxNameLength", "rate", "burst"] },
    ),
    room: text,
    topic: text,
    seq: int,
    epoch: text,
    users: names,
    online: int,
    ops: names,
    op: fc.boolean(),
    motd: text,
    token: text,
  }, {
    requiredKeys: [
      "type",
      "version",
      "name",
      "server",
      "limits",
      "room",
      "topic",
      "seq",
      "epoch",
      "users",
      "online",
      "ops",
      "token",
    ],
  }),
  fc.record({
    type: fc.constant("msg" as const),
    id: int,
    ts: int,
    room: text,
    seq: int,
    from: text,
    text,
    ref: int,
    replay: fc.boolean(),
  }, { requiredKeys: ["type", "id", "ts", "room", "seq", "from", "text"] }),
  fc.record({
    type: fc.constant("dm" as const),
    id: int,
    ts: int,
    from: text,
    to: text,
    text,
    ref: int,
    replay: fc.boolean(),
  }, { requiredKeys: ["type", "id", "ts", "from", "to", "text"] }),
  fc.record({
    type: fc.constant("history" as const),
    room: text,
    epoch: text,
    count: int,
    gone: int,
    restarted: fc.boolean(),
  }, { requiredKeys: ["type", "room", "epoch", "count", "gone"] }),
  fc.record({
    type: fc.constant("room" as const),
    room: text,
    topic: text,
    seq: int,
    epoch: text,
    users: names,
    online: int,
  }),
  fc.record({
    type: fc.constant("rooms" as const),
    rooms: fc.array(fc.record({ name: text, members: int, topic: text }), { maxLength: 3 }),
  }),
  fc.record({
    type: fc.constant("event" as const),
    id: int,
    ts: int,
    room: text,
    event: eventKind,
    name: text,
    from: text,
    reason: text,
    topic: text,
    by: text,
    minutes: int,
    text,
  }, { requiredKeys: ["type", "id", "ts", "room", "event", "name"] }),
  fc.record({
    type: fc.constant("who" as const),
    room: text,
    users: names,
    ops: names,
    online: int,
  }),
  fc.record({
    type: fc.constant("error" as const),
    code: errorCode,
    message: text,
    ref: int,
    retryMs: int,
  }, { requiredKeys: ["type", "code", "message"] }),
  fc.record({ type: fc.constant("ping" as const), data: text }, { requiredKeys: ["type"] }),
  fc.record({ type: fc.constant("pong" as const), data: text }, { requiredKeys: ["type"] }),
);

/** A generated frame as plain objects (fast-check may make them without a prototype). */
function plain<T>(frame: T): T {
  return JSON.parse(JSON.stringify(frame));
}

/** A frame's line, without its `\n`. */
function line(frame: ClientFrame | ServerFrame): Uint8Array {
  const bytes = encodeFrame(frame);
  assert.equal(bytes.at(-1), 10);
  return bytes.subarray(0, -1);
}

Deno.test("property: every client frame survives encoding and parsing", () => {
  check(
    fc.property(
      clientFrame,
      (frame) => assert.deepEqual(parseClientFrame(line(frame)), plain(frame)),
    ),
    2000,
  );
});

Deno.test("property: every server frame survives encoding and parsing", () => {
  check(
    fc.property(
      serverFrame,
      (frame) => assert.deepEqual(parseServerFrame(line(frame)), plain(frame)),
    ),
    2000,
  );
});

/** JSON values of any shape, and objects that look like frames but have fields of any type. */
const FIELDS = [
  ..."type version name room history since epoch token dmSince text ref to data".split(" "),
  ..."id ts seq from replay count gone restarted users online server limits rooms".split(" "),
  ..."event reason topic code message retryMs members".split(" "),
];
const TYPES = [
  ..."hello msg dm join rooms topic nick who ping pong quit welcome history room".split(" "),
  ..."event error __proto__ constructor toString".split(" "),
];
const anyValue = fc.oneof(
  int,
  text,
  fc.boolean(),
  fc.constant(null),
  fc.double(),
  names,
  fc.record({ maxFrameBytes: int, maxNameLength: int, rate: int, burst: int }),
  fc.array(fc.record({ name: text, members: int, topic: text }), { maxLength: 2 }),
  fc.jsonValue({ maxDepth: 2 }),
);
const frameLike = fc.tuple(
  fc.constantFrom(...TYPES),
  fc.dictionary(fc.constantFrom(...FIELDS), anyValue, { maxKeys: 12 }),
).map(([type, fields]) => ({ ...fields, type }));
const anyJson = fc.oneof(
  frameLike,
  fc.jsonValue({ maxDepth: 4 }),
  clientFrame,
  serverFrame,
);

/** Cuts, flips and insertions applied to bytes: partial UTF-8, `{` without its end… */
const mangled = fc.tuple(
  anyJson.map((value) => encoder.encode(JSON.stringify(value))),
  fc.array(
    fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom("cut", "set", "add")),
    {
      maxLength: 4,
    },
  ),
).map(([bytes, edits]) => {
  let out = [...bytes];
  for (const [at, value, edit] of edits) {
    const i = at % (out.length + 1);
    if (edit === "cut") out = out.slice(0, i);
    else if (edit === "set" && i < out.length) out[i] = value;
    else out.splice(i, 0, value);
  }
  return Uint8Array.from(out);
});
const anyLine = fc.oneof(
  mangled,
  anyJson.map((value) => encoder.encode(JSON.stringify(value))),
  fc.uint8Array({ maxLength: 200 }),
);

/** A parsed frame that was accepted survives encoding and parsing; an error is well formed. */
function stable<F extends { type: string }>(
  parse: (line: Uint8Array) => F | FrameError,
  bytes: Uint8Array,
): void {
  const frame = parse(bytes);
  if (frame.type === "frame_error") {
    const error = frame as FrameError;
    assert.ok(error.code === "bad_frame" || error.code === "frame_too_large");
    assert.equal(typeof error.message, "string");
    if ("ref" in error) assert.ok(Number.isSafeInteger(error.ref));
    return;
  }
  // The frame as JSON carries it (-0 becomes 0); it must parse back to just that.
  const again = parse(encodeFrame(frame as unknown as ClientFrame).subarray(0, -1));
  assert.deepEqual(again, JSON.parse(JSON.stringify(frame)));
}

Deno.test("property: parseClientFrame never throws, and what it accepts is stable", () => {
  check(fc.property(anyLine, (bytes) => stable(parseClientFrame, bytes)), 4000);
});

Deno.test("property: parseServerFrame never throws, and what it accepts is stable", () => {
  check(fc.property(anyLine, (bytes) => stable(parseServerFrame, bytes)), 4000);
});

Deno.test("the parsers refuse deep nesting and odd shapes without throwing", () => {
  const cases = [
    "[".repeat(100_000),
    '{"a":'.repeat(50_000) + "1" + "}".repeat(50_000),
    '{"type":"msg","text":"' + "\\u0000".repeat(2000) + '"}',
    '{"__proto__":{"type":"who"}}',
    '{"type":"welcome","limits":[1,2,3,4]}',
    '{"type":"rooms","rooms":[[]]}',
    '{"type":"rooms","rooms":[null]}',
    '{"type":"event","id":1,"ts":1,"room":"r","name":"n","event":"toString"}',
    "\uFEFF",
    "",
  ];
  for (const text of cases) {
    for (const parse of [parseClientFrame, parseServerFrame]) {
      stable(parse as (line: Uint8Array) => { type: string } | FrameError, encoder.encode(text));
    }
  }
});

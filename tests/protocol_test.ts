import assert from "node:assert/strict";
import {
  encodeFrame,
  type FrameError,
  LineDecoder,
  parseClientFrame,
  parseServerFrame,
  validateName,
} from "../protocol.ts";
import { neutralize } from "../text/render.ts";
import { splitText } from "../client/split_text.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (line: Uint8Array | FrameError) =>
  line instanceof Uint8Array ? new TextDecoder().decode(line) : `<${line.code}>`;

Deno.test("decoder joins a frame split across many reads", () => {
  const decoder = new LineDecoder({ maxLineBytes: 100 });
  const out: string[] = [];
  for (const char of '{"type":"who"}\n') out.push(...decoder.push(bytes(char)).map(text));
  assert.deepEqual(out, ['{"type":"who"}']);
});

Deno.test("decoder splits many frames in one read, and accepts CRLF", () => {
  const decoder = new LineDecoder({ maxLineBytes: 100 });
  assert.deepEqual(decoder.push(bytes("a\nbb\r\n\nccc\r\nd")).map(text), ["a", "bb", "", "ccc"]);
  assert.deepEqual(decoder.push(bytes("\n")).map(text), ["d"]);
});

Deno.test("decoder rejects an over-long line once and skips it without holding it", () => {
  const decoder = new LineDecoder({ maxLineBytes: 10 });
  const out: string[] = [];
  out.push(...decoder.push(bytes("ok\n0123456789ABC")).map(text));
  for (let i = 0; i < 1000; i++) {
    out.push(...decoder.push(bytes("x".repeat(1000))).map(text));
    assert.ok(decoder.pendingBytes <= 11, "held bytes stay under the limit");
  }
  out.push(...decoder.push(bytes("still skipped\nnext\n")).map(text));
  assert.deepEqual(out, ["ok", "<frame_too_large>", "next"]);
});

Deno.test("decoder takes a line of exactly the limit, with or without CR", () => {
  const decoder = new LineDecoder({ maxLineBytes: 4 });
  assert.deepEqual(decoder.push(bytes("abcd\nabcd\r\nabcde\n")).map(text), [
    "abcd",
    "abcd",
    "<frame_too_large>",
  ]);
  assert.deepEqual(decoder.push(bytes("ab")).length, 0);
  assert.deepEqual(decoder.push(bytes("cde\nz\n")).map(text), ["<frame_too_large>", "z"]);
});

Deno.test("a frame round-trips through encode and parse", () => {
  const frame = {
    type: "msg" as const,
    id: 7,
    ts: 1700000000000,
    room: "lobby",
    seq: 3,
    from: "ada",
    text: "hé\n✓",
  };
  const line = encodeFrame(frame);
  assert.equal(line[line.length - 1], 10);
  assert.deepEqual(parseServerFrame(line.subarray(0, -1)), frame);
});

Deno.test("client frames are checked field by field", () => {
  const parse = (line: string) => parseClientFrame(bytes(line));
  assert.deepEqual(parse('{"type":"msg","text":"hi","ref":3}'), {
    type: "msg",
    text: "hi",
    ref: 3,
  });
  assert.deepEqual(parse('{"type":"hello","version":1,"room":"lab","since":4}'), {
    type: "hello",
    version: 1,
    room: "lab",
    since: 4,
  });
  assert.deepEqual(parse('{"type":"dm","to":"bob","text":"psst"}'), {
    type: "dm",
    to: "bob",
    text: "psst",
  });
  const bad = [
    '{"type":"msg","text":5}',
    '{"type":"msg"}',
    '{"type":"msg","text":"x","ref":"1"}',
    '{"type":"msg","text":"x","ref":1.5}',
    '{"type":"hello","version":"1"}',
    '{"type":"hello","version":1,"since":"4"}',
    '{"type":"dm","text":"no target"}',
    '{"type":"join"}',
    '{"type":"nick","name":null}',
    '{"type":"launch"}',
    '{"text":"no type"}',
    "[1,2]",
    '"just a string"',
    "null",
    "{not json",
    "",
  ];
  for (const line of bad) {
    const result = parse(line);
    assert.equal(result.type, "frame_error", line);
    assert.equal((result as FrameError).code, "bad_frame", line);
  }
});

Deno.test("invalid UTF-8 is a bad frame, not an exception", () => {
  const result = parseClientFrame(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]));
  assert.deepEqual(result, {
    type: "frame_error",
    code: "bad_frame",
    message: "frame is not valid UTF-8",
  });
});

Deno.test("server frames are checked too", () => {
  const bad = [
    '{"type":"welcome","version":1,"name":"a"}',
    '{"type":"event","id":1,"ts":1,"room":"r","event":"explode","name":"a"}',
    '{"type":"rooms","rooms":[{"name":"a","members":"2","topic":""}]}',
    '{"type":"msg","id":1,"ts":1,"room":"r","seq":1,"from":"a","text":"t","replay":1}',
    '{"type":"history","room":"r","count":1}',
  ];
  for (const line of bad) assert.equal(parseServerFrame(bytes(line)).type, "frame_error", line);
  const rooms = parseServerFrame(
    bytes('{"type":"rooms","rooms":[{"name":"a","members":2,"topic":""}]}'),
  );
  assert.deepEqual(rooms, { type: "rooms", rooms: [{ name: "a", members: 2, topic: "" }] });
});

Deno.test("names: letters, digits and -_. within the length, not reserved", () => {
  assert.deepEqual(validateName("ada", 32), { ok: true, name: "ada" });
  assert.deepEqual(validateName("Zoë_2.b-c", 32), { ok: true, name: "Zoë_2.b-c" });
  assert.deepEqual(validateName("李雷", 32), { ok: true, name: "李雷" });
  for (
    const bad of ["", "a b", "-lead", "x\u200by", "x\u202ey", "tab\there", "Server", "a".repeat(33)]
  ) {
    assert.deepEqual(validateName(bad, 32).ok, false, JSON.stringify(bad));
  }
});

Deno.test("neutralize removes escape sequences and invisible controls", () => {
  assert.deepEqual(
    neutralize("a\x1b[2Jb\x07c\u202ed\r\ne"),
    "a\uFFFD[2Jb\uFFFDc\uFFFDd\uFFFD\uFFFDe",
  );
  assert.deepEqual(neutralize("tab\there ✓ 李"), "tab here ✓ 李");
  assert.deepEqual(neutralize("\x9b31m"), "\uFFFD31m"); // the 8-bit CSI too
});

Deno.test("splitText keeps every character and fits each piece in a frame", () => {
  const long = "ab😀\u0001".repeat(3000);
  const pieces = splitText(long, 1024);
  assert.deepEqual(pieces.join(""), long);
  for (const piece of pieces) {
    const frame = encodeFrame({ type: "msg", text: piece, ref: Number.MAX_SAFE_INTEGER });
    assert.ok(frame.length - 1 <= 1024, `piece of ${frame.length} bytes`);
    assert.ok(!/^[\udc00-\udfff]/.test(piece), "no piece starts inside a surrogate pair");
  }
  assert.deepEqual(splitText("short", 1024), ["short"]);
});

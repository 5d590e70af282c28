/**
 * Micro-benchmarks of the wire format: our encoder, line decoder and
 * validating parser against plain `JSON.stringify`/`JSON.parse` of the same
 * frames, to show what framing and validation cost. Run: `deno task bench:protocol`.
 * Each benchmark handles a batch of 1,000 frames; frames/s = 1000 / time per
 * iteration, MB/s from the batch size printed below.
 *
 * @module
 */

import { encodeFrame, LineDecoder, parseClientFrame, parseServerFrame } from "../protocol.ts";

const FRAMES = 1000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const serverFrames = Array.from({ length: FRAMES }, (_, i) => ({
  type: "msg" as const,
  id: 1_000_000 + i,
  ts: 1_764_200_000_000 + i,
  room: "lobby",
  seq: 500_000 + i,
  from: `student${i % 100}`,
  text: `message number ${i}: the quick brown fox jumps over the lazy dog`,
}));
const clientLines = serverFrames.map((f) =>
  JSON.stringify({ type: "msg", text: f.text, ref: f.seq })
);
const stream = encoder.encode(clientLines.join("\n") + "\n");
const serverStream = encoder.encode(serverFrames.map((f) => JSON.stringify(f)).join("\n") + "\n");
// Reads of 16 KiB, as a socket would hand them over.
const chunks: Uint8Array[] = [];
for (let i = 0; i < stream.length; i += 16384) chunks.push(stream.subarray(i, i + 16384));

console.log(
  `batch: ${FRAMES} frames; client stream ${(stream.length / 1024).toFixed(1)} KiB, ` +
    `server stream ${(serverStream.length / 1024).toFixed(1)} KiB`,
);

Deno.bench(
  "encode: encodeFrame (JSON.stringify + UTF-8)",
  { group: "encode", baseline: true },
  () => {
    for (const frame of serverFrames) encodeFrame(frame);
  },
);

Deno.bench("encode: JSON.stringify alone", { group: "encode" }, () => {
  for (const frame of serverFrames) JSON.stringify(frame);
});

Deno.bench("decode: LineDecoder + parseClientFrame", { group: "decode", baseline: true }, () => {
  const lines = new LineDecoder();
  for (const chunk of chunks) {
    for (const line of lines.push(chunk)) {
      if (line instanceof Uint8Array) parseClientFrame(line);
    }
  }
});

Deno.bench("decode: LineDecoder framing alone", { group: "decode" }, () => {
  const lines = new LineDecoder();
  for (const chunk of chunks) lines.push(chunk);
});

Deno.bench("decode: split + JSON.parse, no checks", { group: "decode" }, () => {
  for (const line of decoder.decode(stream).split("\n")) if (line) JSON.parse(line);
});

Deno.bench("decode: server frames, LineDecoder + parseServerFrame", { group: "client" }, () => {
  const lines = new LineDecoder();
  for (const line of lines.push(serverStream)) {
    if (line instanceof Uint8Array) parseServerFrame(line);
  }
});

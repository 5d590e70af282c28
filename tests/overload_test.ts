/**
 * More offered than the server can relay: it slows the senders down (stops
 * reading them, so TCP pushes back) instead of cutting off readers that read
 * as fast as they are sent to. That a reader that stops reading is still cut
 * is server_test.ts's to show.
 */

import assert from "node:assert/strict";
import { LineDecoder } from "../protocol.ts";
import { deadline } from "./helpers.ts";
import { startServe, stop } from "./subprocess.ts";

const READERS = 80;
const SENDERS = 8;
const PER_SENDER = 1500;
const encoder = new TextEncoder();

interface Reader {
  conn: Deno.TcpConn;
  received: number;
  errors: string[];
  done: Promise<void>;
}

async function reader(port: number, name: string, read = true): Promise<Reader> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(
    encoder.encode(JSON.stringify({ type: "hello", version: 1, name, history: 0 }) + "\n"),
  );
  const r: Reader = { conn, received: 0, errors: [], done: Promise.resolve() };
  if (!read) return r;
  const lines = new LineDecoder({ maxLineBytes: 1 << 20 });
  r.done = (async () => {
    try {
      for await (const chunk of conn.readable) {
        for (const line of lines.push(chunk)) {
          if (!(line instanceof Uint8Array)) continue;
          if (line[9] === 0x6d && line[10] === 0x73) r.received++; // {"type":"msg"
          else if (line[9] === 0x65 && line[10] === 0x72) {
            r.errors.push(new TextDecoder().decode(line));
          }
        }
      }
    } catch {
      // Cut off: counted by what it received.
    }
  })();
  return r;
}

Deno.test("offered more than it can relay, the server slows the senders and cuts no reader", async () => {
  const { serve, port } = await startServe(
    "--quiet",
    ...["--rate", "1000000", "--burst", "1000000", "--rate-bytes", "1073741824"],
    ...["--max-per-address", "1000"],
  );
  const readers: Reader[] = [];
  try {
    for (let i = 0; i < READERS; i++) readers.push(await reader(port, `r${i}`));
    const stuck = await reader(port, "stuck", false); // joins, never reads
    readers.push(stuck);
    // Every reader is in before the flood.
    await deadline(
      (async () => {
        while (readers.slice(0, READERS).some((r) => r.received < 0)) await Promise.resolve();
      })(),
      1000,
      "ready",
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const senders = readers.slice(1, SENDERS + 1);
    await Promise.all(senders.map(async ({ conn }, s) => {
      let batch = "";
      for (let n = 0; n < PER_SENDER; n++) {
        batch += JSON.stringify({ type: "msg", text: `s${s} ${n} `.padEnd(200, "x") }) + "\n";
        if (n % 50 === 49) {
          await conn.write(encoder.encode(batch));
          batch = "";
        }
      }
    }));
    const total = SENDERS * PER_SENDER;
    const reading = readers.slice(0, READERS);
    await deadline(
      (async () => {
        while (reading.some((r) => r.received < total)) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          const cut = reading.filter((r) => r.errors.length > 0);
          if (cut.length > 0) throw new Error(`${cut.length} readers cut: ${cut[0].errors[0]}`);
        }
      })(),
      60_000,
      "every message at every reader",
    );
    assert.ok(reading.every((r) => r.received === total && r.errors.length === 0));
    // The one that never read held no one back. It is not cut here: the 2.7 MB it is sent fits
    // in the kernel's buffers on loopback, so its queue never falls behind (checked 2026-11-28:
    // it then reads all 12,000). server_test.ts has a reader that stops reading cut.
  } finally {
    for (const { conn } of readers) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
    await Promise.all(readers.map((r) => r.done));
    assert.equal(await stop(serve), 0);
  }
});

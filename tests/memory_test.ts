/**
 * Memory is bounded in bytes, whatever is sent: a server whose rooms are
 * filled with the largest messages, in text that V8 stores at two bytes a
 * character, keeps its history within --history-mb.
 */
import assert from "node:assert/strict";
import { startServe, stop } from "./subprocess.ts";
import { TestClient } from "./helpers.ts";
import type { ChatServer } from "../server.ts";

/** The resident memory of a process, from /proc (Linux; read with cat, as Deno asks --allow-all for /proc). */
async function rssBytes(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("cat", { args: [`/proc/${pid}/status`] }).output();
  const status = new TextDecoder().decode(stdout);
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)![1]) * 1024;
}

const MB = 1024 * 1024;

Deno.test({
  name: "history stays within --history-mb when every room is filled with maximum-size messages",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const historyMb = 8;
    const { serve, port } = await startServe(
      "--quiet",
      "--max-per-address", // 30 writers come one after another from 127.0.0.1
      "100",
      "--history-mb",
      String(historyMb),
      "--rate",
      "1000000",
      "--burst",
      "1000000",
      "--rate-bytes",
      "1000000000",
    );
    const server = { addr: { port } } as ChatServer;
    const clients: TestClient[] = [];
    try {
      const before = await rssBytes(serve.child.pid);
      // 30 rooms x 400 messages of 15 KB: 120 MB as V8 strings if all were kept.
      const text = "✓".repeat(5000); // 15 KB of UTF-8, 10 KB as a two-byte string
      for (let r = 0; r < 30; r++) {
        const writer = await TestClient.join(server, `w${r}`, { room: `room${r}`, history: 0 });
        clients.push(writer);
        for (let i = 1; i <= 400; i++) {
          await writer.send({ type: "msg", text: `${i} ${text}` });
          // Read the echoes as we go: a writer that does not is cut off as a slow consumer.
          if (i % 10 === 0) await writer.waitForMessages(i);
        }
        await writer.close();
      }
      const grown = (await rssBytes(serve.child.pid)) - before;
      // The budget counts strings at two bytes a character; allow as much again for what the
      // garbage collector has not given back, and 64 MB for the runtime's own growth (a heap
      // that grew while the messages came, not yet given back). Kept whole, the 120 MB of
      // messages would be far past this.
      const bound = 2 * historyMb * MB + 64 * MB;
      assert.ok(grown < bound, `RSS grew ${(grown / MB).toFixed(1)} MB; bound ${bound / MB} MB`);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      assert.equal(await stop(serve), 0);
    }
  },
});

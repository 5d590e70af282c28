/**
 * End to end for history: `chat join` reconnecting by itself, a server
 * killed with SIGKILL and restarted on the same --db, and `chat log`.
 */
import assert from "node:assert/strict";
import { Proxy, TestClient } from "./helpers.ts";
import { Chat, startServe, stop } from "./subprocess.ts";
import type { ChatServer } from "../server.ts";

/** A TestClient needs only the port of a server it did not start. */
const at = (port: number) => ({ addr: { port } }) as unknown as ChatServer;

Deno.test("a client whose connection is cut reconnects and ends up with exactly the messages", async () => {
  const { serve, port } = await startServe("--quiet", "--rate", "1000", "--burst", "1000");
  const proxy = new Proxy(port);
  const sender = await TestClient.join(at(port), "sender");
  try {
    const ada = new Chat(["join", `127.0.0.1:${proxy.port}`, "--name", "ada", "--json"]);
    await ada.waitFor(/"type":"welcome"/);
    for (let i = 1; i <= 20; i++) await sender.send({ type: "msg", text: `m${i}` });
    await ada.waitFor(/"text":"m20"/);

    proxy.cut(); // the Wi-Fi drops
    await ada.waitForStderr(/reconnecting in/);
    for (let i = 21; i <= 40; i++) await sender.send({ type: "msg", text: `m${i}` });
    await ada.waitForStderr(/reconnected/);
    for (let i = 41; i <= 50; i++) await sender.send({ type: "msg", text: `m${i}` });
    await ada.waitFor(/"text":"m50"/);
    await ada.write("I am back\n");
    await sender.frames.waitFor((f) => f.type === "msg" && f.text === "I am back", "ada's line");
    assert.equal(await ada.exit(), 0);

    const texts = ada.stdout.map((l) => JSON.parse(l)).filter((f) =>
      f.type === "msg" && f.from === "sender"
    )
      .map((f) => f.text);
    assert.deepEqual(texts, Array.from({ length: 50 }, (_, i) => `m${i + 1}`));
    assert.equal(proxy.connections, 2);
    // The others saw the drop, the return under the same name, and the real leave.
    const adaEvents = sender.frames.received.filter((f) => f.type === "event" && f.name === "ada");
    const story = adaEvents.map((f) => f.type === "event" ? `${f.event} ${f.reason ?? ""}` : "");
    assert.equal(story.length, 4, story.join(", "));
    assert.match(story[1], /^leave connection (closed|lost)/);
    assert.deepEqual([story[0], story[2], story[3]], ["join ", "join ", "leave quit"]);
  } finally {
    await sender.close();
    await proxy.close();
    assert.equal(await stop(serve), 0);
  }
});

Deno.test("kill -9 and restart with the same --db: every acknowledged message is kept; chat log exports them", async () => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/lab.db`;
  try {
    const first = await startServe("--quiet", "--db", db, "--rate", "1000", "--burst", "1000");
    const ada = await TestClient.join(at(first.port), "ada", { room: "team1" });
    const acked = [];
    const tricky = ["plain", 'quotes " and \\ backslash', "ünïcödé ✓ 😀", "tab\tand\nnewline"];
    for (let i = 0; i < 200; i++) {
      await ada.send({ type: "msg", text: `${i}: ${tricky[i % tricky.length]}`, ref: i });
    }
    await ada.waitForMessages(200);
    acked.push(...ada.messages());
    first.serve.child.kill("SIGKILL");
    assert.equal(await first.serve.exit(), 137);
    await ada.close();

    const second = await startServe("--quiet", "--db", db);
    try {
      const bob = await TestClient.join(at(second.port), "bob", { room: "team1", history: 1000 });
      await bob.waitForMessages(200);
      const fields = (m: { seq: number; id: number; ts: number; from: string; text: string }) => ({
        seq: m.seq,
        id: m.id,
        ts: m.ts,
        from: m.from,
        text: m.text,
      });
      assert.deepEqual(bob.messages().map(fields), acked.map(fields));
      await bob.close();

      const log = new Chat(["log", "--db", db, "--format", "jsonl"]);
      assert.equal(await log.exit(), 0);
      const exported = log.stdout.map((line) => JSON.parse(line));
      assert.deepEqual(exported, acked.map((m) => ({ room: "team1", ...fields(m) })));

      const text = new Chat(["log", "--db", db, "--room", "team1", "--since", "1h"]);
      assert.equal(await text.exit(), 0);
      assert.equal(text.stdout.length, 200);
      assert.match(
        text.stdout[1],
        /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[team1\] ada: 1: quotes " and \\ backslash$/,
      );
      assert.match(text.stdout[3], /tab and\uFFFDnewline$/);

      const none = new Chat(["log", "--db", db, "--room", "elsewhere"]);
      assert.equal(await none.exit(), 0);
      assert.deepEqual(none.stdout, []);
    } finally {
      assert.equal(await stop(second.serve), 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat log: clear errors for a missing database and bad options", async () => {
  const missing = new Chat(["log", "--db", "/nonexistent/chat.db"]);
  assert.equal(await missing.exit(), 3);
  assert.match(missing.stderr, /no database at \/nonexistent\/chat.db/);
  for (
    const args of [["log"], ["log", "--db", "x", "--format", "xml"], [
      "log",
      "--db",
      "x",
      "--since",
      "soon",
    ]]
  ) {
    const bad = new Chat(args);
    assert.equal(await bad.exit(), 2, args.join(" "));
  }
});

Deno.test("a connection cut again during the replay of what was missed still ends with every message once", async () => {
  const { serve, port } = await startServe(
    "--quiet",
    ...["--rate", "1000", "--burst", "1000", "--rate-bytes", "1073741824"],
  );
  const proxy = new Proxy(port);
  const sender = await TestClient.join(at(port), "sender");
  try {
    const ada = new Chat(["join", `127.0.0.1:${proxy.port}`, "--name", "ada", "--json"]);
    await ada.waitFor(/"type":"welcome"/);
    proxy.hold();
    proxy.cut();
    await ada.waitForStderr(/reconnecting in/);
    const text = (i: number) => `missed ${i} `.padEnd(1000, "x");
    for (let i = 1; i <= 300; i++) await sender.send({ type: "msg", text: text(i) });
    await sender.waitForMessages(300);
    proxy.cutAfter(20_000); // the next connection drops a few messages into the replay
    proxy.release();
    await ada.waitFor(/"text":"missed 300 /, 30_000);
    assert.ok(proxy.connections >= 3, "it was cut during the replay");
    const texts = ada.stdout.map((l) => JSON.parse(l)).filter((f) =>
      f.type === "msg" && f.from === "sender"
    ).map((f) => f.text);
    assert.deepEqual(texts, Array.from({ length: 300 }, (_, i) => text(i + 1)));
    assert.equal(await ada.exit(), 0);
  } finally {
    await sender.close();
    await proxy.close();
    assert.equal(await stop(serve), 0);
  }
});

/**
 * `/me`: an action, shown as `* ada waves` to everyone, kept and replayed
 * like any message, and told apart in JSON by its `action` field.
 */
import assert from "node:assert/strict";
import { PlainClient, TestClient, withServer } from "./helpers.ts";
import { Chat, startServe, stop } from "./subprocess.ts";

Deno.test("/me from a plain-text client reaches protocol and plain-text clients as an action", async () => {
  await withServer({}, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    const nc = await PlainClient.connect(server);
    const other = await PlainClient.connect(server);
    clients.push(ada, nc, other);
    await nc.waitFor((l) => l.startsWith("* Welcome"), "banner");
    await other.waitFor((l) => l.startsWith("* Welcome"), "banner");
    await nc.send("/nick carol\n/me waves\n");
    const frame = await ada.frames.waitFor((f) => f.type === "msg", "the action");
    assert.deepEqual(
      frame.type === "msg" && [frame.from, frame.text, frame.action],
      ["carol", "waves", true],
    );
    await other.waitFor((l) => /^\[\d\d:\d\d\] \* carol waves$/.test(l), "* carol waves");
    await ada.send({ type: "msg", text: "nods", action: true });
    await nc.waitFor((l) => /^\[\d\d:\d\d\] \* ada nods$/.test(l), "* ada nods");
  });
});

Deno.test("an action is kept with --db, shown by chat log, and replayed as one to chat join --json", async () => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/chat.db`;
  try {
    const { serve, port } = await startServe("--db", db, "--quiet");
    try {
      const ada = new Chat(["join", `127.0.0.1:${port}`, "--name", "ada"]);
      await ada.waitFor(/connected/);
      await ada.write("hello\n");
      assert.equal(await ada.exit(), 0); // piped lines are messages, not commands
      const raw = await TestClient.join({ addr: { port } } as never, "bob");
      await raw.send({ type: "msg", text: "waves at everyone", action: true, ref: 1 });
      await raw.frames.waitFor((f) => f.type === "msg" && f.ref === 1, "stored");
      await raw.close();
      const reader = new Chat(["join", `127.0.0.1:${port}`, "--json", "--history", "5"]);
      await reader.closeStdin();
      assert.equal(await reader.exit(), 0);
      const replayed = reader.stdout.map((l) => JSON.parse(l)).filter((f) => f.type === "msg");
      assert.deepEqual(replayed.map((f) => [f.text, f.action ?? false]), [
        ["hello", false],
        ["waves at everyone", true],
      ]);
    } finally {
      assert.equal(await stop(serve), 0);
    }
    const log = new Chat(["log", "--db", db]);
    assert.equal(await log.exit(), 0);
    assert.match(log.stdout.join("\n"), /\[lobby\] \* bob waves at everyone$/m);
    assert.match(log.stdout.join("\n"), /\[lobby\] ada: hello$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat join --send: exits 0 once the server accepted the message, 8 with the reason when refused", async () => {
  const { serve, port } = await startServe("--quiet");
  try {
    const watcher = new Chat(["join", `127.0.0.1:${port}`, "--name", "watcher", "--json"]);
    await watcher.waitFor(/"type":"welcome"/);
    const ci = new Chat([
      "join",
      `127.0.0.1:${port}`,
      "--name",
      "ci",
      "--room",
      "lobby",
      "--send",
      "build green",
      "--json",
    ]);
    assert.equal(await ci.exit(), 0);
    const accepted = JSON.parse(ci.stdout.find((l) => l.includes('"type":"msg"'))!);
    assert.deepEqual([accepted.from, accepted.text], ["ci", "build green"]);
    await watcher.waitFor(/"text":"build green"/);

    const quiet = new Chat(["join", `127.0.0.1:${port}`, "--send", "plain text mode"]);
    assert.equal(await quiet.exit(), 0);
    assert.deepEqual(quiet.stdout, [], "nothing printed without --json");

    const empty = new Chat(["join", `127.0.0.1:${port}`, "--send", "   "]);
    assert.equal(await empty.exit(), 8);
    assert.match(empty.stderr, /the server refused the message: a message cannot be empty/);
    assert.equal(await watcher.exit(), 0);
  } finally {
    assert.equal(await stop(serve), 0);
  }
});

/**
 * "Nothing missing, nothing doubled" at the edges: replays larger than the
 * outbound queue, a hello that arrives late, a numbering that restarted, a
 * name taken over, jitter against the rate limit, a locked database.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { deadline, PlainClient, Proxy, TestClient, withServer } from "./helpers.ts";
import { Chat, startServe, stop } from "./subprocess.ts";
import { LineDecoder, parseServerFrame } from "../protocol.ts";

const fast = { rate: 100_000, burst: 100_000, rateBytes: 1024 ** 3 };

Deno.test("a resume after 300 missed 1 KB messages replays all 300, with the default queue limit", async () => {
  await withServer(fast, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    const bob = await TestClient.join(server, "bob");
    clients.push(ada);
    const token = bob.welcome!.token;
    const seen = bob.welcome!.seq;
    await bob.close();
    await ada.waitForEvent("leave", "bob");
    const kb = "x".repeat(1000);
    for (let i = 1; i <= 300; i++) await ada.send({ type: "msg", text: `${i} ${kb}` });
    await ada.waitForMessages(300);

    const back = await TestClient.join(server, "bob", {
      since: seen,
      epoch: bob.welcome!.epoch,
      token,
    });
    clients.push(back);
    await back.waitForMessages(300);
    const history = back.frames.received.find((f) => f.type === "history");
    assert.equal(history?.type === "history" && `${history.count}/${history.gone}`, "300/0");
    assert.deepEqual(
      back.messages().map((m) => Number(m.text.split(" ")[0])),
      Array.from({ length: 300 }, (_, i) => i + 1),
    );
    assert.ok(!back.frames.received.some((f) => f.type === "error"), "no slow_consumer");
    // Live messages after the replay follow it, in order.
    await ada.send({ type: "msg", text: "live" });
    const live = await back.frames.waitFor((f) => f.type === "msg" && !f.replay, "live message");
    assert.equal(live.type === "msg" && live.seq, back.messages()[299].seq + 1);
  });
});

Deno.test("a history of 45 messages of 8 KB arrives whole, and live messages wait behind it", async () => {
  await withServer(fast, async (server, clients) => {
    const ada = await TestClient.join(server, "ada", { room: "big" });
    clients.push(ada);
    const eight = "y".repeat(8000);
    for (let i = 1; i <= 60; i++) await ada.send({ type: "msg", text: `${i} ${eight}` });
    await ada.waitForMessages(60);
    // Joins and, in the same breath, more messages come: they must follow the replay.
    const late = await TestClient.join(server, "late", { room: "big", history: 45 });
    clients.push(late);
    for (let i = 61; i <= 70; i++) await ada.send({ type: "msg", text: `${i} live` });
    await late.waitForMessages(55);
    assert.deepEqual(
      late.messages().map((m) => [Number(m.text.split(" ")[0]), m.replay ?? false]),
      Array.from({ length: 55 }, (_, i) => [16 + i, i < 45]),
    );
  });
});

Deno.test("chat join --history 50 in a room of 8 KB messages shows all 50", async () => {
  const { serve, port } = await startServe(
    "--rate",
    "1000",
    "--burst",
    "1000",
    "--rate-bytes",
    "100000000",
    "--quiet",
  );
  try {
    const writer = new Chat(["join", `127.0.0.1:${port}`, "--name", "writer", "--room", "lab"]);
    const eight = "z".repeat(8000);
    await writer.write(Array.from({ length: 50 }, (_, i) => `${i + 1} ${eight}`).join("\n") + "\n");
    assert.equal(await writer.exit(), 0);
    const reader = new Chat(["join", `127.0.0.1:${port}`, "--room", "lab", "--json"]);
    await reader.closeStdin(); // read the history, then leave
    assert.equal(await reader.exit(), 0);
    const messages = reader.stdout.map((l) => JSON.parse(l)).filter((f) => f.type === "msg");
    assert.deepEqual(
      messages.map((m) => Number(m.text.split(" ")[0])),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
  } finally {
    assert.equal(await stop(serve), 0);
  }
});

/** Reads raw lines from a socket: text and frames alike. */
async function readLines(conn: Deno.Conn, until: (lines: string[]) => boolean): Promise<string[]> {
  const lines: string[] = [];
  const decoder = new LineDecoder();
  const reader = conn.readable.getReader();
  try {
    while (!until(lines)) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const line of decoder.push(value)) {
        lines.push(line instanceof Uint8Array ? new TextDecoder().decode(line) : line.message);
      }
    }
  } finally {
    reader.releaseLock();
  }
  return lines;
}

Deno.test("a hello after the plain-text wait still joins, and is never relayed as text", async () => {
  await withServer({}, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    clients.push(ada);
    const slow = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    clients.push({ close: () => Promise.resolve(slow.close()) });
    // Wait to be taken for a plain-text client: the banner comes.
    await deadline(
      readLines(slow, (l) => l.some((x) => x.startsWith("* Welcome"))),
      5000,
      "banner",
    );
    const guest = await ada.frames.waitFor(
      (f) => f.type === "event" && f.event === "join" && f.name.startsWith("guest"),
      "the plain-text guest's join",
    );
    const hello = '{"type":"hello","version":1,"name":"slowpoke","token":"secret-token"}\n';
    await slow.write(new TextEncoder().encode(hello));
    const lines = await deadline(
      readLines(slow, (l) => l.some((x) => x.includes('"type":"welcome"'))),
      5000,
      "welcome after a late hello",
    );
    const welcomeLine = lines.find((x) => x.includes('"type":"welcome"'))!;
    const welcome = parseServerFrame(new TextEncoder().encode(welcomeLine));
    assert.equal(welcome.type === "welcome" && welcome.name, "slowpoke");
    await ada.waitForEvent("join", "slowpoke");
    const left = await ada.waitForEvent("leave", guest.type === "event" ? guest.name : "");
    assert.equal(left.type === "event" && left.reason, "switched to the chat protocol");
    assert.ok(
      !ada.frames.received.some((f) => f.type === "msg" && f.text.includes("secret-token")),
      "the hello, token and all, was not relayed",
    );
  });
});

Deno.test("a plain-text line that is a JSON object is refused, not relayed", async () => {
  await withServer({}, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    const nc = await PlainClient.connect(server);
    clients.push(ada, nc);
    await nc.waitFor((l) => l.startsWith("* Welcome"), "banner");
    await nc.send('{"type":"msg","text":"smuggled"}\n {"as":"text"}\n');
    await nc.waitFor((l) => l.includes("looks like a protocol frame"), "refusal");
    const relayed = await ada.frames.waitFor((f) => f.type === "msg", "the spaced line");
    assert.equal(relayed.type === "msg" && relayed.text, ' {"as":"text"}');
  });
});

Deno.test("chat join over a network slow enough to be taken for plain text still chats", async () => {
  const { serve, port } = await startServe("--quiet");
  const proxy = new Proxy(port, { slowStart: true });
  try {
    const ada = new Chat(["join", `127.0.0.1:${proxy.port}`, "--name", "ada", "--json"]);
    await ada.waitFor(/"type":"welcome"/);
    await ada.write("through a slow link\n");
    assert.equal(await ada.exit(), 0);
    assert.ok(ada.stdout.every((line) => line.startsWith("{")), "no text lines in --json output");
    assert.ok(ada.stdout.some((line) => line.includes('"text":"through a slow link"')));
  } finally {
    await proxy.close();
    assert.equal(await stop(serve), 0);
  }
});

Deno.test("after a restart without --db, a resume is told the numbering restarted", async () => {
  let before: { seq: number; epoch: string; port: number };
  await withServer(fast, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    clients.push(ada);
    for (let i = 1; i <= 5; i++) await ada.send({ type: "msg", text: `old ${i}` });
    await ada.waitForMessages(5);
    before = { seq: 5, epoch: ada.welcome!.epoch, port: server.addr.port };
  });
  await withServer(fast, async (server, clients) => {
    const bob = await TestClient.join(server, "bob");
    clients.push(bob);
    for (let i = 1; i <= 8; i++) await bob.send({ type: "msg", text: `new ${i}` });
    await bob.waitForMessages(8);
    // The same seq exists in the new numbering, but it names another message.
    const ada = await TestClient.join(server, "ada", {
      since: before.seq,
      epoch: before.epoch,
      history: 3,
    });
    clients.push(ada);
    const history = await ada.frames.waitFor((f) => f.type === "history", "history");
    assert.ok(history.type === "history");
    assert.equal(history.restarted, true);
    assert.notEqual(history.epoch, before.epoch);
    assert.equal(history.epoch, ada.welcome!.epoch);
    await ada.waitForMessages(3);
    assert.deepEqual(ada.messages().map((m) => m.text), ["new 6", "new 7", "new 8"]);

    // A since beyond the room's seq, without an epoch, is a restart too.
    const cy = await TestClient.join(server, "cy", { since: 500, history: 1 });
    clients.push(cy);
    const cyHistory = await cy.frames.waitFor((f) => f.type === "history", "history");
    assert.equal(cyHistory.type === "history" && cyHistory.restarted, true);
    await cy.waitForMessages(1);
  });
});

Deno.test("retention is exact: a resume from long ago gets the last --retention messages", async () => {
  await withServer({ ...fast, retention: 5 }, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    clients.push(ada);
    for (let i = 1; i <= 9; i++) await ada.send({ type: "msg", text: `m${i}` });
    await ada.waitForMessages(9);
    const old = await TestClient.join(server, "old", { since: 0, epoch: ada.welcome!.epoch });
    clients.push(old);
    const history = await old.frames.waitFor((f) => f.type === "history", "history");
    assert.equal(history.type === "history" && `${history.count}/${history.gone}`, "5/4");
    await old.waitForMessages(5);
    assert.deepEqual(old.messages().map((m) => m.text), ["m5", "m6", "m7", "m8", "m9"]);
  });
});

Deno.test("a takeover tells the old connection 'replaced' and replays the private messages it was sent", async () => {
  await withServer({}, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    const stale = await TestClient.join(server, "bob");
    clients.push(ada, stale);
    await ada.send({ type: "dm", to: "bob", text: "seen before the drop", ref: 1 });
    const seen = await stale.frames.waitFor((f) => f.type === "dm", "first dm");
    // Bob's Wi-Fi goes; the server does not know yet. Ada's next DM goes to the dead connection.
    await ada.send({ type: "dm", to: "bob", text: "sent into the void", ref: 2 });
    await ada.frames.waitFor((f) => f.type === "dm" && f.ref === 2, "ada's confirmation");

    const fresh = await TestClient.join(server, "bob", {
      token: stale.welcome!.token,
      dmSince: seen.type === "dm" ? seen.id : 0,
    });
    clients.push(fresh);
    const replayed = await fresh.frames.waitFor((f) => f.type === "dm", "replayed dm");
    assert.deepEqual(
      replayed.type === "dm" && [replayed.from, replayed.text, replayed.replay],
      ["ada", "sent into the void", true],
    );
    assert.equal(fresh.frames.received.filter((f) => f.type === "dm").length, 1, "once");
    const last = await stale.frames.waitFor((f) => f.type === "error", "error on the old one");
    assert.equal(last.type === "error" && last.code, "replaced");
    await stale.frames.waitForEnd();
  });
});

Deno.test("refusals of join, nick, topic and malformed frames carry the frame's ref", async () => {
  await withServer({ maxRooms: 2 }, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    const bob = await TestClient.join(server, "bob");
    clients.push(ada, bob);
    await ada.send({ type: "join", room: "no spaces", ref: 11 });
    await ada.send({ type: "join", room: "second", ref: 12 });
    await ada.send({ type: "join", room: "third", ref: 13 });
    await ada.send({ type: "nick", name: "bob", ref: 14 });
    await ada.send({ type: "nick", name: "a b", ref: 15 });
    await ada.send({ type: "msg", text: 42, ref: 17 });
    await ada.send({ type: "launch", ref: 18 });
    await ada.send({ type: "topic", text: "over the limit of five changes at once", ref: 19 });
    await bob.send({ type: "topic", text: "t".repeat(300), ref: 16 });
    await ada.frames.waitFor(
      () => ada.frames.received.filter((f) => f.type === "error").length === 7,
      "seven refusals",
    );
    const errors = ada.frames.received.flatMap((f) => f.type === "error" ? [[f.code, f.ref]] : []);
    assert.deepEqual(errors, [
      ["bad_room", 11],
      ["too_many_rooms", 13],
      ["name_taken", 14],
      ["bad_name", 15],
      ["bad_frame", 17],
      ["bad_frame", 18],
      ["rate_limited", 19],
    ]);
    const topic = await bob.waitForError("bad_frame");
    assert.equal(topic.type === "error" && topic.ref, 16);
  });
});

Deno.test("with --db, a locked database refuses promptly and never stalls anyone else", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/chat.db`;
  try {
    await withServer({ db: path }, async (server, clients) => {
      const ada = await TestClient.join(server, "ada");
      const bob = await TestClient.join(server, "bob", { room: "elsewhere" });
      clients.push(ada, bob);
      await ada.send({ type: "msg", text: "stored", ref: 1 });
      await ada.frames.waitFor((f) => f.type === "msg" && f.ref === 1, "first message stored");

      const locker = new DatabaseSync(path);
      locker.exec("BEGIN IMMEDIATE"); // another process holds the write lock
      try {
        await ada.send({ type: "msg", text: "while locked", ref: 2 });
        await bob.send({ type: "ping", data: "still there?" });
        const first = await deadline(
          Promise.race([
            ada.waitForError("storage_failed"),
            bob.frames.waitFor((f) => f.type === "pong", "pong"),
          ]),
          2000,
          "a prompt answer",
        );
        assert.equal(first.type, "pong", "bob is answered while ada's message waits for the lock");
        const refused = await deadline(ada.waitForError("storage_failed"), 2000, "storage_failed");
        assert.equal(refused.type === "error" && refused.ref, 2);
      } finally {
        locker.exec("ROLLBACK");
        locker.close();
      }
      await ada.send({ type: "msg", text: "after the lock", ref: 3 });
      await ada.frames.waitFor((f) => f.type === "msg" && f.ref === 3, "stored again");
      assert.deepEqual(ada.messages().map((m) => [m.seq, m.text]), [
        [1, "stored"],
        [2, "after the lock"],
      ]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a line over the limit is answered when it ends, with the ref it ends with", async () => {
  await withServer({ maxFrameBytes: 1024 }, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    clients.push(ada);
    const line = `{"type":"msg","text":"${"y".repeat(5000)}","ref":77}\n`;
    // In pieces, as a slow network would deliver it.
    for (let at = 0; at < line.length; at += 700) await ada.sendRaw(line.slice(at, at + 700));
    const error = await ada.waitForError("frame_too_large");
    assert.equal(error.type === "error" && error.ref, 77);
    await ada.send({ type: "msg", text: "still fine", ref: 78 });
    await ada.frames.waitFor((f) => f.type === "msg" && f.ref === 78, "the next message");
  });
});

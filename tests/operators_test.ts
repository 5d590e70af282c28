/**
 * Operators: the token, and what an operator may do that nobody else may
 * (kick, mute, ban, unban, another room's topic, the message of the day),
 * each told to the rooms concerned.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { PlainClient, TestClient, withServer } from "./helpers.ts";
import { Chat, startServeWith, stop } from "./subprocess.ts";
import type { ChatServer } from "../server.ts";

const TOKEN = "op-token-for-tests";

/** A protocol client from 127.0.0.2, so that a ban on its address spares 127.0.0.1. */
async function joinFrom127002(server: ChatServer, name: string): Promise<TestClient> {
  const socket = net.connect({
    host: "127.0.0.1",
    port: server.addr.port,
    localAddress: "127.0.0.2",
  });
  await new Promise((resolve) => socket.once("connect", resolve));
  // Hand the socket to a TestClient through a loopback pair of web streams.
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      socket.on("data", (chunk: Uint8Array) => controller.enqueue(new Uint8Array(chunk)));
      socket.on("close", () => {
        try {
          controller.close();
        } catch {
          // Closed already.
        }
      });
      socket.on("error", () => {});
    },
  });
  const conn = {
    readable,
    write: (bytes: Uint8Array) =>
      new Promise<number>((resolve) => socket.write(bytes, () => resolve(bytes.length))),
    close: () => socket.destroy(),
  } as unknown as Deno.Conn;
  const client = TestClient.fromConn(conn);
  await client.send({ type: "hello", version: 1, name });
  const answer = await client.frames.waitFor(
    (f) => f.type === "welcome" || f.type === "error",
    `welcome of ${name}`,
  );
  if (answer.type === "welcome") client.welcome = answer;
  return client;
}

Deno.test("operators: the token makes one, marked in welcome and who; others are refused", async () => {
  await withServer({ opToken: TOKEN }, async (server, clients) => {
    const ada = await TestClient.join(server, "ada", { op: TOKEN });
    const bob = await TestClient.join(server, "bob");
    clients.push(ada, bob);
    assert.equal(ada.welcome!.op, true);
    assert.deepEqual(bob.welcome!.ops, ["ada"]);
    await bob.send({ type: "kick", name: "ada", ref: 1 });
    const refused = await bob.waitForError("not_operator");
    assert.equal(refused.type === "error" && refused.ref, 1);
    const cy = await TestClient.join(server, "cy");
    clients.push(cy);
    await cy.send({ type: "op", token: TOKEN });
    await ada.waitForEvent("op", "cy");
    await bob.send({ type: "who" });
    const who = await bob.frames.waitFor((f) => f.type === "who", "who");
    assert.deepEqual(who.type === "who" && who.ops, ["ada", "cy"]);

    // A wrong token counts as a wrong guess: this address must now wait, even with the right one.
    await bob.send({ type: "op", token: "guess", ref: 2 });
    const wrong = await bob.waitForError("auth_failed");
    assert.ok(wrong.type === "error" && wrong.retryMs! >= 1000);
    await bob.send({ type: "op", token: TOKEN, ref: 3 });
    const waiting = await bob.frames.waitFor((f) => f.type === "error" && f.ref === 3, "refusal");
    assert.match(waiting.type === "error" ? waiting.message : "", /too many wrong/);
  });
});

Deno.test("operators: kick removes someone at once, told to the room; the name is free", async () => {
  await withServer({ opToken: TOKEN }, async (server, clients) => {
    const ada = await TestClient.join(server, "ada", { op: TOKEN });
    const eve = await TestClient.join(server, "eve");
    const bob = await TestClient.join(server, "bob");
    clients.push(ada, eve, bob);
    await ada.send({ type: "kick", name: "eve", reason: "spamming" });
    const kick = await bob.frames.waitFor((f) => f.type === "event" && f.event === "kick", "kick");
    assert.deepEqual(
      kick.type === "event" && [kick.name, kick.by, kick.reason],
      ["eve", "ada", "spamming"],
    );
    const told = await eve.waitForError("kicked");
    assert.match(told.type === "error" ? told.message : "", /removed by ada: spamming/);
    await eve.frames.waitForEnd();
    const again = await TestClient.join(server, "eve");
    clients.push(again);
    assert.ok(!bob.frames.received.some((f) => f.type === "event" && f.event === "leave"));
  });
});

Deno.test("operators: mute silences a name until unbanned; the offender is told for how long", async () => {
  await withServer({ opToken: TOKEN }, async (server, clients) => {
    const ada = await TestClient.join(server, "ada", { op: TOKEN });
    const eve = await TestClient.join(server, "eve");
    clients.push(ada, eve);
    await ada.send({ type: "mute", name: "eve", minutes: 5 });
    await eve.frames.waitFor((f) => f.type === "event" && f.event === "mute", "mute event");
    await eve.send({ type: "msg", text: "can I talk?", ref: 3 });
    const muted = await eve.waitForError("muted");
    assert.ok(muted.type === "error" && muted.ref === 3 && muted.retryMs! > 4 * 60_000);
    await eve.send({ type: "dm", to: "ada", text: "psst", ref: 4 });
    await eve.frames.waitFor((f) => f.type === "error" && f.ref === 4, "the dm refused too");
    await ada.send({ type: "unban", name: "eve" });
    await eve.frames.waitFor((f) => f.type === "event" && f.event === "unban", "unban event");
    await eve.send({ type: "msg", text: "thanks", ref: 5 });
    await ada.frames.waitFor((f) => f.type === "msg" && f.text === "thanks", "eve speaks again");
  });
});

Deno.test("operators: a ban keeps the name and its address out, and lasts across a restart with --db", async () => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/chat.db`;
  try {
    await withServer({ opToken: TOKEN, db }, async (server, clients) => {
      const ada = await TestClient.join(server, "ada", { op: TOKEN });
      const eve = await joinFrom127002(server, "eve");
      clients.push(ada, eve);
      await ada.send({ type: "ban", name: "eve", reason: "abuse" });
      const banned = await eve.waitForError("banned");
      assert.match(banned.type === "error" ? banned.message : "", /banned by ada .*: abuse/);
      await eve.frames.waitForEnd();
      const disguised = await joinFrom127002(server, "notEve");
      clients.push(disguised);
      assert.equal(disguised.welcome, undefined, "the address is banned too");
      assert.ok(disguised.frames.received.some((f) => f.type === "error" && f.code === "banned"));
      const bob = await TestClient.join(server, "bob"); // 127.0.0.1 is not banned
      clients.push(bob);
    });
    await withServer({ opToken: TOKEN, db }, async (server, clients) => {
      const again = await joinFrom127002(server, "eve");
      clients.push(again);
      assert.ok(again.frames.received.some((f) => f.type === "error" && f.code === "banned"));
      const ada = await TestClient.join(server, "ada", { op: TOKEN });
      clients.push(ada);
      await ada.send({ type: "unban", name: "eve" });
      await ada.frames.waitFor((f) => f.type === "event" && f.event === "unban", "unban");
      const back = await joinFrom127002(server, "eve");
      clients.push(back);
      assert.equal(back.welcome?.name, "eve");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("operators: another room's topic and the message of the day", async () => {
  await withServer({ opToken: TOKEN }, async (server, clients) => {
    const bob = await TestClient.join(server, "bob", { room: "team2" });
    const ada = await TestClient.join(server, "ada", { op: TOKEN });
    clients.push(bob, ada);
    await bob.send({ type: "topic", text: "not mine", room: "lobby", ref: 1 });
    await bob.waitForError("not_operator");
    await ada.send({ type: "topic", text: "Lab 9 in here", room: "team2" });
    const topic = await bob.frames.waitFor(
      (f) => f.type === "event" && f.event === "topic",
      "topic",
    );
    assert.equal(topic.type === "event" && topic.topic, "Lab 9 in here");
    await ada.send({ type: "motd", text: "Quiz at 3" });
    await ada.frames.waitFor((f) => f.type === "event" && f.event === "motd", "motd event");
    const cy = await TestClient.join(server, "cy");
    clients.push(cy);
    assert.equal(cy.welcome!.motd, "Quiz at 3");
    const nc = await PlainClient.connect(server);
    clients.push(nc);
    await nc.waitFor((l) => l === "* Message of the day: Quiz at 3", "motd in the banner");
  });
});

Deno.test("operators: plain-text clients have the same commands", async () => {
  await withServer({ opToken: TOKEN }, async (server, clients) => {
    const eve = await TestClient.join(server, "eve");
    clients.push(eve);
    const nc = await PlainClient.connect(server);
    clients.push(nc);
    await nc.waitFor((l) => l.startsWith("* Welcome"), "banner");
    await nc.send(`/kick eve\n/op ${TOKEN}\n/kick eve too loud\n`);
    await nc.waitFor((l) => l.includes("is for operators"), "refused before /op");
    await nc.waitFor((l) => /is now an operator/.test(l), "op");
    await nc.waitFor((l) => /removed eve \(too loud\)/.test(l), "kick line");
    await eve.waitForError("kicked");
  });
});

Deno.test("operators: chat serve prints a token; chat join --op-token-env uses one given with --op-token-env", async () => {
  const env = { OP_TOKEN: "from-the-environment" };
  const { serve, port } = await startServeWith(env, "--op-token-env", "OP_TOKEN", "--quiet");
  try {
    assert.ok(!serve.stdout.join("\n").includes("Operator token"), "a given token is not printed");
    const ada = new Chat(
      ["join", `127.0.0.1:${port}`, "--name", "ada", "--op-token-env", "OP_TOKEN", "--json"],
      env,
    );
    const welcome = JSON.parse(await ada.waitFor(/"type":"welcome"/));
    assert.equal(welcome.op, true);
    assert.equal(await ada.exit(), 0);
  } finally {
    assert.equal(await stop(serve), 0);
  }
  const printed = await startServeWith({}, "--quiet");
  try {
    const line = await printed.serve.waitFor(/Operator token/);
    assert.match(line, /"\/op [0-9a-f]{16}"/);
  } finally {
    assert.equal(await stop(printed.serve), 0);
  }
});

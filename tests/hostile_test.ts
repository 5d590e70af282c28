/**
 * Hostile and broken clients, on real sockets: whatever they do, the honest
 * clients on another address keep chatting. The attackers connect from
 * 127.0.0.2 (through node:net, which can bind a local address), the honest
 * clients from 127.0.0.1.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { deadline, startServer, TestClient } from "./helpers.ts";
import { Chat, startServe } from "./subprocess.ts";
import type { ChatServer, ServeOptions } from "../server.ts";

async function withServer(
  options: ServeOptions,
  body: (server: ChatServer, clients: TestClient[]) => Promise<void>,
): Promise<void> {
  const server = startServer(options);
  const clients: TestClient[] = [];
  try {
    await body(server, clients);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.shutdown();
  }
}

/** A raw connection from 127.0.0.2; resolves once connected, with what it receives. */
function attacker(port: number): Promise<{ socket: net.Socket; received: () => string }> {
  return new Promise((resolve, reject) => {
    let text = "";
    const socket = net.connect({ host: "127.0.0.1", port, localAddress: "127.0.0.2" });
    socket.on("data", (chunk) => text += chunk.toString());
    socket.on("error", () => {}); // a refused or reset attacker is the point
    socket.once("connect", () => resolve({ socket, received: () => text }));
    socket.once("error", reject);
  });
}

/** Ada and bob, on 127.0.0.1, can still exchange a message. */
async function stillChatting(ada: TestClient, bob: TestClient, text: string): Promise<void> {
  await ada.send({ type: "msg", text });
  await bob.frames.waitFor((f) => f.type === "msg" && f.text === text, `bob gets "${text}"`);
}

Deno.test("1,000 connections from one address cannot lock the class out", async () => {
  await withServer({ maxPerAddress: 16 }, async (server, clients) => {
    const attackers = [];
    for (let i = 0; i < 1000; i++) attackers.push(await attacker(server.addr.port));
    const closed = (a: { socket: net.Socket }) =>
      new Promise<void>((resolve) =>
        a.socket.closed || a.socket.destroyed ? resolve() : a.socket.once("close", () => resolve())
      );
    // All but 16 are turned away, each told why.
    const refused = attackers.slice(16);
    await deadline(Promise.all(refused.map(closed)), 15_000, "984 refusals");
    assert.ok(refused.every((a) => a.received().includes('"code":"too_many_connections"')));

    const ada = await TestClient.join(server, "ada");
    const bob = await TestClient.join(server, "bob");
    clients.push(ada, bob);
    assert.equal(server.connections, 16 + 2);
    await stillChatting(ada, bob, "we are in");
    for (const a of attackers) a.socket.destroy();
  });
});

Deno.test("a half-finished hello or a slowloris line is closed after the handshake timeout", async () => {
  await withServer(
    { maxPerAddress: 16, handshakeTimeoutMs: 1000, livenessCheckMs: 100 },
    async (server, clients) => {
      const ada = await TestClient.join(server, "ada");
      const bob = await TestClient.join(server, "bob");
      clients.push(ada, bob);
      const half = await attacker(server.addr.port);
      half.socket.write('{"type":"hello","vers');
      const loris = await attacker(server.addr.port);
      let sent = 0;
      const drip = setInterval(() => loris.socket.write(String(sent++ % 10)), 100);
      try {
        const ended = (a: { socket: net.Socket }) =>
          new Promise<void>((resolve) => a.socket.once("close", () => resolve()));
        await deadline(Promise.all([ended(half), ended(loris)]), 10_000, "both closed");
        assert.match(half.received(), /"code":"timeout"/);
        assert.match(loris.received(), /"code":"timeout"/);
        await stillChatting(ada, bob, "still here");
      } finally {
        clearInterval(drip);
        half.socket.destroy();
        loris.socket.destroy();
      }
    },
  );
});

Deno.test("a protocol client that goes quiet is pinged, and dropped if it does not answer", async () => {
  await withServer({ idleTimeoutMs: 1000, livenessCheckMs: 100 }, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    const mute = await TestClient.join(server, "mute");
    const polite = await TestClient.join(server, "polite");
    clients.push(ada, mute, polite);
    // ada and polite answer the server's pings, as chat join does; mute never does.
    const answering = [ada, polite].map(answerPings);
    const left = await ada.waitForEvent("leave", "mute");
    assert.equal(left.type === "event" && left.reason, "timed out");
    assert.ok(mute.frames.received.some((f) => f.type === "ping"), "it was pinged first");
    await mute.frames.waitFor((f) => f.type === "error" && f.code === "timeout", "told why");
    await polite.send({ type: "msg", text: "I answered" });
    await ada.frames.waitFor((f) => f.type === "msg" && f.text === "I answered", "polite is in");
    await Promise.all([ada.close(), polite.close()]);
    await Promise.all(answering);
  });
});

/** Answers every ping the server sends, until the connection ends. */
async function answerPings(client: TestClient): Promise<void> {
  for (let seen = 0;; seen++) {
    try {
      await client.frames.waitFor(
        () => client.frames.received.filter((f) => f.type === "ping").length > seen,
        "a ping",
        30_000,
      );
    } catch {
      return; // the connection ended
    }
    await client.send({ type: "pong", data: "idle" }).catch(() => {});
  }
}

Deno.test("chat join notices a server that stopped answering, and comes back when it does", async () => {
  if (Deno.build.os === "windows") return; // SIGSTOP
  const { serve, port } = await startServe("--quiet");
  const ada = new Chat([
    "join",
    `127.0.0.1:${port}`,
    "--name",
    "ada",
    "--idle-timeout",
    "2",
  ]);
  try {
    await ada.waitFor(/connected to chat as ada/);
    serve.child.kill("SIGSTOP"); // frozen: connections stay open, nothing answers
    await ada.waitForStderr(/has not answered for \d+ s; reconnecting/);
    serve.child.kill("SIGCONT");
    await ada.waitForStderr(/\* reconnected/, 30_000);
    await ada.write("back again\n");
    assert.equal(await ada.exit(), 0);
  } finally {
    serve.child.kill("SIGCONT");
    serve.child.kill("SIGTERM");
    await serve.exit();
  }
});

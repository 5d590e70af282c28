/**
 * Several `chat serve` nodes on one real `redis-server` (Debian's package,
 * started here on a free loopback port) act as one chat.
 */

import assert from "node:assert/strict";
import type { ChatServer } from "../server.ts";
import type { ServerFrame } from "../protocol.ts";
import { deadline, TestClient } from "./helpers.ts";
import { Chat, startServeWith } from "./subprocess.ts";
import { makeCertificate } from "./certificate.ts";

/** A redis-server of the test's own, with an append-only file so a restart keeps its data. */
class RedisServer {
  child!: Deno.ChildProcess;
  readonly port: number;
  readonly dir = Deno.makeTempDirSync({ prefix: "chat-redis-" });
  /** More redis-server options, such as a password. */
  extra: string[] = [];

  constructor() {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = probe.addr.port;
    probe.close();
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.child = new Deno.Command("redis-server", {
      args: [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        this.dir,
        ...this.extra,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    // Ready once it accepts a connection.
    await deadline(
      (async () => {
        for (;;) {
          try {
            (await Deno.connect({ hostname: "127.0.0.1", port: this.port })).close();
            return;
          } catch {
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        }
      })(),
      10_000,
      "redis-server to start",
    );
  }

  async stop(): Promise<void> {
    this.child.kill("SIGTERM");
    await this.child.status;
  }

  async remove(): Promise<void> {
    await this.stop().catch(() => {});
    await Deno.remove(this.dir, { recursive: true });
  }
}

/** A `chat serve --redis` node, with the operator token `secret`. */
async function startNode(redis: RedisServer, ...extra: string[]) {
  const node = await startServeWith(
    { CHAT_OP: "secret" },
    "--op-token-env",
    "CHAT_OP",
    "--redis",
    redis.url,
    ...extra,
  );
  return { ...node, server: { addr: { port: node.port } } as unknown as ChatServer };
}

/** Stops a node with SIGTERM, or does nothing if it is gone already. */
async function stopNode(node: { serve: Chat }): Promise<void> {
  try {
    node.serve.child.kill("SIGTERM");
  } catch {
    // Killed already.
  }
  await node.serve.exit();
}

async function withCluster(
  body: (redis: RedisServer, clients: TestClient[], nodes: { serve: Chat }[]) => Promise<void>,
): Promise<void> {
  const redis = new RedisServer();
  await redis.start();
  const clients: TestClient[] = [];
  const nodes: { serve: Chat }[] = [];
  try {
    await body(redis, clients, nodes);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(nodes.map(stopNode));
    await redis.remove();
  }
}

/** A message sent to `node` is acknowledged (stored in Redis); then the node is stopped. */
async function assertStores(node: { serve: Chat; port: number }): Promise<void> {
  const ada = await TestClient.join({ addr: { port: node.port } } as unknown as ChatServer, "ada");
  await ada.send({ type: "msg", text: "stored", ref: 1 });
  await ada.frames.waitFor((f) => f.type === "msg" && f.ref === 1, "acknowledged");
  await ada.close();
  await stopNode(node);
}

const texts = (client: TestClient) => client.messages().map((m) => `${m.seq}:${m.text}`);

Deno.test("two nodes are one chat: every message reaches everyone once, in one order", async () => {
  await withCluster(async (redis, clients, nodes) => {
    const a = await startNode(redis);
    const b = await startNode(redis);
    nodes.push(a, b);
    const ada = await TestClient.join(a.server, "ada");
    const amy = await TestClient.join(a.server, "amy");
    const bob = await TestClient.join(b.server, "bob");
    const bea = await TestClient.join(b.server, "bea");
    clients.push(ada, amy, bob, bea);
    await ada.frames.waitFor((f) => f.type === "event" && f.name === "bea", "bea's join on A");
    // Concurrent senders on both nodes.
    await Promise.all(
      [ada, bob].map(async (sender) => {
        for (let i = 0; i < 40; i++) {
          await sender.send({ type: "msg", text: `${sender.name} ${i}` });
        }
      }),
    );
    for (const client of clients) await client.waitForMessages(80);
    const order = texts(ada);
    assert.deepEqual(
      order.map((t) => Number(t.split(":")[0])),
      [...Array(80).keys()].map((i) => i + 1),
    );
    for (const client of [amy, bob, bea]) assert.deepEqual(texts(client), order, client.name);
    // Who is online is the whole chat's.
    await bea.send({ type: "who" });
    const who = await bea.frames.waitFor((f) => f.type === "who", "who");
    assert.ok(who.type === "who");
    assert.deepEqual([...who.users].sort(), ["ada", "amy", "bea", "bob"]);
    // A private message across nodes, to its target and back to its sender.
    await amy.send({ type: "dm", to: "bob", text: "psst", ref: 9 });
    await bob.frames.waitFor((f) => f.type === "dm" && f.text === "psst", "dm on B");
    await amy.frames.waitFor((f) => f.type === "dm" && f.ref === 9, "confirmation on A");
    // A topic set on one node shows on the other.
    await bob.send({ type: "topic", text: "lab 3" });
    await ada.frames.waitFor((f) => f.type === "event" && f.event === "topic", "topic on A");
    // A room made on one node is listed on the other, with who is in it.
    await amy.send({ type: "join", room: "team1" });
    await amy.frames.waitFor((f) => f.type === "room" && f.room === "team1", "amy in team1");
    await bea.frames.waitFor(
      (f) => f.type === "event" && f.event === "leave" && f.name === "amy",
      "left",
    );
    // B learns of it when amy's join comes round the bus: ask until it has.
    const listed = async () => {
      await bea.send({ type: "rooms", ref: 77 });
      const answer = await bea.frames.waitFor(
        (f) => f.type === "rooms" && f.ref === 77 && !seen.has(f),
        "rooms on B",
      );
      seen.add(answer);
      return answer.type === "rooms"
        ? answer.rooms.map((r) => `${r.name} ${r.members} ${r.topic}`)
        : [];
    };
    const seen = new Set<unknown>();
    let rooms = await listed();
    for (let tries = 0; rooms.length < 2 && tries < 200; tries++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      rooms = await listed();
    }
    assert.deepEqual(rooms, ["lobby 3 lab 3", "team1 1 "]);
  });
});

Deno.test("a name held on one node is refused on the other, and a killed node's names come free", async () => {
  await withCluster(async (redis, clients, nodes) => {
    const a = await startNode(redis, "--redis-lease", "3");
    const b = await startNode(redis, "--redis-lease", "3");
    nodes.push(a, b);
    const ada = await TestClient.join(a.server, "ada");
    clients.push(ada);
    await assert.rejects(TestClient.join(b.server, "ada"), /name_taken/);
    await assert.rejects(TestClient.join(b.server, "ADA"), /name_taken/);
    a.serve.child.kill("SIGKILL");
    const killedAt = performance.now();
    let again: TestClient | undefined;
    while (again === undefined) {
      try {
        again = await TestClient.join(b.server, "ada");
      } catch {
        assert.ok(performance.now() - killedAt < 10_000, "the lease runs out within 10 s");
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    clients.push(again);
  });
});

Deno.test("a client of a killed node resumes on another with exactly what it missed", async () => {
  await withCluster(async (redis, clients, nodes) => {
    const a = await startNode(redis);
    const b = await startNode(redis);
    nodes.push(a, b);
    const ada = await TestClient.join(a.server, "ada");
    const amy = await TestClient.join(a.server, "amy"); // does not come back
    const bob = await TestClient.join(b.server, "bob");
    clients.push(ada, amy, bob);
    for (let i = 1; i <= 5; i++) await bob.send({ type: "msg", text: `m${i}` });
    await ada.waitForMessages(5);
    a.serve.child.kill("SIGKILL");
    await ada.frames.waitForEnd();
    for (let i = 6; i <= 10; i++) await bob.send({ type: "msg", text: `m${i}` });
    await bob.waitForMessages(10);
    // A private message to ada while she is away: kept in Redis for her return elsewhere.
    await bob.send({ type: "dm", to: "ada", text: "while you were away", ref: 5 });
    await bob.frames.waitFor((f) => f.type === "dm" && f.ref === 5, "bob's dm confirmed");
    const last = ada.messages().at(-1)!;
    const back = await TestClient.join(b.server, "ada", {
      since: last.seq,
      epoch: ada.welcome!.epoch,
      token: ada.welcome!.token,
      dmSince: 0,
    });
    clients.push(back);
    await back.waitForMessages(5);
    await bob.send({ type: "msg", text: "m11" });
    await back.waitForMessages(6);
    assert.deepEqual(back.messages().map((m) => m.text), ["m6", "m7", "m8", "m9", "m10", "m11"]);
    await back.frames.waitFor((f) => f.type === "dm" && f.text === "while you were away", "dm");
    await bob.send({ type: "dm", to: "ada", text: "welcome back" });
    await back.frames.waitFor((f) => f.type === "dm" && f.text === "welcome back", "live dm");
    const dms = back.frames.received.filter((f) => f.type === "dm").map((f) =>
      f.type === "dm" ? `${f.text}${f.replay ? " (replay)" : ""}` : ""
    );
    assert.deepEqual(dms, ["while you were away (replay)", "welcome back"]);
    // Nobody saw ada leave (her node died), so nobody is told she joined again.
    const joins = bob.frames.received.filter((f) =>
      f.type === "event" && f.event === "join" && f.name === "ada"
    );
    assert.equal(joins.length, 0, "bob, there before her return, sees no join");
    // amy, who did not come back, is said to have left once her node is taken for dead.
    const left = await bob.frames.waitFor(
      (f) => f.type === "event" && f.event === "leave" && f.name === "amy",
      "amy's leave",
      15_000,
    );
    assert.ok(left.type === "event" && /server stopped/.test(left.reason ?? ""));
    assert.ok(
      !bob.frames.received.some((f) =>
        f.type === "event" && f.event === "leave" && f.name === "ada"
      ),
    );
  });
});

Deno.test("Redis lost under load: messages are refused, never lost nor doubled; it comes back", async () => {
  await withCluster(async (redis, clients, nodes) => {
    const fast = ["--rate", "1000", "--burst", "1000"]; // a sender refused often is not slowed
    const a = await startNode(redis, ...fast);
    const b = await startNode(redis, ...fast);
    nodes.push(a, b);
    const senders = [
      await TestClient.join(a.server, "ada"),
      await TestClient.join(b.server, "bob"),
    ];
    const probe = await TestClient.join(a.server, "probe");
    const reader = await TestClient.join(b.server, "reader");
    clients.push(...senders, probe, reader);
    await senders[0].frames.waitFor((f) => f.type === "event" && f.name === "reader", "ready");
    const acked: string[] = [];
    let running = true;
    // Each sender waits for the answer to one message before the next, as chat join does; an
    // answer may wait for Redis to come back, when the message may have reached it.
    const load = senders.map(async (sender) => {
      for (let ref = 1; running && ref < 2000 && !sender.frames.ended; ref++) {
        const text = `${sender.name} ${ref}`;
        await sender.send({ type: "msg", text, ref });
        const answer = await sender.frames.waitFor(
          (f) => (f.type === "msg" || f.type === "error") && "ref" in f && f.ref === ref,
          `answer to ${text}`,
          30_000,
        );
        if (answer.type === "msg") acked.push(text);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }).map((sending) => sending.catch((error) => error)); // surfaces below, not as a stray
    await new Promise((resolve) => setTimeout(resolve, 300));
    await redis.stop();
    // A message sent while Redis is known to be away is refused at once, with the reason.
    let refusal: ServerFrame | undefined;
    for (let ref = 1; refusal === undefined; ref++) {
      await probe.send({ type: "msg", text: `probe ${ref}`, ref });
      const answer = await probe.frames.waitFor(
        (f) => (f.type === "msg" || f.type === "error") && "ref" in f && f.ref === ref,
        "probe answer",
      );
      if (answer.type === "error" && answer.code === "storage_failed") refusal = answer;
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.match(refusal.type === "error" ? refusal.message : "", /store|Redis/);
    await redis.start();
    const before = acked.length;
    await deadline(
      (async () => {
        while (acked.length < before + 20) await new Promise((resolve) => setTimeout(resolve, 20));
      })(),
      20_000,
      "service to resume by itself",
    );
    running = false;
    for (const outcome of await Promise.all(load)) if (outcome) throw outcome;
    // Every acknowledged message is kept and relayed once; nothing refused is.
    const mine = () => reader.messages().map((m) => m.text).filter((t) => !t.startsWith("probe"));
    await reader.frames.waitFor(() => acked.every((t) => mine().includes(t)), "all acked");
    const seen = mine();
    assert.equal(new Set(seen).size, seen.length, "nothing doubled");
    assert.deepEqual([...seen].sort(), [...acked].sort(), "exactly what was acknowledged");
    assert.ok(
      !reader.messages().some((m) => m.text === `probe ${(refusal as { ref?: number }).ref}`),
      "refused: not relayed",
    );
    const late = await TestClient.join(a.server, "late", { history: 1000 });
    clients.push(late);
    await late.waitForMessages(reader.messages().length);
    assert.deepEqual(late.messages().map((m) => m.text), reader.messages().map((m) => m.text));
  });
});

Deno.test("chat serve --redis with Redis unreachable exits 3 and says so", async () => {
  const redis = new RedisServer(); // never started
  const serve = new Chat(["serve", "--host", "127.0.0.1", "--port", "0", "--redis", redis.url]);
  assert.equal(await serve.exit(), 3);
  assert.match(serve.stderr, /cannot reach Redis at 127\.0\.0\.1:\d+/);
  await Deno.remove(redis.dir, { recursive: true });
});

Deno.test("a room a node let go of is loaded again from Redis, with its history", async () => {
  await withCluster(async (redis, clients, nodes) => {
    const a = await startNode(redis);
    const b = await startNode(redis);
    nodes.push(a, b);
    const bob = await TestClient.join(b.server, "bob");
    clients.push(bob);
    // bob passes through r1 while it is empty: B lets the room go as he leaves.
    await bob.send({ type: "join", room: "r1" });
    await bob.frames.waitFor((f) => f.type === "room" && f.room === "r1", "in r1");
    await bob.send({ type: "join", room: "lobby" });
    await bob.frames.waitFor((f) => f.type === "room" && f.room === "lobby", "back");
    const ada = await TestClient.join(a.server, "ada", { room: "r1" });
    clients.push(ada);
    for (let i = 1; i <= 3; i++) await ada.send({ type: "msg", text: `r1 m${i}` });
    await ada.waitForMessages(3);
    await bob.send({ type: "join", room: "r1" });
    await bob.frames.waitFor((f) => f.type === "room" && f.room === "r1", "in r1 again");
    await ada.send({ type: "msg", text: "r1 m4" });
    await bob.frames.waitFor((f) => f.type === "msg" && f.text === "r1 m4", "live after");
    assert.deepEqual(bob.messages().map((m) => m.text), ["r1 m1", "r1 m2", "r1 m3", "r1 m4"]);
  });
});

Deno.test("--max-rooms bounds a node's rooms, those of other nodes included", async () => {
  await withCluster(async (redis, clients, nodes) => {
    const a = await startNode(redis, "--max-rooms", "3");
    const b = await startNode(redis, "--max-rooms", "3");
    nodes.push(a, b);
    // Two rooms in use on A, besides the lobby: B holds three too, so it makes no fourth.
    const ada = await TestClient.join(a.server, "ada", { room: "r1" });
    const amy = await TestClient.join(a.server, "amy", { room: "r2" });
    clients.push(ada, amy);
    const bob = await TestClient.join(b.server, "bob");
    clients.push(bob);
    // B learns of A's rooms from the bus.
    for (let ref = 10;; ref++) {
      await bob.send({ type: "rooms", ref });
      const answer = await bob.frames.waitFor((f) => f.type === "rooms" && f.ref === ref, "rooms");
      if (answer.type === "rooms" && answer.rooms.length === 3) break;
    }
    await bob.send({ type: "join", room: "r3", ref: 2 });
    await bob.waitForError("too_many_rooms");
    // A room that is there already may be joined.
    await bob.send({ type: "join", room: "r2" });
    await bob.frames.waitFor((f) => f.type === "room" && f.room === "r2", "in r2");
    // On A, too, a client cannot make rooms past the limit, though they load asynchronously.
    await ada.send({ type: "join", room: "r4", ref: 3 });
    await ada.waitForError("too_many_rooms");
  });
});

Deno.test("operators act across nodes: kick, ban, mute, the message of the day, the @ mark", async () => {
  await withCluster(async (redis, clients, nodes) => {
    const a = await startNode(redis);
    const b = await startNode(redis);
    nodes.push(a, b);
    const op = await TestClient.join(a.server, "teacher", { op: "secret" });
    const bob = await TestClient.join(b.server, "bob");
    const bea = await TestClient.join(b.server, "bea");
    const cy = await TestClient.join(b.server, "cy");
    clients.push(op, bob, bea, cy);
    await op.frames.waitFor((f) => f.type === "event" && f.name === "cy", "cy seen on A");
    await cy.send({ type: "who" });
    const who = await cy.frames.waitFor((f) => f.type === "who", "who on B");
    assert.ok(who.type === "who" && who.ops.includes("teacher"), "the operator is marked on B");

    await op.send({ type: "kick", name: "bob", reason: "test" });
    await bob.waitForError("kicked");
    await bob.frames.waitForEnd();

    await op.send({ type: "mute", name: "cy", minutes: 5 });
    await cy.frames.waitFor((f) => f.type === "event" && f.event === "mute", "told");
    await cy.send({ type: "msg", text: "muted?", ref: 3 });
    await cy.waitForError("muted");

    await op.send({ type: "motd", text: "quiz at 3" });
    await cy.frames.waitFor((f) => f.type === "event" && f.event === "motd", "motd on B");
    const late = await TestClient.join(b.server, "late");
    clients.push(late);
    assert.equal(late.welcome!.motd, "quiz at 3");

    // A ban covers the address too, and every test client is 127.0.0.1: last.
    await op.send({ type: "ban", name: "bea", reason: "spam" });
    await bea.waitForError("banned");
    await assert.rejects(TestClient.join(a.server, "bea"), /banned/);
  });
});

Deno.test("--reuse-port: two nodes share one port, the kernel spreads clients, one chat", async () => {
  await withCluster(async (redis, clients, nodes) => {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = probe.addr.port;
    probe.close();
    const a = await startNode(redis, "--port", String(port), "--reuse-port");
    const b = await startNode(redis, "--port", String(port), "--reuse-port");
    nodes.push(a, b);
    assert.equal(a.port, port);
    assert.equal(b.port, port);
    const server = { addr: { port } } as unknown as ChatServer;
    for (let i = 0; i < 16; i++) clients.push(await TestClient.join(server, `c${i}`));
    const on = (node: { serve: Chat }) =>
      (node.serve.stderr.match(/connect 127\.0\.0\.1:\d+ c\d+/g) ?? []).length;
    await deadline(
      (async () => {
        while (on(a) + on(b) < 16) await new Promise((resolve) => setTimeout(resolve, 20));
      })(),
      5000,
      "every connect logged",
    );
    assert.ok(on(a) > 0 && on(b) > 0, `both nodes got clients (${on(a)} and ${on(b)})`);
    await clients[0].send({ type: "msg", text: "to everyone" });
    for (const client of clients) await client.waitForMessages(1);
  });
});

Deno.test("--redis with a password in the URL; a wrong one exits 3 and says so", async () => {
  const redis = new RedisServer();
  redis.extra = ["--requirepass", "s3cret"];
  await redis.start();
  try {
    const url = `redis://:s3cret@127.0.0.1:${redis.port}/2`;
    await assertStores(await startServeWith({}, "--redis", url));
    const wrong = new Chat([
      "serve",
      "--port",
      "0",
      "--redis",
      `redis://:nope@127.0.0.1:${redis.port}`,
    ]);
    assert.equal(await wrong.exit(), 3);
    assert.match(wrong.stderr, /cannot reach Redis.*(WRONGPASS|invalid|password)/i);
  } finally {
    await redis.remove();
  }
});

Deno.test("on a node: nc lines sent at once, --send twice, piped lines that wait out Redis", async () => {
  await withCluster(async (redis, clients, nodes) => {
    const a = await startNode(redis);
    nodes.push(a);
    const watcher = await TestClient.join(a.server, "watcher");
    clients.push(watcher);
    // nc with lines ready before the banner: they wait for the guest's name, none is lost.
    const nc = await Deno.connect({ hostname: "127.0.0.1", port: a.port });
    await nc.write(new TextEncoder().encode("hello from nc\n/who\n/join lab\n/who\n"));
    await watcher.frames.waitFor((f) => f.type === "msg" && f.text === "hello from nc", "nc line");
    let text = "";
    await deadline(
      (async () => {
        for await (const chunk of nc.readable) {
          text += new TextDecoder().decode(chunk);
          if (/in lab \(1\)/.test(text)) return;
        }
      })(),
      10_000,
      "nc's /who in lab",
    );
    assert.match(text, /in lobby \(2\)/);
    // --send leaves with a quit: the name is free at once for the next one.
    for (const words of ["build green", "build still green"]) {
      const send = new Chat(["join", `127.0.0.1:${a.port}`, "--name", "ci", "--send", words]);
      assert.equal(await send.exit(), 0, send.stderr);
    }
    // Piped lines sent while Redis is away wait, and go once it is back.
    const piped = new Chat(["join", `127.0.0.1:${a.port}`, "--name", "pipe"]);
    await piped.waitFor(/connected to/);
    await redis.stop();
    await piped.write("written while Redis was away\n");
    await piped.waitForStderr(/your messages wait/);
    await redis.start();
    assert.equal(await piped.exit(30_000), 0, piped.stderr);
    await watcher.frames.waitFor(
      (f) => f.type === "msg" && f.text === "written while Redis was away",
      "the piped line, once Redis is back",
      20_000,
    );
  });
});

Deno.test("--redis rediss:// with --redis-ca speaks TLS to Redis; without the CA it is refused", async () => {
  const redis = new RedisServer();
  const { cert, key } = await makeCertificate(redis.dir);
  const tlsPort = redis.port;
  redis.extra = [
    ...["--port", "0", "--tls-port", String(tlsPort), "--tls-auth-clients", "no"],
    ...["--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", cert],
  ];
  await redis.start();
  try {
    const url = `rediss://127.0.0.1:${tlsPort}`;
    await assertStores(await startServeWith({}, "--redis", url, "--redis-ca", cert));
    const untrusted = new Chat(["serve", "--port", "0", "--redis", url]);
    assert.equal(await untrusted.exit(), 3);
    assert.match(untrusted.stderr, /cannot reach Redis/);
  } finally {
    await redis.remove();
  }
});

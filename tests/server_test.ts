import assert from "node:assert/strict";
import { deadline, PlainClient, startServer, TestClient } from "./helpers.ts";
import type { ChatServer } from "../server.ts";

/** Runs `body` with a server, and always shuts it down and closes clients. */
async function withServer(
  options: Parameters<typeof startServer>[0],
  body: (
    server: ChatServer,
    track: <T extends { close(): Promise<void> }>(c: T) => T,
  ) => Promise<void>,
): Promise<void> {
  const server = startServer(options);
  const clients: { close(): Promise<void> }[] = [];
  try {
    await body(server, (client) => {
      clients.push(client);
      return client;
    });
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.shutdown();
  }
}

Deno.test("50 clients: every message reaches every client exactly once, in each sender's order", async () => {
  await withServer({ rate: 1000, burst: 1000 }, async (server, track) => {
    const clients: TestClient[] = [];
    for (let i = 0; i < 50; i++) clients.push(track(await TestClient.join(server, `user${i}`)));
    const perSender = 10;
    await Promise.all(clients.map(async (client, i) => {
      for (let n = 0; n < perSender; n++) {
        await client.send({ type: "msg", text: `${i}:${n}`, ref: n });
      }
    }));
    const total = clients.length * perSender;
    await Promise.all(
      clients.map((c) =>
        c.frames.waitFor(() => c.messages().length >= total, `${c.name} gets ${total} messages`)
      ),
    );
    for (const client of clients) {
      const messages = client.messages();
      assert.equal(messages.length, total, "no duplicates");
      const next = new Map<string, number>();
      for (const m of messages) {
        const [sender, n] = m.text.split(":");
        assert.equal(m.from, `user${sender}`);
        assert.equal(Number(n), next.get(sender) ?? 0, `order of ${sender} at ${client.name}`);
        next.set(sender, Number(n) + 1);
      }
      const ids = messages.map((m) => m.id);
      assert.ok(ids.every((id, k) => k === 0 || id > ids[k - 1]), "ids increase");
    }
  });
});

Deno.test("names are unique regardless of case; a rename is announced", async () => {
  await withServer({}, async (server, track) => {
    const ada = track(await TestClient.join(server, "Ada"));
    const other = track(await TestClient.connect(server));
    await other.send({ type: "hello", version: 1, name: "ADA" });
    await other.waitForError("name_taken");
    await other.frames.waitForEnd("a refused hello is disconnected");

    const bob = track(await TestClient.join(server, "bob"));
    await bob.send({ type: "nick", name: "ada" });
    await bob.waitForError("name_taken");
    await bob.send({ type: "nick", name: "robert" });
    await ada.waitForEvent("rename", "robert");
    assert.ok(ada.frames.received.some((f) => f.type === "event" && f.from === "bob"));
    await ada.send({ type: "nick", name: "ADA" }); // a change of case of one's own name is fine
    await bob.waitForEvent("rename", "ADA");
    await bob.send({ type: "nick", name: "bad name" });
    await bob.waitForError("bad_name");
    await ada.send({ type: "who" });
    const who = await ada.frames.waitFor((f) => f.type === "who", "who list");
    assert.deepEqual(who.type === "who" && who.users, ["ADA", "robert"]);
  });
});

Deno.test("bad, reserved and missing names", async () => {
  await withServer({ maxNameLength: 8 }, async (server, track) => {
    for (const name of ["toolongname", "admin", "a\u202eb", ""]) {
      const client = track(await TestClient.connect(server));
      await client.send({ type: "hello", version: 1, name });
      await client.waitForError("bad_name");
      await client.frames.waitForEnd();
    }
    const guest = track(await TestClient.join(server));
    assert.match(guest.name, /^guest\d+$/);
  });
});

Deno.test("join and leave notices reach everyone, with the reason", async () => {
  await withServer({}, async (server, track) => {
    const ada = track(await TestClient.join(server, "ada"));
    const bob = track(await TestClient.join(server, "bob"));
    await ada.waitForEvent("join", "bob");
    const welcome = bob.frames.received[0];
    assert.equal(welcome.type, "welcome");
    assert.deepEqual(welcome.type === "welcome" && welcome.users, ["ada", "bob"]);
    await bob.send({ type: "quit" });
    const leave = await ada.waitForEvent("leave", "bob");
    assert.equal(leave.type === "event" && leave.reason, "quit");
    await bob.frames.waitForEnd("quit closes the connection");
  });
});

Deno.test("abrupt disconnects: reset, half-close and vanishing are each removed once", async () => {
  await withServer({}, async (server, track) => {
    const watcher = track(await TestClient.join(server, "watcher"));
    const reset = await TestClient.join(server, "reset");
    const half = track(await TestClient.join(server, "half"));
    const quiet = track(await TestClient.join(server, "quiet"));
    await watcher.waitForEvent("join", "quiet");

    await reset.close(); // closes without a word
    await watcher.waitForEvent("leave", "reset");
    await half.conn.closeWrite(); // sends FIN, still reading
    await watcher.waitForEvent("leave", "half");
    await half.frames.waitForEnd("the server closes a half-closed client");

    // The server keeps working for those still there.
    await quiet.send({ type: "msg", text: "still here" });
    await watcher.frames.waitFor((f) => f.type === "msg" && f.text === "still here", "message");
    const leaves = watcher.frames.received.filter((f) => f.type === "event" && f.event === "leave");
    assert.deepEqual(leaves.map((f) => f.type === "event" && f.name), ["reset", "half"]);
    assert.equal(server.connections, 2);
  });
});

// With 9 connections or more, the server also weighs what all queues hold together
// (server/outbound_budget.ts) and may hold the senders up: a reader that stops reading
// must not make it hold them for good.
for (const bystanders of [0, 6]) {
  Deno.test(
    `a client that stops reading is cut off as slow_consumer; the others lose nothing (${
      3 + bystanders
    } connections)`,
    async () => {
      await withServer(
        { rate: 100_000, burst: 100_000, rateBytes: 1024 ** 3 }, // the default queue limit
        async (server, track) => {
          const sender = track(await TestClient.join(server, "sender"));
          const reader = track(await TestClient.join(server, "reader"));
          const others: TestClient[] = [];
          for (let i = 0; i < bystanders; i++) {
            others.push(track(await TestClient.join(server, `b${i}`)));
          }
          // The slow client reads nothing until it has been cut off.
          const slowConn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
          await slowConn.write(
            new TextEncoder().encode('{"type":"hello","version":1,"name":"slow"}\n'),
          );
          await reader.waitForEvent("join", "slow");

          const text = "x".repeat(8000);
          let sent = 0;
          const started = Date.now();
          // Bounded: the kernel buffers a few MB at most before the queue overflows.
          while (
            !reader.frames.received.some((f) =>
              f.type === "event" && f.name === "slow" && f.event === "leave"
            )
          ) {
            assert.ok(
              sent < 20_000 && Date.now() - started < 20_000,
              "slow client was never cut off",
            );
            await sender.send({ type: "msg", text: `${sent++} ${text}` });
            // The reader shares this process with the server: keep it well within its limit.
            if (sent % 8 === 0) {
              await reader.waitForMessages(sent - 8);
              for (const other of others) await other.waitForMessages(sent - 8);
            }
          }
          const leave = await reader.waitForEvent("leave", "slow");
          assert.equal(leave.type === "event" && leave.reason, "slow_consumer");

          // The one cut off learns why, if it reads within the grace period.
          const slow = track(TestClient.fromConn(slowConn));
          await slow.waitForError("slow_consumer");
          await slow.frames.waitForEnd();

          // Every reader that kept reading has every message, in order, once.
          for (const client of [reader, ...others]) {
            await client.frames.waitFor(
              () => client.messages().length === sent,
              `all ${sent} messages`,
            );
            assert.deepEqual(client.messages().map((m) => Number(m.text.split(" ")[0])), [
              ...Array(sent).keys(),
            ]);
          }
        },
      );
    },
  );
}

Deno.test("rate limit: the sender is told, with a retry time, and nothing is relayed", async () => {
  // rate 1, burst 2, and the server's slack of 2 for network jitter: 4 at once get through.
  await withServer({ rate: 1, burst: 2 }, async (server, track) => {
    const ada = track(await TestClient.join(server, "ada"));
    for (let ref = 1; ref <= 6; ref++) await ada.send({ type: "msg", text: `m${ref}`, ref });
    await ada.send({ type: "ping", data: "sync" });
    await ada.frames.waitFor((f) => f.type === "pong" && f.data === "sync", "pong");
    const limited = ada.frames.received.filter((f) => f.type === "error");
    assert.deepEqual(limited.map((f) => f.type === "error" && [f.code, f.ref]), [
      ["rate_limited", 5],
      ["rate_limited", 6],
    ]);
    const [first, second] = limited.map((f) => f.type === "error" ? f.retryMs! : 0);
    assert.ok(first > 0 && first <= 1000, `retryMs ${first}`);
    assert.ok(second >= first + 900, `a second refusal is told to come back a token later`);
    assert.deepEqual(ada.messages().map((m) => m.text), ["m1", "m2", "m3", "m4"]);
  });
});

Deno.test("rate limit: a client sending at the announced rate, with network jitter, is never refused", async () => {
  await withServer({ rate: 50, burst: 5 }, async (server, track) => {
    const ada = track(await TestClient.join(server, "ada"));
    const { rate, burst } = ada.welcome!.limits;
    for (let ref = 1; ref <= burst; ref++) await ada.send({ type: "msg", text: "burst", ref });
    // Then 50 more at the rate on average, each up to 40 % of an interval early or late.
    const interval = 1000 / rate;
    const start = performance.now();
    for (let i = 1; i <= 50; i++) {
      const due = start + i * interval + (Math.random() - 0.5) * 0.8 * interval;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - performance.now())));
      await ada.send({ type: "msg", text: `m${i}`, ref: burst + i });
    }
    await ada.frames.waitFor((f) => f.type === "msg" && f.text === "m50", "the last message");
    assert.deepEqual(ada.frames.received.filter((f) => f.type === "error"), []);
    assert.equal(ada.messages().length, burst + 50);
  });
});

Deno.test("frame limits and malformed frames get errors; the session goes on", async () => {
  await withServer({ maxFrameBytes: 1024 }, async (server, track) => {
    const ada = track(await TestClient.join(server, "ada"));
    await ada.sendRaw(`{"type":"msg","text":"${"y".repeat(5000)}"}\n`);
    await ada.waitForError("frame_too_large");
    await ada.sendRaw('{"type":"msg","text":42}\nnot json\n{"type":"msg","text":""}\n');
    await ada.frames.waitFor(
      () =>
        ada.frames.received.filter((f) => f.type === "error" && f.code === "bad_frame").length ===
          3,
      "three bad_frame errors",
    );
    await ada.sendRaw(new Uint8Array([0xff, 0xfe, 10]));
    await ada.frames.waitFor(
      () =>
        ada.frames.received.filter((f) => f.type === "error" && f.code === "bad_frame").length ===
          4,
      "invalid UTF-8 answered",
    );
    await ada.send({ type: "msg", text: "fine" });
    await ada.frames.waitFor(
      (f) => f.type === "msg" && f.text === "fine",
      "normal message after errors",
    );
  });
});

Deno.test("handshake errors: wrong version, no hello first", async () => {
  await withServer({}, async (server, track) => {
    const old = track(await TestClient.connect(server));
    await old.send({ type: "hello", version: 99, name: "old" });
    await old.waitForError("bad_version");
    await old.frames.waitForEnd();
    const rude = track(await TestClient.connect(server));
    await rude.send({ type: "msg", text: "hi" });
    await rude.waitForError("not_joined");
    await rude.frames.waitForEnd();
  });
});

Deno.test("server_full: connections past the limit are turned away with the reason", async () => {
  await withServer({ maxClients: 2 }, async (server, track) => {
    track(await TestClient.join(server, "a"));
    track(await TestClient.join(server, "b"));
    const third = track(await TestClient.connect(server));
    await third.waitForError("server_full");
    await third.frames.waitForEnd();
  });
});

Deno.test("plain-text clients chat with protocol clients", async () => {
  await withServer({}, async (server, track) => {
    const ada = track(await TestClient.join(server, "ada"));
    const nc = track(await PlainClient.connect(server));
    const banner = await nc.waitFor((l) => l.startsWith("* Welcome"), "banner");
    assert.match(banner, /You are guest\d+/);
    await nc.send("/nick carol\r\n");
    await ada.waitForEvent("rename", "carol");
    await nc.send("hello from nc\r\n");
    const msg = await ada.frames.waitFor((f) => f.type === "msg", "message from nc");
    assert.equal(msg.type === "msg" && `${msg.from}|${msg.text}`, "carol|hello from nc");

    await ada.send({ type: "msg", text: "hi carol \x1b[2J\x1b]0;pwned\x07" });
    const line = await nc.waitFor((l) => l.includes("ada:"), "ada's message as a line");
    assert.match(line, /^\[\d\d:\d\d\] ada: hi carol \uFFFD\[2J\uFFFD\]0;pwned\uFFFD$/);
    assert.ok(
      !nc.lines.received.some((l) => l.includes("hello from nc")),
      "no echo to plain clients",
    );

    await nc.send("/who\n");
    await nc.waitFor((l) => l === "* in lobby (2): ada, carol", "who list");
    await nc.send("!DISCONNECT\n");
    const leave = await ada.waitForEvent("leave", "carol");
    assert.equal(leave.type === "event" && leave.reason, "quit");
  });
});

Deno.test("a silent connection becomes a plain-text client", async () => {
  await withServer({}, async (server, track) => {
    const lurker = track(await PlainClient.connect(server));
    await lurker.waitFor((l) => l.startsWith("* Welcome"), "banner without saying anything");
  });
});

Deno.test("graceful shutdown: everyone is told, queued messages are delivered, sockets close", async () => {
  const server = startServer({ rate: 10_000, burst: 10_000 });
  const ada = await TestClient.join(server, "ada");
  const bob = await TestClient.join(server, "bob");
  const nc = await PlainClient.connect(server);
  await nc.waitFor((l) => l.startsWith("* Welcome"), "banner");
  for (let i = 0; i < 200; i++) await ada.send({ type: "msg", text: `m${i}` });
  await ada.frames.waitFor((f) => f.type === "msg" && f.text === "m199", "own echo");
  await deadline(server.shutdown(), 5000, "shutdown");
  for (const client of [ada, bob]) {
    await client.frames.waitForEnd();
    const last = client.frames.received.at(-1);
    assert.equal(last?.type === "error" && last.code, "server_shutdown");
    assert.equal(client.messages().length, 200);
  }
  await nc.lines.waitForEnd();
  assert.match(nc.lines.received.at(-1)!, /shutting down/);
  await Promise.all([ada.close(), bob.close(), nc.close()]);
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }),
    Deno.errors.ConnectionRefused,
  );
});

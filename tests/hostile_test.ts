/**
 * Hostile and broken clients, on real sockets: whatever they do, the honest
 * clients on another address keep chatting. The attackers connect from
 * 127.0.0.2 (through node:net, which can bind a local address), the honest
 * clients from 127.0.0.1.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { deadline, TestClient, withServer } from "./helpers.ts";
import { Chat, startServe, stop } from "./subprocess.ts";

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

const FAST = { rate: 100_000, burst: 100_000, rateBytes: 1024 ** 3 };

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

Deno.test("renames, room changes and topics are limited per client; the offender is told", async () => {
  await withServer({}, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    const flooder = await TestClient.join(server, "flooder");
    clients.push(ada, flooder);
    for (let i = 0; i < 50; i++) await flooder.send({ type: "topic", text: `t${i}`, ref: i });
    await flooder.send({ type: "ping", data: "sync" });
    await flooder.frames.waitFor((f) => f.type === "pong", "pong");
    const limited = flooder.frames.received.filter((f) =>
      f.type === "error" && f.code === "rate_limited"
    );
    assert.ok(limited.length >= 40, `${limited.length} refusals`);
    await ada.send({ type: "ping", data: "sync" });
    await ada.frames.waitFor((f) => f.type === "pong", "pong");
    const topics = ada.frames.received.filter((f) => f.type === "event" && f.event === "topic");
    assert.ok(topics.length <= 10, `ada saw ${topics.length} topic changes`);
  });
});

Deno.test("messages are limited in bytes per second too", async () => {
  await withServer({ rate: 1000, burst: 1000, rateBytes: 4096 }, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    clients.push(ada);
    const big = "b".repeat(8000);
    for (let ref = 1; ref <= 8; ref++) await ada.send({ type: "msg", text: big, ref });
    await ada.send({ type: "ping", data: "sync" });
    await ada.frames.waitFor((f) => f.type === "pong", "pong");
    // A burst of four 16 KiB lines' worth (64 KiB) plus slack: 8 lines of 8 KB fit, the 9th not.
    await ada.send({ type: "msg", text: big, ref: 9 });
    const refusal = await ada.waitForError("rate_limited");
    assert.equal(refusal.type === "error" && refusal.ref, 9);
    assert.match(refusal.type === "error" ? refusal.message : "", /bytes of messages a second/);
  });
});

Deno.test("connecting in a loop from one address is slowed; the room is not flooded with notices", async () => {
  await withServer({ maxPerAddress: 16 }, async (server, clients) => {
    const watcher = await TestClient.join(server, "watcher");
    clients.push(watcher);
    let welcomed = 0;
    let limited = 0;
    for (let i = 0; i < 200; i++) {
      const a = await attacker(server.addr.port);
      a.socket.write(`{"type":"hello","version":1,"name":"bot${i}"}\n`);
      await new Promise<void>((resolve) => {
        const check = () => {
          const text = a.received();
          if (text.includes('"type":"welcome"') || text.includes('"code":"rate_limited"')) {
            resolve();
          } else a.socket.once("data", check);
        };
        a.socket.once("close", () => resolve());
        check();
      });
      if (a.received().includes('"type":"welcome"')) welcomed++;
      if (a.received().includes('"code":"rate_limited"')) limited++;
      a.socket.destroy();
    }
    assert.ok(welcomed <= 40, `${welcomed} of 200 got in`);
    assert.ok(limited >= 150, `${limited} were told to slow down`);
    await watcher.send({ type: "ping", data: "sync" });
    await watcher.frames.waitFor((f) => f.type === "pong", "pong");
    const notices = watcher.frames.received.filter((f) => f.type === "event");
    assert.ok(notices.length <= 2 * 40 + 1, `${notices.length} notices`);
  });
});

Deno.test("creating rooms is limited per client and per address; others can still make one", async () => {
  await withServer({ maxPerAddress: 16, maxRooms: 100 }, async (server, clients) => {
    const created: string[] = [];
    for (let c = 0; c < 5; c++) {
      const conn = await attacker(server.addr.port);
      conn.socket.write(`{"type":"hello","version":1,"name":"maker${c}"}\n`);
      for (let r = 0; r < 5; r++) {
        conn.socket.write(`{"type":"join","room":"r${c}x${r}","ref":${r}}\n`);
      }
      conn.socket.write(`{"type":"ping","data":"end"}\n`);
      await deadline(
        new Promise<void>((resolve) => {
          const check = () =>
            conn.received().includes('"type":"pong"') ? resolve() : conn.socket.once("data", check);
          check();
        }),
        5000,
        "pong",
      );
      for (const line of conn.received().split("\n")) {
        if (line.includes('"type":"room"')) created.push(JSON.parse(line).room);
      }
      conn.socket.destroy();
    }
    // Each client may make 3 at once; the address 10 in all.
    assert.equal(created.length, 10, created.join(" "));
    const honest = await TestClient.join(server, "honest");
    clients.push(honest);
    await honest.send({ type: "join", room: "team1" });
    await honest.frames.waitFor(
      (f) => f.type === "room" && f.room === "team1",
      "a room of its own",
    );
  });
});

Deno.test("a dropped name is kept for its token: an impostor cannot take it, nor its private messages", async () => {
  await withServer({}, async (server, clients) => {
    const teacher = await TestClient.join(server, "teacher");
    const student = await TestClient.join(server, "student");
    clients.push(student);
    const token = teacher.welcome!.token;
    await teacher.close(); // the Wi-Fi blinks
    await student.waitForEvent("leave", "teacher");

    const impostor = await TestClient.connect(server);
    clients.push(impostor);
    await impostor.send({ type: "hello", version: 1, name: "teacher" });
    const refused = await impostor.waitForError("name_taken");
    assert.match(refused.type === "error" ? refused.message : "", /kept \d+ s more/);
    await student.send({ type: "nick", name: "TEACHER", ref: 1 });
    await student.waitForError("name_taken");
    await student.send({ type: "dm", to: "teacher", text: "are you there?", ref: 2 });
    const notOnline = await student.waitForError("no_such_user");
    assert.equal(notOnline.type === "error" && notOnline.ref, 2);

    const back = await TestClient.join(server, "teacher", { token });
    clients.push(back);
    await student.waitForEvent("join", "teacher");
  });
});

Deno.test("after the grace period the name is free again", async () => {
  await withServer({ nameGraceMs: 200, livenessCheckMs: 50 }, async (server, clients) => {
    const first = await TestClient.join(server, "ada");
    const watcher = await TestClient.join(server, "watcher");
    clients.push(watcher);
    await first.close();
    await watcher.waitForEvent("leave", "ada");
    // Wait on the server's own clock: its next sweeps let go of the name.
    await deadline(
      (async () => {
        for (;;) {
          const attempt = await TestClient.join(server, "ada").catch(() => undefined);
          if (attempt) return clients.push(attempt);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })(),
      5000,
      "the name comes free",
    );
  });
});

Deno.test("an empty room without a topic expires; with --db it comes back as it was", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const db of [undefined, `${dir}/chat.db`]) {
      await withServer(
        { db, roomExpiryMs: 100, livenessCheckMs: 50, ...{ rate: 1000, burst: 1000 } },
        async (server, clients) => {
          const ada = await TestClient.join(server, "ada", { room: "scratch" });
          for (let i = 1; i <= 3; i++) await ada.send({ type: "msg", text: `m${i}` });
          await ada.waitForMessages(3);
          const epoch = ada.welcome!.epoch;
          await ada.send({ type: "join", room: "lobby" });
          await ada.frames.waitFor((f) => f.type === "room", "back in the lobby");
          clients.push(ada);
          await deadline(
            (async () => {
              for (;;) {
                await ada.send({ type: "rooms" });
                const list = await ada.frames.waitFor(
                  (f) => f.type === "rooms" && !f.rooms.some((r) => r.name === "scratch"),
                  "rooms without scratch",
                  200,
                ).catch(() => undefined);
                if (list) return;
              }
            })(),
            5000,
            "scratch expires",
          );
          const bob = await TestClient.join(server, "bob", { room: "scratch", history: 10 });
          clients.push(bob);
          if (db === undefined) {
            assert.notEqual(bob.welcome!.epoch, epoch, "a new numbering");
            assert.equal(bob.welcome!.seq, 0);
          } else {
            assert.equal(bob.welcome!.epoch, epoch, "the same numbering, from the database");
            await bob.waitForMessages(3);
            await bob.send({ type: "msg", text: "m4" });
            const m4 = await bob.frames.waitFor((f) => f.type === "msg" && !f.replay, "m4");
            assert.equal(m4.type === "msg" && m4.seq, 4);
          }
        },
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("names and rooms that only look like others are refused; text loses its disguises", async () => {
  await withServer({}, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    const teacher = await TestClient.join(server, "teacher");
    clients.push(ada, teacher);
    const refusals: [string, string][] = [];
    for (
      const name of [
        "\u0430da", // Cyrillic а
        "t\u0435acher", // Cyrillic е
        "\u0391da", // Greek Alpha
        "ada\u034f", // combining grapheme joiner
        "ada\ufe0f",
        "\u3164", // Hangul filler
        "\uff41\uff44\uff41", // fullwidth ａｄａ
        "\u{1d41a}\u{1d41d}\u{1d41a}", // mathematical bold
        "\u0455erver", // Cyrillic ѕ
        "server.",
        "administrator",
      ]
    ) {
      const client = await TestClient.connect(server);
      clients.push(client);
      await client.send({ type: "hello", version: 1, name });
      const answer = await client.frames.waitFor((f) => f.type === "error", `refusal of ${name}`);
      if (answer.type === "error") refusals.push([name, answer.code]);
    }
    assert.ok(
      refusals.every(([, code]) => code === "bad_name" || code === "name_taken"),
      JSON.stringify(refusals),
    );
    assert.equal(refusals.length, 11);

    await ada.send({ type: "join", room: "lobby\u034f", ref: 1 });
    await ada.waitForError("bad_room");
    await ada.send({ type: "msg", text: "invoice\u202egpj.exe \u200bhidden" });
    const cleaned = await teacher.frames.waitFor((f) => f.type === "msg", "the message");
    assert.equal(cleaned.type === "msg" && cleaned.text, "invoicegpj.exe hidden");
  });
});

Deno.test("chat join --json escapes C1 controls, bidi controls and line separators, and stays JSON", async () => {
  const { serve, port } = await startServe("--quiet");
  try {
    const reader = new Chat(["join", `127.0.0.1:${port}`, "--name", "reader", "--json"]);
    await reader.waitFor(/"type":"welcome"/);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const sender = TestClient.fromConn(conn);
    await sender.send({ type: "hello", version: 1, name: "sender" });
    await sender.frames.waitFor((f) => f.type === "welcome", "welcome");
    const text = "a\u009b2Jb\u2028c\u009d0;title\u0007";
    await sender.send({ type: "msg", text });
    const line = await reader.waitFor(/"from":"sender"/);
    assert.ok(!/[\u0080-\u009f\u2028\u2029\u202a-\u202e]/.test(line), line);
    assert.match(line, /\\u009b/);
    assert.equal(JSON.parse(line).text, text);
    await sender.close();
    assert.equal(await reader.exit(), 0);
  } finally {
    assert.equal(await stop(serve), 0);
  }
});

Deno.test("a flood from one address reaches the room only at the allowed rate; honest clients keep chatting", async () => {
  await withServer({ maxPerAddress: 16 }, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    const bob = await TestClient.join(server, "bob");
    clients.push(ada, bob);
    const started = performance.now();
    const floods = [];
    for (let i = 0; i < 16; i++) {
      const a = await attacker(server.addr.port);
      const lines = [`{"type":"hello","version":1,"name":"flood${i}"}`];
      for (let n = 0; n < 2000; n++) lines.push(`{"type":"msg","text":"spam ${n}"}`);
      a.socket.write(lines.join("\n") + "\n");
      floods.push(a);
    }
    await stillChatting(ada, bob, "through the flood");
    await stillChatting(bob, ada, "and back");
    const seconds = (performance.now() - started) / 1000;
    const spam = bob.frames.received.filter((f) => f.type === "msg" && f.from.startsWith("flood"));
    // Each flooder: its burst (40) and slack (5), then 20 a second.
    const allowed = 16 * (40 + 5 + 20 * (seconds + 1));
    assert.ok(spam.length <= allowed, `${spam.length} spam messages in ${seconds.toFixed(1)} s`);
    assert.ok(spam.length < 16 * 2000 / 4, "most of the flood was refused");
    for (const a of floods) a.socket.destroy();
  });
});

Deno.test("rooms nobody is in cannot keep others from making one; an operator's topic keeps a room", async () => {
  // Without a grace period, a room left empty may give way at once.
  await withServer({ maxRooms: 4, opToken: "t", nameGraceMs: 0 }, async (server, clients) => {
    const op = await TestClient.join(server, "teacher", { op: "t" });
    const squatter = await TestClient.join(server, "squatter");
    clients.push(op, squatter);
    await op.send({ type: "join", room: "pinned" });
    await op.send({ type: "topic", text: "the instructor's room" });
    await op.frames.waitFor((f) => f.type === "event" && f.event === "topic", "topic");
    for (const room of ["a", "b"]) {
      await squatter.send({ type: "join", room });
      await squatter.frames.waitFor((f) => f.type === "room" && f.room === room, `in ${room}`);
      await squatter.send({ type: "topic", text: "mine now" });
      await squatter.send({ type: "msg", text: "squatting" });
      await squatter.frames.waitFor((f) => f.type === "msg" && f.room === room, "said");
    }
    await op.send({ type: "join", room: "lobby" });
    await squatter.send({ type: "join", room: "lobby" });
    await squatter.frames.waitFor((f) => f.type === "room" && f.room === "lobby", "left them");
    // lobby, pinned, a, b: full. A newcomer's room pushes out the empty room left longest ago.
    const honest = await TestClient.join(server, "honest", { room: "team1" });
    clients.push(honest);
    await op.send({ type: "rooms" });
    const list = await op.frames.waitFor((f) => f.type === "rooms", "rooms");
    assert.deepEqual(list.type === "rooms" && list.rooms.map((r) => r.name), [
      "b",
      "lobby",
      "pinned",
      "team1",
    ]);
  });
});

Deno.test("a reader that never reads is cut off, even owing little; it cannot pile up replays", async () => {
  const big = { ...FAST, roomHistoryBytes: 64 * 1024 * 1024, historyBytes: 64 * 1024 * 1024 };
  await withServer(
    { ...big, stallTimeoutMs: 500, livenessCheckMs: 50 },
    async (server, clients) => {
      const writer = await TestClient.join(server, "writer", { room: "busy" });
      clients.push(writer);
      // 15 MB of history: more than the kernel's socket buffers hold.
      for (let i = 1; i <= 1000; i++) {
        await writer.send({ type: "msg", text: `${i} ${"x".repeat(15_000)}` });
        if (i % 50 === 0) await writer.waitForMessages(i);
      }
      // A hello asking for all of it and, in the same breath, a move to a quiet room.
      const hopper = await TestClient.connect(server);
      clients.push(hopper);
      await hopper.sendRaw(
        '{"type":"hello","version":1,"name":"hopper","room":"busy","history":1000}\n' +
          '{"type":"join","room":"quiet","ref":1}\n',
      );
      const refused = await hopper.frames.waitFor((f) => f.type === "error", "the join refused");
      assert.match(
        refused.type === "error" ? refused.message : "",
        /still sending you the earlier/,
      );
      await hopper.waitForMessages(1000);

      // The same, by a client that never reads a byte: it is cut off after the stall timeout.
      const stuck = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
      await stuck.write(
        new TextEncoder().encode(
          '{"type":"hello","version":1,"name":"stuck","room":"busy","history":1000}\n',
        ),
      );
      const left = await writer.waitForEvent("leave", "stuck");
      assert.equal(left.type === "event" && left.reason, "slow_consumer");
      stuck.close();
    },
  );
});

Deno.test("a mute holds through a rename and a reconnect from the same address", async () => {
  await withServer({ opToken: "t", maxPerAddress: 16 }, async (server, clients) => {
    const op = await TestClient.join(server, "teacher", { op: "t" });
    clients.push(op);
    const eve = await attacker(server.addr.port);
    eve.socket.write('{"type":"hello","version":1,"name":"eve"}\n');
    await op.waitForEvent("join", "eve");
    await op.send({ type: "mute", name: "eve", minutes: 5 });
    await op.frames.waitFor((f) => f.type === "event" && f.event === "mute", "mute");
    eve.socket.write('{"type":"nick","name":"eve2"}\n{"type":"msg","text":"renamed","ref":1}\n');
    const again = await attacker(server.addr.port);
    again.socket.write('{"type":"hello","version":1,"name":"mallory"}\n');
    again.socket.write('{"type":"msg","text":"new name","ref":2}\n');
    await deadline(
      (async () => {
        while (
          !(eve.received().includes('"code":"muted"') &&
            again.received().includes('"code":"muted"'))
        ) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })(),
      5000,
      "both refused as muted",
    );
    assert.ok(!op.frames.received.some((f) => f.type === "msg" && f.from !== "teacher"));
    eve.socket.destroy();
    again.socket.destroy();
  });
});

Deno.test("knowing the password does not reset the wait for guessing the operator token", async () => {
  await withServer({ password: "pw", opToken: "secret-token" }, async (server, clients) => {
    const answers: string[] = [];
    for (let i = 0; i < 3; i++) {
      const client = await TestClient.connect(server);
      clients.push(client);
      await client.send({ type: "hello", version: 1, password: "pw", op: `guess${i}` });
      const error = await client.frames.waitFor((f) => f.type === "error", "refusal of the token");
      answers.push(error.type === "error" ? error.message : "");
    }
    assert.match(answers[0], /wrong operator token; the next try .* in 1 s/);
    assert.match(answers[1], /too many wrong operator tokens/);
    assert.match(answers[2], /too many wrong operator tokens/);
  });
});

Deno.test("an IPv4 client of a server on :: counts as its IPv4 address", async () => {
  await withServer({ hostname: "::", maxPerAddress: 2 }, async (server, clients) => {
    const open = [];
    for (let i = 0; i < 3; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
      const client = TestClient.fromConn(conn);
      clients.push(client);
      open.push(client);
    }
    const third = await open[2].frames.waitFor((f) => f.type === "error", "refusal");
    assert.match(third.type === "error" ? third.message : "", /^127\.0\.0\.1 already has 2/);
  });
});

Deno.test("one address's connections together cannot bury the room in a burst", async () => {
  await withServer({ maxPerAddress: 16 }, async (server, clients) => {
    const reader = await TestClient.join(server, "reader");
    clients.push(reader);
    const senders = [];
    const line = `{"type":"msg","text":"${"z".repeat(15_000)}"}\n`;
    for (let i = 0; i < 16; i++) {
      const a = await attacker(server.addr.port);
      a.socket.write(`{"type":"hello","version":1,"name":"b${i}"}\n${line.repeat(4)}`);
      senders.push(a);
    }
    await reader.send({ type: "ping", data: "sync" });
    await reader.frames.waitFor((f) => f.type === "pong", "pong");
    await deadline(
      (async () => {
        while (
          senders.some((s) =>
            (s.received().match(/"code":"rate_limited"|"type":"msg"/g) ?? []).length < 4
          )
        ) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })(),
      10_000,
      "every line answered",
    );
    const relayed = reader.frames.received.filter((f) => f.type === "msg").length;
    // Four longest lines at once for the whole address, and a quarter second's worth on top.
    assert.ok(relayed <= 6, `${relayed} of 64 big lines relayed at once`);
    for (const s of senders) s.socket.destroy();
  });
});

Deno.test("a mute covers the address; /unban of a classmate there says whose mute it is", async () => {
  await withServer({ opToken: "t", maxPerAddress: 16 }, async (server, clients) => {
    const teacher = await TestClient.join(server, "teacher", { op: "t" });
    clients.push(teacher);
    const eve = await attacker(server.addr.port);
    eve.socket.write('{"type":"hello","version":1,"name":"eve"}\n');
    const kim = await attacker(server.addr.port);
    kim.socket.write('{"type":"hello","version":1,"name":"kim"}\n');
    await teacher.waitForEvent("join", "kim");
    await teacher.send({ type: "mute", name: "eve" });
    await teacher.frames.waitFor((f) => f.type === "event" && f.event === "mute", "mute");
    await teacher.send({ type: "unban", name: "kim", ref: 1 });
    const answer = await teacher.frames.waitFor((f) => f.type === "error" && f.ref === 1, "answer");
    assert.match(
      answer.type === "error" ? answer.message : "",
      /shares an address with "eve".*\/unban eve/,
    );
    eve.socket.destroy();
    kim.socket.destroy();
  });
});

Deno.test("a room left empty a moment ago is not given away while its people may come back", async () => {
  await withServer({ maxRooms: 2, nameGraceMs: 60_000 }, async (server, clients) => {
    const bob = await TestClient.join(server, "bob", { room: "team2" });
    await bob.send({ type: "msg", text: "ours" });
    await bob.waitForMessages(1);
    await bob.close(); // a Wi-Fi blink
    const other = await TestClient.connect(server);
    clients.push(other);
    await other.send({ type: "hello", version: 1, name: "other", room: "team3" });
    await other.waitForError("too_many_rooms");
  });
});

import assert from "node:assert/strict";
import { PlainClient, TestClient, withServer } from "./helpers.ts";
import type { ServerFrame } from "../protocol.ts";

const texts = (frames: ServerFrame[]) =>
  frames.flatMap((f) => f.type === "msg" ? [`${f.room}:${f.from}:${f.text}`] : []);

Deno.test("rooms isolate messages, notices and who; /rooms lists them with topics", async () => {
  await withServer({}, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    const bob = await TestClient.join(server, "bob", { room: "team2" });
    const cy = await TestClient.join(server, "cy", { room: "Team2" }); // room names ignore case
    clients.push(ada, bob, cy);
    assert.equal(cy.welcome?.room, "team2");
    assert.deepEqual(cy.welcome?.users, ["bob", "cy"]);
    await bob.waitForEvent("join", "cy");

    await bob.send({ type: "topic", text: "sockets lab" });
    await cy.frames.waitFor((f) => f.type === "event" && f.event === "topic", "topic event");
    await bob.send({ type: "msg", text: "team only" });
    await ada.send({ type: "msg", text: "lobby only" });
    await cy.frames.waitFor((f) => f.type === "msg" && f.text === "team only", "team message");
    await ada.frames.waitFor((f) => f.type === "msg" && f.text === "lobby only", "own echo");

    await ada.send({ type: "rooms" });
    const rooms = await ada.frames.waitFor((f) => f.type === "rooms", "room list");
    assert.deepEqual(rooms.type === "rooms" && rooms.rooms, [
      { name: "lobby", members: 1, topic: "" },
      { name: "team2", members: 2, topic: "sockets lab" },
    ]);
    await cy.send({ type: "who" });
    const who = await cy.frames.waitFor((f) => f.type === "who", "who");
    assert.deepEqual(who.type === "who" && [who.room, who.users], ["team2", ["bob", "cy"]]);

    // Moving: the old room hears the leave, the new one the join.
    await cy.send({ type: "join", room: "lobby" });
    const moved = await cy.frames.waitFor((f) => f.type === "room", "room frame");
    assert.equal(moved.type === "room" && moved.room, "lobby");
    const left = await bob.waitForEvent("leave", "cy");
    assert.equal(left.type === "event" && left.reason, "went to lobby");
    await ada.waitForEvent("join", "cy");

    assert.deepEqual(texts(ada.frames.received), ["lobby:ada:lobby only"]);
    // Someone entering the lobby now is announced there, and not in team2.
    const dee = await TestClient.join(server, "dee");
    clients.push(dee);
    await ada.waitForEvent("join", "dee");
    await bob.send({ type: "ping", data: "sync" });
    await bob.frames.waitFor((f) => f.type === "pong", "pong"); // bob has had the time to see it
    assert.ok(
      !bob.frames.received.some((f) =>
        f.type === "event" && f.event === "join" && f.name === "dee"
      ),
    );
    assert.ok(!texts(bob.frames.received).includes("lobby:ada:lobby only"));
    assert.ok(!ada.frames.received.some((f) => f.type === "event" && f.event === "topic"));
  });
});

Deno.test("bad room names and too many rooms are refused", async () => {
  await withServer({ maxRooms: 2 }, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    clients.push(ada);
    await ada.send({ type: "join", room: "no spaces" });
    await ada.waitForError("bad_room");
    await ada.send({ type: "join", room: "second" });
    await ada.frames.waitFor((f) => f.type === "room", "second room");
    await ada.send({ type: "join", room: "third" });
    await ada.waitForError("too_many_rooms");
  });
});

Deno.test("direct messages reach only their target, across rooms, and echo to the sender", async () => {
  await withServer({}, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    const bob = await TestClient.join(server, "bob", { room: "elsewhere" });
    const eve = await TestClient.join(server, "eve");
    clients.push(ada, bob, eve);
    await ada.send({ type: "dm", to: "BOB", text: "psst", ref: 9 });
    const got = await bob.frames.waitFor((f) => f.type === "dm", "dm at bob");
    assert.deepEqual(got.type === "dm" && [got.from, got.to, got.text], ["ada", "bob", "psst"]);
    const echo = await ada.frames.waitFor((f) => f.type === "dm", "dm echo");
    assert.equal(echo.type === "dm" && echo.ref, 9);
    await ada.send({ type: "dm", to: "nobody", text: "hello?", ref: 10 });
    const error = await ada.waitForError("no_such_user");
    assert.equal(error.type === "error" && error.ref, 10);
    // eve, in the same room as ada, saw none of it.
    await eve.send({ type: "ping", data: "sync" });
    await eve.frames.waitFor((f) => f.type === "pong", "pong");
    assert.ok(!eve.frames.received.some((f) => f.type === "dm" || f.type === "msg"));
  });
});

Deno.test("history on joining is exact at the seam, even while messages keep coming", async () => {
  await withServer({ rate: 100_000, burst: 100_000 }, async (server, clients) => {
    const sender = await TestClient.join(server, "sender");
    clients.push(sender);
    const total = 400;
    const sending = (async () => {
      for (let i = 1; i <= total; i++) await sender.send({ type: "msg", text: `m${i}` });
    })();
    await sender.waitForMessages(100); // join in the middle of the stream
    const late = await TestClient.join(server, "late", { history: 30 });
    clients.push(late);
    await sending;
    await late.frames.waitFor((f) => f.type === "msg" && f.text === `m${total}`, "last message");

    const history = late.frames.received.find((f) => f.type === "history");
    assert.equal(history?.type === "history" && history.count, 30);
    const seqs = late.messages().map((m) => m.seq);
    const first = seqs[0];
    assert.deepEqual(seqs, Array.from({ length: total - first + 1 }, (_, i) => first + i));
    const replayed = late.messages().filter((m) => m.replay);
    assert.equal(replayed.length, 30);
    assert.equal(replayed.at(-1)!.seq, late.welcome!.seq, "replay ends where the welcome says");
  });
});

Deno.test("resuming with since replays exactly what was missed, and says what is gone", async () => {
  await withServer({ rate: 100_000, burst: 100_000, retention: 5 }, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    const bob = await TestClient.join(server, "bob");
    clients.push(ada);
    for (let i = 1; i <= 3; i++) await ada.send({ type: "msg", text: `a${i}` });
    await bob.waitForMessages(3);
    const seen = bob.messages().at(-1)!.seq;
    const token = bob.welcome!.token;
    await bob.close(); // the connection drops
    await ada.waitForEvent("leave", "bob");
    for (let i = 4; i <= 6; i++) await ada.send({ type: "msg", text: `a${i}` });
    await ada.waitForMessages(6);

    const back = await TestClient.join(server, "bob", { since: seen, token });
    clients.push(back);
    await back.waitForMessages(3);
    assert.deepEqual(back.messages().map((m) => [m.text, m.replay]), [
      ["a4", true],
      ["a5", true],
      ["a6", true],
    ]);
    const history = back.frames.received.find((f) => f.type === "history");
    assert.deepEqual(history, {
      type: "history",
      room: "lobby",
      epoch: bob.welcome!.epoch,
      count: 3,
      gone: 0,
    });

    for (let i = 7; i <= 12; i++) await ada.send({ type: "msg", text: `a${i}` });
    await ada.waitForMessages(12);
    const old = await TestClient.join(server, "old", { since: 0 });
    clients.push(old);
    const past = await old.frames.waitFor((f) => f.type === "history", "history");
    assert.ok(past.type === "history" && past.gone > 0 && past.count + past.gone === 12);
  });
});

Deno.test("a reconnect with the token takes the name over from a stale connection, silently", async () => {
  await withServer({}, async (server, clients) => {
    const ada = await TestClient.join(server, "ada");
    const stale = await TestClient.join(server, "bob");
    clients.push(ada, stale);
    await ada.waitForEvent("join", "bob");
    const impostor = await TestClient.connect(server);
    clients.push(impostor);
    await impostor.send({ type: "hello", version: 1, name: "bob", token: "guess" });
    await impostor.waitForError("name_taken");

    const fresh = await TestClient.join(server, "bob", { token: stale.welcome!.token });
    clients.push(fresh);
    await stale.frames.waitForEnd("the stale connection is closed");
    await fresh.send({ type: "msg", text: "back" });
    await ada.frames.waitFor((f) => f.type === "msg" && f.text === "back", "message from bob");
    const bobEvents = ada.frames.received.filter((f) => f.type === "event" && f.name === "bob");
    assert.deepEqual(bobEvents.map((f) => f.type === "event" && f.event), ["join"]);
  });
});

Deno.test("with --db, a restarted server keeps rooms, topics and messages, and ids go on", async () => {
  const dir = await Deno.makeTempDir();
  const db = `${dir}/chat.db`;
  try {
    let lastId = 0;
    await withServer({ db, rate: 1000, burst: 1000 }, async (server, clients) => {
      const ada = await TestClient.join(server, "ada", { room: "lab" });
      clients.push(ada);
      await ada.send({ type: "topic", text: "day one" });
      for (let i = 1; i <= 50; i++) await ada.send({ type: "msg", text: `m${i}`, ref: i });
      await ada.waitForMessages(50); // each echo means: stored
      lastId = ada.messages().at(-1)!.id;
    });
    await withServer({ db }, async (server, clients) => {
      const bob = await TestClient.join(server, "bob", { room: "lab", history: 1000 });
      clients.push(bob);
      assert.equal(bob.welcome?.topic, "day one");
      await bob.waitForMessages(50);
      assert.deepEqual(
        bob.messages().map((m) => m.text),
        Array.from({ length: 50 }, (_, i) => `m${i + 1}`),
      );
      await bob.send({ type: "msg", text: "after restart" });
      const next = await bob.frames.waitFor((f) => f.type === "msg" && !f.replay, "live message");
      assert.ok(next.type === "msg" && next.seq === 51 && next.id > lastId);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("plain-text clients have rooms and private messages too", async () => {
  await withServer({}, async (server, clients) => {
    const ada = await TestClient.join(server, "ada", { room: "team" });
    clients.push(ada);
    await ada.send({ type: "msg", text: "before nc came" });
    const nc = await PlainClient.connect(server);
    try {
      await nc.waitFor((l) => l.startsWith("* Welcome"), "banner");
      await nc.send("/nick carol\n/join team\n");
      await nc.waitFor((l) => l.includes("1 earlier message(s) in team"), "history header");
      await nc.waitFor((l) => /ada: before nc came$/.test(l), "history line");
      await nc.waitFor((l) => l === "* (end of earlier messages)", "history end");
      await nc.send("/msg ada hello in private\n/topic team work\n/rooms\n");
      const dm = await ada.frames.waitFor((f) => f.type === "dm", "dm from nc");
      assert.deepEqual(dm.type === "dm" && [dm.from, dm.text], ["carol", "hello in private"]);
      await nc.waitFor(
        (l) => l.includes("* rooms: lobby (0), team (2) — topic: team work"),
        "room list",
      );
      await ada.send({ type: "dm", to: "carol", text: "got it" });
      await nc.waitFor((l) => /\(private\) ada → carol: got it$/.test(l), "dm line");
    } finally {
      await nc.close();
    }
  });
});

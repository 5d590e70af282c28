import assert from "node:assert/strict";
import { parseAddress } from "../common/cli.ts";
import { parseInput, requestFrame } from "../text/commands.ts";
import { TokenBucket } from "../common/token_bucket.ts";
import { OutboundQueue } from "../server/outbound_queue.ts";
import { FrameArena } from "../server/frame_arena.ts";
import { OutboundBudget } from "../server/outbound_budget.ts";
import { Encodings, jsonLines, textLines } from "../server/codec.ts";
import { nameKey } from "../text/names.ts";
import { complete, Completer } from "../client/complete.ts";
import { mentions, rowsOf } from "../client/ui.ts";
import { SERVE_HELP } from "../server.ts";
import { JOIN_HELP } from "../client.ts";
import { LOG_HELP } from "../transcript.ts";

Deno.test("token bucket: a burst, then the rate, and says how long to wait", () => {
  const bucket = new TokenBucket({ rate: 10, burst: 3 });
  assert.deepEqual([bucket.take(0), bucket.take(0), bucket.take(0)], [0, 0, 0]);
  assert.deepEqual(bucket.take(0), 100);
  assert.deepEqual(bucket.take(100), 0);
  assert.deepEqual(bucket.take(10_000), 0); // refills up to the burst, not beyond
  assert.deepEqual([bucket.take(10_000), bucket.take(10_000), bucket.take(10_000)], [0, 0, 100]);
});

Deno.test("token bucket: refusals in a row get retry times a token apart, so retries don't collide", () => {
  const bucket = new TokenBucket({ rate: 10, burst: 1 });
  assert.equal(bucket.take(0), 0);
  const waits = [bucket.take(0), bucket.take(0), bucket.take(0)];
  assert.deepEqual(waits, [100, 200, 300]);
  // Each retry, at the time it was told, finds its token.
  assert.deepEqual(waits.map((ms) => bucket.take(ms)), [0, 0, 0]);
});

Deno.test("token bucket: slack lets a client keeping to the rate through when messages bunch up", () => {
  const strict = new TokenBucket({ rate: 10, burst: 1 });
  const lenient = new TokenBucket({ rate: 10, burst: 1, slack: 3 });
  // One message every 100 ms on average, but the network holds three back and delivers them together.
  const arrivals = [0, 100, 200, 500, 500, 500, 600, 700];
  assert.ok(arrivals.map((t) => strict.take(t)).some((wait) => wait > 0));
  assert.deepEqual(arrivals.map((t) => lenient.take(t)), arrivals.map(() => 0));
});

Deno.test("token bucket: full once refilled and no retry time is owed, when it acts as a new one", () => {
  const bucket = new TokenBucket({ rate: 10, burst: 2 });
  assert.equal(bucket.full(0), true);
  bucket.take(0);
  assert.equal(bucket.full(50), false);
  assert.equal(bucket.full(100), true);
  const strict = new TokenBucket({ rate: 10, burst: 1 });
  strict.take(0);
  assert.deepEqual([strict.take(0), strict.take(0), strict.take(0)], [100, 200, 300]);
  assert.equal(strict.full(150), false, "refilled, but owes the last refusal its token at 300");
  assert.equal(strict.full(300), true);
});

Deno.test("outbound queue: bytes queued during a write go out joined, in order, each batch untouched until its write ends", async () => {
  const text = new TextDecoder();
  // A socket that takes at most 5 bytes a write, and answers each write only when told to.
  const taken: string[] = [];
  let answer: (() => void) | undefined;
  const sink = {
    write(bytes: Uint8Array): Promise<number> {
      const n = Math.min(bytes.length, 5);
      return new Promise((resolve) => {
        answer = () => {
          // What the socket takes is read when it answers: a buffer reused too early shows here.
          taken.push(text.decode(bytes.subarray(0, n)));
          resolve(n);
        };
      });
    },
  };
  const queue = new OutboundQueue(sink, { limit: 1024 });
  const push = (s: string) => assert.ok(queue.push(new TextEncoder().encode(s)));
  const step = async () => {
    const next = answer!;
    answer = undefined;
    next();
    await new Promise((resolve) => setTimeout(resolve, 0));
  };
  push("one\n");
  for (const line of ["two\n", "three\n", "four\n"]) push(line);
  await step(); // "one\n" done: the three waiting lines go as one batch
  for (const line of ["five\n", "six\n"]) push(line); // joined into the same buffer, later
  while (answer) await step();
  assert.equal(taken.join(""), "one\ntwo\nthree\nfour\nfive\nsix\n");
  assert.deepEqual(taken, ["one\n", "two\nt", "hree\n", "four\n", "five\n", "six\n"]);
  assert.equal(queue.bytes, 0);
});

Deno.test("outbound queue: a room's frames, kept together, go out as they stand and in order, a slab at a time", async () => {
  const writes: Uint8Array[] = [];
  let answer: (() => void) | undefined;
  const sink = {
    write(bytes: Uint8Array): Promise<number> {
      writes.push(bytes);
      return new Promise((resolve) => answer = () => resolve(bytes.length));
    },
  };
  const queue = new OutboundQueue(sink, { limit: 1024 * 1024 });
  const arena = new FrameArena();
  const frame = (i: number) => new TextEncoder().encode(`${String(i).padStart(8, "0")}\n`);
  const kept = Array.from({ length: 5_000 }, (_, i) => arena.keep(frame(i))); // 45 KB: two slabs
  for (const bytes of kept) assert.ok(queue.push(bytes));
  while (answer) {
    const next = answer;
    answer = undefined;
    next();
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  // The first frame alone (the queue was idle), then the rest of its slab, then the next slab's.
  assert.equal(writes.length, 3);
  assert.equal(writes[1].buffer, kept[1].buffer); // not a copy
  assert.notEqual(writes[2].buffer, writes[1].buffer);
  const text = new TextDecoder().decode(new Uint8Array(writes.flatMap((w) => [...w])));
  assert.equal(text, kept.map((_, i) => `${String(i).padStart(8, "0")}\n`).join(""));
});

Deno.test("outbound queue: unpin copies what waits out of the room's slabs, leaving the write under way alone", async () => {
  const text = new TextDecoder();
  const writes: { bytes: Uint8Array; taken?: string }[] = [];
  let answer: (() => void) | undefined;
  const sink = {
    write(bytes: Uint8Array): Promise<number> {
      const write: { bytes: Uint8Array; taken?: string } = { bytes };
      writes.push(write);
      return new Promise((resolve) =>
        answer = () => {
          write.taken = text.decode(bytes); // read when the write ends, as a socket would
          resolve(bytes.length);
        }
      );
    },
  };
  const step = async () => {
    const next = answer!;
    answer = undefined;
    next();
    await new Promise((resolve) => setTimeout(resolve, 0));
  };
  const queue = new OutboundQueue(sink, { limit: 1024 });
  const encode = (s: string) => new TextEncoder().encode(s);
  queue.push(encode("a\n"));
  queue.push(encode("b\n"));
  queue.push(encode("c\n"));
  await step(); // "b\nc\n" is now being written, joined in the queue's own buffer
  const arena = new FrameArena();
  queue.push(arena.keep(encode("d\n")));
  queue.push(arena.keep(encode("e\n")));
  queue.unpin();
  while (answer) await step();
  assert.deepEqual(writes.map((w) => w.taken), ["a\n", "b\nc\n", "d\ne\n"]);
  assert.notEqual(writes[2].bytes.buffer, arena.keep(encode("f\n")).buffer);
});

Deno.test("encodings: a frame's first encoding is kept in the room's arena, after the one before; a second is not", () => {
  const arena = new FrameArena();
  const frame = (text: string) =>
    new Encodings({ type: "msg", id: 1, seq: 1, ts: 0, room: "lobby", from: "ada", text }, arena);
  const one = frame("one").for(jsonLines);
  const two = frame("two");
  const json = two.for(jsonLines);
  assert.equal(json.buffer, one.buffer);
  assert.equal(json.byteOffset, one.byteOffset + one.length);
  assert.notEqual(two.for(textLines).buffer, one.buffer);
  assert.equal(two.for(jsonLines), json); // encoded once
});

Deno.test("overload: readers far behind hold the senders up for a moment after the server was behind for everyone, not otherwise, and not for long; one alone only until the others catch up", async () => {
  const KiB = 1024;
  const clock = { now: 0 };
  const budget = new OutboundBudget({ perConnection: 64 * KiB, clock });
  budget.connections = 10; // the budget: 10 x 64 KiB x 0.5 = 320 KiB
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  // The other queues fill up (the server is behind for everyone), then drain.
  const overloadPasses = () => {
    budget.change(300 * KiB);
    assert.equal(budget.behind(0), true);
    budget.change(-300 * KiB);
  };
  // A reader past half its limit whose socket takes one byte when told to, and otherwise nothing.
  const farBehind = () => {
    const answers: (() => void)[] = [];
    const sink = { write: () => new Promise<number>((resolve) => answers.push(() => resolve(1))) };
    const queue = new OutboundQueue(sink, { limit: 256 * KiB, budget, clock });
    queue.push(new Uint8Array(150 * KiB)); // counted as 64 KiB
    return () => answers.shift()!();
  };
  const takeOne = farBehind();
  assert.equal(budget.behind(0), false); // the server keeps up with everyone else: a slow reader
  overloadPasses();
  // Alone, it holds the senders up only until the other readers have nearly caught up
  // (an eighth of the budget, 40 KiB), never until it reads: it may have stopped reading.
  budget.change(30 * KiB);
  assert.equal(budget.behind(0), false);
  budget.change(20 * KiB);
  assert.equal(budget.behind(0), true);
  budget.change(-50 * KiB);
  const takeOneToo = farBehind();
  await sleep(30);
  assert.equal(budget.behind(0), true); // two, a moment after the server was behind for everyone
  await sleep(300);
  assert.equal(budget.behind(0), false); // but not any more: slow readers again
  await sleep(800);
  overloadPasses();
  // They have taken nothing for over a second: they stopped reading, and hold nobody up.
  assert.equal(budget.behind(0), false);
  clock.now = 2900;
  takeOne(); // they take a byte (and the budget looks again within a few milliseconds)
  takeOneToo();
  await sleep(30);
  overloadPasses();
  assert.equal(budget.behind(0), true);
  clock.now = 3100; // but they have been that far behind for over 3 s: they hold nobody up any more
  await sleep(30);
  overloadPasses();
  assert.equal(budget.behind(0), false);
});

Deno.test("name keys: the same key for a name asked again, after many other names, and for a long one", () => {
  const ada = nameKey("\u0430da"); // Cyrillic а
  for (let i = 0; i < 3000; i++) nameKey(`name${i}`);
  assert.equal(nameKey("\u0430da"), ada);
  assert.equal(ada, nameKey("ADA"));
  const long = "\u0430".repeat(100);
  assert.equal(nameKey(long), nameKey("a".repeat(100)));
  assert.equal(nameKey(long), nameKey(long));
});

Deno.test("input: a typed command becomes the frame it asks the server for", () => {
  const frame = (line: string) => requestFrame(parseInput(line));
  assert.deepEqual(frame("hi"), { type: "msg", text: "hi" });
  assert.deepEqual(frame("/msg bob hi"), { type: "dm", to: "bob", text: "hi" });
  assert.deepEqual(frame("/join #lab"), { type: "join", room: "lab" });
  assert.deepEqual(frame("/rooms"), { type: "rooms" });
  assert.deepEqual(frame("/topic quiz at 3"), { type: "topic", text: "quiz at 3" });
  assert.deepEqual(frame("/nick ada"), { type: "nick", name: "ada" });
  assert.deepEqual(frame("/who"), { type: "who" });
  for (const local of ["/help", "/quit", "", "/dance", "/nick"]) {
    assert.equal(frame(local), undefined, local);
  }
});

Deno.test("input: commands, messages, and the lab's !DISCONNECT", () => {
  assert.deepEqual(parseInput("hello /nick"), { kind: "say", text: "hello /nick" });
  assert.deepEqual(parseInput("/nick  ada "), { kind: "nick", name: "ada" });
  assert.deepEqual(parseInput("/NICK"), { kind: "usage", message: "usage: /nick NAME" });
  assert.deepEqual(parseInput("/who"), { kind: "who" });
  assert.deepEqual(parseInput("/quit"), { kind: "quit" });
  assert.deepEqual(parseInput("!DISCONNECT"), { kind: "quit" });
  assert.deepEqual(parseInput("//slash"), { kind: "say", text: "/slash" });
  assert.deepEqual(parseInput("/dance"), { kind: "unknown", command: "dance" });
  assert.deepEqual(parseInput("   "), { kind: "empty" });
  assert.deepEqual(parseInput("/msg bob  see you at 3 "), {
    kind: "msg",
    to: "bob",
    text: "see you at 3",
  });
  assert.deepEqual(parseInput("/msg bob"), { kind: "usage", message: "usage: /msg NAME TEXT" });
  assert.deepEqual(parseInput("/join #team-2"), { kind: "join", room: "team-2" });
  assert.deepEqual(parseInput("/topic Lab 9: sockets"), { kind: "topic", text: "Lab 9: sockets" });
  assert.deepEqual(parseInput("/rooms"), { kind: "rooms" });
});

Deno.test("addresses: host, host:port, IPv6 in brackets", () => {
  assert.deepEqual(parseAddress("lab-pc", 5050), { hostname: "lab-pc", port: 5050 });
  assert.deepEqual(parseAddress("10.0.0.5:6000", 5050), { hostname: "10.0.0.5", port: 6000 });
  assert.deepEqual(parseAddress("[::1]:7000", 5050), { hostname: "::1", port: 7000 });
  assert.deepEqual(parseAddress("::1", 5050), { hostname: "::1", port: 5050 });
  assert.deepEqual(parseAddress("host:99999", 5050), undefined);
  assert.deepEqual(parseAddress("a b", 5050), undefined);
});

Deno.test("the README documents every flag each command's --help lists", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  for (const help of [SERVE_HELP, JOIN_HELP, LOG_HELP]) {
    for (const flag of new Set(help.match(/--[a-z][a-z-]+/g))) {
      assert.ok(new RegExp(`${flag}(?![a-z-])`).test(readme), `README lacks ${flag}`);
    }
  }
});

Deno.test("completion: commands, names at the start of a line and after /msg, rooms after /join; Tab again cycles", () => {
  const known = {
    commands: ["/join", "/me", "/msg"],
    names: ["piperina", "pippa"],
    rooms: ["team2", "teal"],
  };
  assert.deepEqual(complete("/jo", known), ["/join "]);
  assert.deepEqual(complete("/m", known), ["/me ", "/msg "]);
  assert.deepEqual(complete("/join #te", known), ["/join team2", "/join teal"]);
  assert.deepEqual(complete("/msg PIPE", known), ["/msg piperina "]);
  assert.deepEqual(complete("pip", known), ["piperina: ", "pippa: "]);
  assert.deepEqual(complete("hello pip", known), [], "only at the start of a line");
  const completer = new Completer(() => known);
  assert.deepEqual(completer.complete("pip")[0], ["piperina: "]);
  assert.deepEqual(completer.complete("piperina: ")[0], ["pippa: "]);
  assert.deepEqual(completer.complete("pippa: ")[0], ["piperina: "]);
  assert.deepEqual(completer.complete("zzz")[0], []);
});

Deno.test("terminal width: wide characters take two columns, marks none, and lines wrap by columns", () => {
  assert.equal(rowsOf("", 80), 1);
  assert.equal(rowsOf("x".repeat(80), 80), 1);
  assert.equal(rowsOf("x".repeat(81), 80), 2);
  assert.equal(rowsOf("李".repeat(40), 80), 1);
  assert.equal(rowsOf("李".repeat(41), 80), 2);
  assert.equal(rowsOf("👍".repeat(41), 80), 2);
  assert.equal(rowsOf("e\u0301".repeat(80), 80), 1, "a combining accent takes no column");
});

Deno.test("mentions: a name as a word of its own, in any case", () => {
  assert.ok(mentions("ada: look", "Ada"));
  assert.ok(mentions("thanks, ADA!", "ada"));
  assert.ok(!mentions("adamant", "ada"));
  assert.ok(!mentions("nevada", "ada"));
  assert.ok(mentions("nevada and ada", "ada"));
});

Deno.test("mentions: a 16 KB message made of the name is looked through without running out of stack", () => {
  assert.ok(!mentions("ad".repeat(8192), "ada"));
  assert.ok(mentions("ad".repeat(8192) + " ada", "ada"));
});

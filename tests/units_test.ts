import assert from "node:assert/strict";
import { parseAddress } from "../common/cli.ts";
import { parseInput, requestFrame } from "../text/commands.ts";
import { TokenBucket } from "../common/token_bucket.ts";
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

/**
 * PROTOCOL.md is a contract: its example frames parse, its tables list
 * every error code and hello field, and its example sessions, run against a
 * live server, get exactly the frames it shows.
 */
import assert from "node:assert/strict";
import { startServer, TestClient } from "./helpers.ts";
import { parseServeArgs } from "../server.ts";
import { ERROR_CODES, parseClientFrame, parseServerFrame, type ServerFrame } from "../protocol.ts";

const doc = await Deno.readTextFile(new URL("../PROTOCOL.md", import.meta.url));
const encoder = new TextEncoder();

/** The text of the section under `## title`. */
function section(title: string): string {
  const start = doc.indexOf(`\n## ${title}\n`);
  assert.ok(start !== -1, `PROTOCOL.md has a section "${title}"`);
  const end = doc.indexOf("\n## ", start + 1);
  return doc.slice(start, end === -1 ? undefined : end);
}

/** The JSON objects written as inline code in a section's table rows. */
function tableFrames(title: string): Record<string, unknown>[] {
  return [...section(title).matchAll(/^\| `(\{.*?\})`/gm)].map((m) => JSON.parse(m[1]));
}

/** The first column of a section's table, as code words. */
function tableKeys(title: string): string[] {
  return [...section(title).matchAll(/^\| `([a-zA-Z_]+)`/gm)].map((m) => m[1]);
}

Deno.test("PROTOCOL.md: every client frame it shows is one the server accepts", () => {
  const frames = tableFrames("Client → server");
  assert.deepEqual(
    frames.map((f) => f.type),
    [
      "hello",
      "msg",
      "msg",
      "dm",
      "join",
      "rooms",
      "topic",
      "nick",
      "who",
      "ping",
      "pong",
      "quit",
      "op",
      "kick",
      "mute",
      "ban",
      "unban",
      "motd",
    ],
  );
  for (const frame of frames) {
    const parsed = parseClientFrame(encoder.encode(JSON.stringify(frame)));
    assert.deepEqual(parsed, frame, JSON.stringify(frame));
  }
});

Deno.test("PROTOCOL.md: every server frame it shows is one a client can parse", () => {
  const frames = tableFrames("Server → client");
  assert.deepEqual(
    [...new Set(frames.map((f) => f.type))],
    ["welcome", "history", "msg", "dm", "room", "rooms", "event", "who", "pong", "ping", "error"],
  );
  for (const frame of frames) {
    const parsed = parseServerFrame(encoder.encode(JSON.stringify(frame)));
    assert.deepEqual(parsed, frame, JSON.stringify(frame));
  }
});

Deno.test("PROTOCOL.md: the errors table lists every error code, in order", () => {
  assert.deepEqual(tableKeys("Errors"), [...ERROR_CODES]);
});

Deno.test("PROTOCOL.md: the hello table lists every field the server reads", () => {
  const fields = tableKeys("Handshake");
  assert.deepEqual(fields, [
    "version",
    "name",
    "room",
    "history",
    "since",
    "epoch",
    "token",
    "dmSince",
    "password",
    "op",
  ]);
  const hello = Object.fromEntries(
    fields.map((
      f,
    ) => [f, f === "version" ? 1 : ["history", "since", "dmSince"].includes(f) ? 0 : "x"]),
  );
  assert.deepEqual(parseClientFrame(encoder.encode(JSON.stringify({ type: "hello", ...hello }))), {
    type: "hello",
    ...hello,
  });
});

/** Fields whose values change from run to run: only their type is compared. */
const VARIABLE = new Set(["id", "ts", "token", "epoch", "retryMs", "message"]);

/** Checks a received frame against the documented one: same fields, same values. */
function conforms(actual: unknown, expected: unknown, path: string): void {
  if (typeof expected !== "object" || expected === null || Array.isArray(expected)) {
    assert.deepEqual(actual, expected, path);
    return;
  }
  assert.ok(typeof actual === "object" && actual !== null, `${path} is an object`);
  const a = actual as Record<string, unknown>;
  const e = expected as Record<string, unknown>;
  assert.deepEqual(Object.keys(a).sort(), Object.keys(e).sort(), `${path}: the same fields`);
  for (const key of Object.keys(e)) {
    if (VARIABLE.has(key)) assert.equal(typeof a[key], typeof e[key], `${path}.${key}`);
    else conforms(a[key], e[key], `${path}.${key}`);
  }
}

const sessions = [...doc.matchAll(/```session\n([\s\S]*?)```/g)].map((m) => m[1].trimEnd());

Deno.test("PROTOCOL.md has example sessions", () => {
  assert.ok(sessions.length >= 4);
});

for (const [index, session] of sessions.entries()) {
  const [header, ...lines] = session.split("\n");
  Deno.test(`PROTOCOL.md: example session ${index + 1} (${header}) runs as written`, async () => {
    const options = parseServeArgs(header.replace(/^# serve\s*/, "").split(/\s+/).filter(Boolean));
    assert.ok(options !== "help");
    const server = startServer({ ...options, log: undefined });
    const clients = new Map<string, { client: TestClient; seen: number; welcome?: ServerFrame }>();
    try {
      for (const [n, line] of lines.entries()) {
        const match = /^(\w+)([<>]) (.*)$/.exec(line);
        assert.ok(match, `line ${n + 2}: "${line}" is "name> frame" or "name< frame"`);
        const [, who, direction, json] = match;
        let entry = clients.get(who);
        if (!entry) {
          clients.set(who, entry = { client: await TestClient.connect(server), seen: 0 });
        }
        const { client } = entry;
        if (direction === ">") {
          // "$bob.token" stands for the token in bob's welcome.
          const text = json.replace(/"\$(\w+)\.(\w+)"/g, (_, name, field) => {
            const welcome = clients.get(name)?.welcome as Record<string, unknown> | undefined;
            return JSON.stringify(welcome?.[field]);
          });
          await client.sendRaw(text + "\n");
          continue;
        }
        const at = entry.seen++;
        await client.frames.waitFor(
          () => client.frames.received.length > at,
          `line ${n + 2}: ${who} receives ${json}`,
        );
        const frame = client.frames.received[at];
        conforms(frame, JSON.parse(json), `line ${n + 2} (${who})`);
        if (frame.type === "welcome") entry.welcome = frame;
      }
    } finally {
      await Promise.all([...clients.values()].map(({ client }) => client.close()));
      await server.shutdown();
    }
  });
}

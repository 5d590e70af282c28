/**
 * The web port: the page's files with their security headers, the origin
 * check, and a WebSocket held to the same rules as a TCP client, against
 * clients that break every rule a browser keeps.
 */

import assert from "node:assert/strict";
import type { ChatServer, ServeOptions } from "../server.ts";
import { deadline, startServer, TestClient, withServer } from "./helpers.ts";
import { upgrade, WsTestClient } from "./ws_client.ts";
import { acceptKey } from "../server/websocket.ts";
import { originAllowed } from "../server/web.ts";

const WEB = { web: { hostname: "127.0.0.1", port: 0 } } satisfies ServeOptions;

function webPort(server: ChatServer): number {
  return server.webAddr!.port;
}

/** Joins over a WebSocket; returns the client once welcomed. */
async function joinWs(server: ChatServer, name: string, room?: string): Promise<WsTestClient> {
  const ws = await WsTestClient.open(webPort(server));
  await ws.send({ type: "hello", version: 1, name, ...(room ? { room } : {}) });
  await ws.waitFor((f) => f.type === "welcome", `welcome for ${name}`);
  return ws;
}

async function httpGet(port: number, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(request));
  let text = "";
  for await (const chunk of conn.readable) text += new TextDecoder().decode(chunk);
  return text;
}

Deno.test("the accept key is RFC 6455's", async () => {
  assert.equal(await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("the page is served with a strict CSP, and nothing else is", async () => {
  await withServer(WEB, async (server) => {
    const port = webPort(server);
    const page = await httpGet(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(page, /^HTTP\/1\.1 200 OK/);
    assert.match(page, /Content-Security-Policy: default-src 'none'; script-src 'self';/);
    assert.match(page, /X-Content-Type-Options: nosniff/);
    assert.match(page, /<label for="message"/);
    for (const path of ["/app.js", "/style.css", "/icon.svg"]) {
      assert.match(await httpGet(port, `GET ${path} HTTP/1.1\r\n\r\n`), /^HTTP\/1\.1 200 OK/);
    }
    const head = await httpGet(port, "HEAD /app.js HTTP/1.1\r\n\r\n");
    assert.match(head, /Content-Length: [1-9]\d+/);
    assert.ok(head.endsWith("\r\n\r\n"), "a HEAD answer has no body");
    assert.match(await httpGet(port, "GET /../deno.json HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 404/);
    assert.match(await httpGet(port, "POST / HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 405/);
    assert.match(await httpGet(port, "GET /ws HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 426/);
    assert.match(await httpGet(port, "hello there\r\n\r\n"), /^HTTP\/1\.1 400/);
    assert.match(await httpGet(port, "GET / HTTP/1.1\nHost: x\n\n"), /^HTTP\/1\.1 200/, "bare LF");
    const long = await httpGet(port, `GET / HTTP/1.1\r\nX: ${"a".repeat(9000)}\r\n\r\n`);
    assert.match(long, /^HTTP\/1\.1 400/);
  });
});

Deno.test("a page from another site cannot open a chat socket, DNS rebinding included", async () => {
  await withServer({ ...WEB, webOrigins: ["https://chat.lab.example"] }, async (server) => {
    const port = webPort(server);
    const tries: [string | undefined, string | undefined, number][] = [
      [`http://127.0.0.1:${port}`, undefined, 101], // the page's own
      [undefined, undefined, 101], // not a browser: like any TCP client
      ["https://evil.example", undefined, 403],
      [`http://evil.example:${port}`, `evil.example:${port}`, 403], // rebinding
      ["https://chat.lab.example", "chat.lab.example", 101], // allowed with --web-origin
      [`http://127.0.0.1:${port + 1}`, undefined, 403], // another port is another origin
      ["null", undefined, 403], // a sandboxed frame or a file
    ];
    for (const [origin, host, expected] of tries) {
      const { status, conn } = await upgrade(port, { origin, host });
      conn.close();
      assert.equal(status, expected, `origin ${origin}, host ${host}`);
    }
  });
  const options = { origins: [], hostNames: ["lab1", "lab1.local"] };
  assert.ok(originAllowed("http://lab1:8080", "lab1:8080", options));
  assert.ok(originAllowed("http://[::1]:8080", "[::1]:8080", options));
  assert.ok(!originAllowed("http://lab1:8080", "lab2:8080", options));
  assert.ok(!originAllowed("ftp://10.0.0.1", "10.0.0.1", options));
});

Deno.test("browser, TCP and the same rules: a message crosses both ways once, refusals alike", async () => {
  await withServer({ ...WEB, rate: 5, burst: 5 }, async (server, clients) => {
    const ws = await joinWs(server, "webby");
    const tcp = await TestClient.join(server, "tcpy");
    clients.push(ws, tcp);
    await ws.send({ type: "msg", text: "from the web", ref: 1 });
    await tcp.frames.waitFor((f) => f.type === "msg" && f.text === "from the web", "web → tcp");
    await ws.waitFor((f) => f.type === "msg" && f.ref === 1, "the echo with its ref");
    await tcp.send({ type: "msg", text: "from tcp" });
    await ws.waitFor((f) => f.type === "msg" && f.text === "from tcp", "tcp → web");
    // The same validation and rate limit as over TCP.
    await ws.send({ type: "msg", text: "" });
    await ws.waitFor((f) => f.type === "error" && f.code === "bad_frame", "empty refused");
    await ws.sendFrame("{not json");
    await ws.waitFor((f) => f.type === "error" && f.code === "bad_frame", "bad JSON refused");
    for (let i = 0; i < 12; i++) await ws.send({ type: "msg", text: `flood ${i}`, ref: 100 + i });
    const refused = await ws.waitFor(
      (f) => f.type === "error" && f.code === "rate_limited",
      "rate",
    );
    assert.ok(refused.type === "error" && refused.retryMs! > 0);
    // A message split over continuation frames arrives whole.
    await ws.sendFrame('{"type":"ping",', { fin: false });
    await ws.sendFrame('"data":"in two parts"}', { opcode: 0 });
    await ws.waitFor((f) => f.type === "pong" && f.data === "in two parts", "fragments joined");
    // Two frames in one message, as lines.
    await ws.sendFrame('{"type":"ping","data":"a"}\n{"type":"ping","data":"b"}');
    await ws.waitFor((f) => f.type === "pong" && f.data === "b", "two lines in a message");
  });
});

Deno.test("a WebSocket that must speak the protocol: no hello in time, or text, and it is closed", async () => {
  await withServer({ ...WEB, handshakeTimeoutMs: 500, livenessCheckMs: 100 }, async (server) => {
    const silent = await WsTestClient.open(webPort(server));
    await silent.waitFor((f) => f.type === "error" && f.code === "timeout", "no hello");
    await silent.waitForEnd();
    // Plain text is for nc on the chat port, not for a WebSocket.
    const text = await WsTestClient.open(webPort(server));
    await text.sendFrame("hello everyone");
    await text.waitFor((f) => f.type === "error", "text refused");
    await text.waitForEnd();
    assert.equal(text.closeCode, 1000);
  });
});

Deno.test("frames a browser never sends are refused, and memory stays flat", async () => {
  await withServer(WEB, async (server, clients) => {
    const watcher = await TestClient.join(server, "watcher");
    clients.push(watcher);
    // An unmasked frame breaks RFC 6455: closed with 1002.
    const unmasked = await joinWs(server, "unmasked");
    await unmasked.sendFrame('{"type":"ping"}', { mask: false });
    await unmasked.waitForEnd();
    assert.equal(unmasked.closeCode, 1002);
    await watcher.waitForEvent("leave", "unmasked");

    // A 1 MiB message is refused as a too-long line when it ends, never held whole, and
    // the connection goes on; one that claims 2^62 bytes and streams 48 MiB costs no more.
    const before = Deno.memoryUsage().rss;
    const chunk = new Uint8Array(64 * 1024).fill(0x61); // masked with a zero key: "a"s
    const mib = 16 * chunk.length;
    const big = await joinWs(server, "big");
    clients.push(big);
    await big.conn.write(new Uint8Array([0x81, 0xff, 0, 0, 0, 0, 0, mib >> 16, 0, 0, 0, 0, 0, 0]));
    for (let i = 0; i < 16; i++) await big.conn.write(chunk);
    await big.waitFor((f) => f.type === "error" && f.code === "frame_too_large", "too long");
    await big.send({ type: "ping", data: "after" });
    await big.waitFor((f) => f.type === "pong" && f.data === "after", "goes on");
    const liar = await joinWs(server, "liar");
    clients.push(liar);
    await liar.conn.write(new Uint8Array([0x81, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    for (let i = 0; i < 768; i++) await liar.conn.write(chunk); // 48 MiB
    await watcher.send({ type: "ping", data: "alive" });
    await watcher.frames.waitFor((f) => f.type === "pong", "the server goes on");
    assert.ok(Deno.memoryUsage().rss - before < 32 * 1024 * 1024, "nothing held whole");

    // A flood of pings gets pongs, one at a time, and no one else notices.
    const pinger = await joinWs(server, "pinger");
    clients.push(pinger);
    for (let i = 0; i < 500; i++) await pinger.sendFrame("x", { opcode: 0x9 });
    await pinger.send({ type: "msg", text: "still here" });
    await watcher.frames.waitFor((f) => f.type === "msg" && f.text === "still here", "after pings");
    assert.ok(pinger.pongs >= 1);

    // A control frame too long, and an unknown opcode: each closed with 1002.
    for (const [payload, opcode] of [["x".repeat(126), 0x9], ["x", 0x3]] as const) {
      const bad = await joinWs(server, `bad${opcode}`);
      await bad.sendFrame(payload, { opcode });
      await bad.waitForEnd();
      assert.equal(bad.closeCode, 1002, `opcode ${opcode}`);
    }
    // A close frame is answered with one, and the member leaves.
    const leaver = await joinWs(server, "leaver");
    await leaver.sendFrame(new Uint8Array([0x03, 0xe8]), { opcode: 0x8 });
    await leaver.waitForEnd();
    assert.equal(leaver.closeCode, 1000);
    await watcher.waitForEvent("leave", "leaver");
  });
});

Deno.test("a browser that stops reading is cut off as a slow consumer; the others are not", async () => {
  await withServer(
    { ...WEB, maxQueueBytes: 64 * 1024, rate: 1000, burst: 1000, rateBytes: 1 << 30 },
    async (server, clients) => {
      // Joins, then never reads: the kernel's buffers fill, then its queue.
      const stuck = await WsTestClient.open(webPort(server), {}, { read: false });
      await stuck.send({ type: "hello", version: 1, name: "stuck" });
      const sender = await TestClient.join(server, "sender");
      const reader = await TestClient.join(server, "reader");
      clients.push(sender, reader, stuck);
      const text = "x".repeat(8000);
      let cut = false;
      for (let i = 0; i < 2000 && !cut; i++) {
        await sender.send({ type: "msg", text });
        cut = reader.frames.received.some((f) =>
          f.type === "event" && f.event === "leave" && f.name === "stuck"
        );
      }
      const leave = await reader.waitForEvent("leave", "stuck");
      assert.ok(leave.type === "event" && /slow_consumer/.test(leave.reason ?? ""));
      await sender.send({ type: "msg", text: "after", ref: 7 });
      await reader.frames.waitFor((f) => f.type === "msg" && f.text === "after", "others go on");
    },
  );
});

Deno.test("a web request that never ends is closed in time, and one address cannot hog the port", async () => {
  await withServer(
    { ...WEB, handshakeTimeoutMs: 400, livenessCheckMs: 100, maxPerAddress: 4 },
    async (server) => {
      const port = webPort(server);
      const slow = await Deno.connect({ hostname: "127.0.0.1", port });
      await slow.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n"));
      const ended = await deadline(slow.read(new Uint8Array(16)), 3000, "slowloris closed");
      assert.equal(ended, null);
      slow.close();
      const hogs = await Promise.all(
        Array.from({ length: 6 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
      );
      // Past four waiting requests from one address, more are closed at once.
      const results = await Promise.all(
        hogs.map((conn) => deadline(conn.read(new Uint8Array(16)), 3000, "hog closed")),
      );
      assert.ok(results.every((n) => n === null));
      hogs.forEach((conn) => conn.close());
      // And the page still loads.
      assert.match(await httpGet(port, "GET / HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 200/);
    },
  );
});

Deno.test("shutdown tells browsers too, and closes the web port", async () => {
  const server = startServer(WEB);
  const ws = await joinWs(server, "webby");
  const port = webPort(server);
  // A browser's idle pre-opened socket, its request half sent: closed once, quietly.
  const half = await Deno.connect({ hostname: "127.0.0.1", port });
  await half.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n"));
  await server.shutdown();
  await ws.waitFor((f) => f.type === "error" && f.code === "server_shutdown", "told");
  await ws.waitForEnd();
  assert.equal(await half.read(new Uint8Array(16)), null);
  half.close();
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }));
});

Deno.test("a browser's WebSocket pings count as signs of life; silence does not", async () => {
  await withServer(
    { ...WEB, idleTimeoutMs: 1200, livenessCheckMs: 100 },
    async (server, clients) => {
      const pinger = await joinWs(server, "pinger");
      const silent = await joinWs(server, "silent");
      clients.push(pinger, silent);
      const started = performance.now();
      while (performance.now() - started < 2500) {
        await pinger.sendFrame("", { opcode: 0x9 });
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      await silent.waitForEnd();
      assert.ok(silent.frames.some((f) => f.type === "error" && f.code === "timeout"));
      assert.ok(!pinger.ended, "the one that pinged is still there");
    },
  );
});

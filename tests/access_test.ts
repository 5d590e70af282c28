/**
 * Access: the shared password (protocol and plain-text clients, with a
 * growing wait for wrong guesses) and TLS with a certificate the test makes
 * itself with openssl.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { deadline, PlainClient, TestClient, withServer } from "./helpers.ts";
import { makeCertificate } from "./certificate.ts";
import { Chat, startServe, startServeWith, stop } from "./subprocess.ts";
import { loadTls } from "../server.ts";

Deno.test("password: chat join with --password-env gets in; a wrong one exits 7 and says so", async () => {
  const env = { CHAT_PASSWORD: "lab9-secret", WRONG: "guess" };
  const { serve, port } = await startServeWith(env, "--password-env", "CHAT_PASSWORD", "--quiet");
  try {
    const ada = new Chat(
      ["join", `127.0.0.1:${port}`, "--name", "ada", "--password-env", "CHAT_PASSWORD", "--json"],
      env,
    );
    await ada.waitFor(/"type":"welcome"/);
    const none = new Chat(["join", `127.0.0.1:${port}`], env);
    assert.equal(await none.exit(), 7);
    assert.match(none.stderr, /needs a password/);
    const eve = new Chat(["join", `127.0.0.1:${port}`, "--password-env", "WRONG"], env);
    assert.equal(await eve.exit(), 7);
    assert.match(eve.stderr, /wrong password/);
    await ada.write("inside\n");
    assert.equal(await ada.exit(), 0);
    assert.ok(ada.stdout.some((l) => l.includes('"text":"inside"')));
  } finally {
    assert.equal(await stop(serve), 0);
  }
});

Deno.test("password: a plain-text client types it first; a wrong one is told and closed", async () => {
  await withServer({ password: "lab9" }, async (server, clients) => {
    const ada = await TestClient.join(server, "ada", { password: "lab9" });
    clients.push(ada);
    const nc = await PlainClient.connect(server);
    clients.push(nc);
    await nc.waitFor((l) => l.includes("needs a password"), "the password prompt");
    await nc.send("lab9\n");
    await nc.waitFor((l) => l.startsWith("* Welcome"), "banner after the password");
    await nc.send("hello from nc\n");
    await ada.frames.waitFor((f) => f.type === "msg" && f.text === "hello from nc", "message");
    assert.ok(!ada.frames.received.some((f) => f.type === "msg" && f.text === "lab9"));

    const wrong = await PlainClient.connect(server);
    clients.push(wrong);
    await wrong.waitFor((l) => l.includes("needs a password"), "prompt");
    await wrong.send("nope\n");
    await wrong.waitFor((l) => l.includes("wrong password"), "refusal");
    await wrong.lines.waitForEnd();
  });
});

Deno.test("a browser's request to the chat port (another site's no-cors POST) is turned away, never a guess", async () => {
  await withServer({ password: "lab9" }, async (server, clients) => {
    const ada = await TestClient.join(server, "ada", { password: "lab9" });
    clients.push(ada);
    for (let i = 0; i < 5; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
      await conn.write(new TextEncoder().encode(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n\r\n" +
          "/nick mallory\nI was made to say this\n/msg ada psst\n",
      ));
      let answer = "";
      for await (const chunk of conn.readable) answer += new TextDecoder().decode(chunk);
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*not a web page/);
    }
    // Nothing it carried was taken for chat, and the class's password still works at once.
    const bob = await TestClient.join(server, "bob", { password: "lab9" });
    clients.push(bob);
    await bob.send({ type: "msg", text: "after" });
    await ada.frames.waitFor((f) => f.type === "msg" && f.text === "after", "bob's message");
    assert.ok(
      !ada.frames.received.some((f) =>
        (f.type === "msg" || f.type === "dm") && /made to say|psst/.test(f.text)
      ),
    );
    assert.ok(!ada.frames.received.some((f) => f.type === "event" && f.name === "mallory"));
  });
});

Deno.test("password: guessing in a loop meets a growing wait, and costs others nothing", async () => {
  await withServer({ password: "lab9", maxPerAddress: 16 }, async (server, clients) => {
    const ada = await TestClient.join(server, "ada", { password: "lab9" });
    const bob = await TestClient.join(server, "bob", { password: "lab9" });
    clients.push(ada, bob);
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) {
      answers.push(
        await new Promise<string>((resolve) => {
          let text = "";
          const socket = net.connect({
            host: "127.0.0.1",
            port: server.addr.port,
            localAddress: "127.0.0.2",
          });
          socket.on(
            "connect",
            () => socket.write(`{"type":"hello","version":1,"password":"guess${i}"}\n`),
          );
          socket.on("data", (chunk) => text += chunk);
          socket.on("error", () => {});
          socket.on("close", () => resolve(text));
        }),
      );
    }
    assert.match(answers[0], /wrong password; the next try from 127\.0\.0\.2 is possible in 1 s/);
    // The guesses that follow come before the wait is over: refused without being checked.
    for (const answer of answers.slice(1)) assert.match(answer, /too many wrong passwords/);
    assert.ok(answers.every((a) => a.includes('"code":"auth_failed"')));
    // The right password from another address is not slowed.
    const cy = await TestClient.join(server, "cy", { password: "lab9" });
    clients.push(cy);
    await ada.send({ type: "msg", text: "unbothered" });
    await bob.frames.waitFor((f) => f.type === "msg" && f.text === "unbothered", "message");
  });
});

Deno.test("TLS: chat join --tls --ca talks to chat serve --tls-cert; without --ca it is refused with advice", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { cert, key } = await makeCertificate(dir);
    const { serve, port } = await startServe("--tls-cert", cert, "--tls-key", key, "--quiet");
    try {
      assert.match(serve.stdout.join("\n"), /TLS only/);
      const ada = new Chat(["join", `127.0.0.1:${port}`, "--tls", "--ca", cert, "--json"]);
      await ada.waitFor(/"type":"welcome"/);
      await ada.write("encrypted\n");
      assert.equal(await ada.exit(), 0);
      assert.ok(ada.stdout.some((l) => l.includes('"text":"encrypted"')));

      const untrusting = new Chat(["join", `127.0.0.1:${port}`, "--tls"]);
      assert.equal(await untrusting.exit(), 3);
      assert.match(untrusting.stderr, /over TLS: .*--ca FILE/);
    } finally {
      assert.equal(await stop(serve), 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TLS: handshakes that never finish are closed, and TLS clients keep chatting", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = await makeCertificate(dir);
    const tls = {
      cert: await Deno.readTextFile(files.cert),
      key: await Deno.readTextFile(files.key),
    };
    await loadTls();
    await withServer(
      { tls, handshakeTimeoutMs: 1000, livenessCheckMs: 100 },
      async (server, clients) => {
        const join = async (name: string) => {
          const conn = await Deno.connectTls({
            hostname: "127.0.0.1",
            port: server.addr.port,
            caCerts: [tls.cert],
          });
          const client = TestClient.fromConn(conn);
          clients.push(client);
          await client.send({ type: "hello", version: 1, name });
          await client.frames.waitFor((f) => f.type === "welcome", `${name} welcome`);
          return client;
        };
        const stalled = [];
        for (let i = 0; i < 5; i++) {
          // TCP only: the TLS handshake never starts.
          stalled.push(await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }));
        }
        const ada = await join("ada");
        const bob = await join("bob");
        await ada.send({ type: "msg", text: "over TLS" });
        await bob.frames.waitFor((f) => f.type === "msg" && f.text === "over TLS", "message");
        for (const conn of stalled) {
          const ended = conn.read(new Uint8Array(64)).catch(() => null);
          assert.equal(await deadline(ended, 10_000, "a stalled handshake closed"), null);
          conn.close();
        }
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

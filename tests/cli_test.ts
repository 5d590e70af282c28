/**
 * End to end: the `chat` command line as users run it.
 */
import assert from "node:assert/strict";
import { Chat, config, SHIPPED_FLAGS, startServe, stop } from "./subprocess.ts";

Deno.test("serve + two joins piping stdin: they chat, leave cleanly, and the server stops on SIGTERM", async () => {
  const { serve, port } = await startServe();
  try {
    // Run by deno (not the binary), the join line it prints is one that works here.
    assert.ok(serve.stdout.includes(`  deno task join 127.0.0.1:${port}`), serve.stdout.join("\n"));
    const ada = new Chat(["join", `127.0.0.1:${port}`, "--name", "ada"]);
    await ada.waitFor(/connected to chat as ada/);
    const bob = new Chat(["join", `127.0.0.1:${port}`, "--name", "bob", "--json"]);
    await bob.waitFor(/"type":"welcome"/);

    await ada.write("hello from ada\nsecond line\n");
    await bob.write("hello from bob\n");
    await ada.waitFor(/^\[\d\d:\d\d\] bob: hello from bob$/);
    await bob.waitFor(/"text":"second line"/);
    assert.equal(await ada.exit(), 0);
    assert.equal(await bob.exit(), 0);

    const events = bob.stdout.map((line) => JSON.parse(line));
    const texts = events.filter((e) => e.type === "msg").map((e) => `${e.from}: ${e.text}`);
    assert.ok(texts.indexOf("ada: hello from ada") < texts.indexOf("ada: second line"));
    assert.ok(texts.includes("bob: hello from bob"));
    assert.ok(events.some((e) => e.type === "event" && e.event === "leave" && e.name === "ada"));
    assert.match(serve.stderr, /connect .* ada/);
    assert.match(serve.stderr, /disconnect .* ada: quit/);
  } finally {
    assert.equal(await stop(serve), 0);
  }
});

Deno.test("piped input: nothing is lost when lines outpace the rate limit", async () => {
  const { serve, port } = await startServe("--rate", "50", "--burst", "5", "--quiet");
  try {
    const watcher = new Chat(["join", `127.0.0.1:${port}`, "--name", "watcher", "--json"]);
    await watcher.waitFor(/"type":"welcome"/);
    const lines = Array.from({ length: 60 }, (_, i) => `line ${i}`);
    const sender = new Chat(["join", `127.0.0.1:${port}`, "--name", "sender"]);
    await sender.write(lines.join("\n") + "\n");
    assert.equal(await sender.exit(), 0);
    await watcher.waitFor(/"text":"line 59"/);
    assert.equal(await watcher.exit(), 0);
    const got = watcher.stdout.map((l) => JSON.parse(l)).filter((e) => e.type === "msg");
    assert.deepEqual(got.map((e) => e.text), lines);
    assert.equal(serve.stderr, "");
  } finally {
    assert.equal(await stop(serve), 0);
  }
});

Deno.test("a client sees the server shut down, retries, and exits 6 with the reason", async () => {
  const { serve, port } = await startServe("--quiet");
  const ada = new Chat(["join", `127.0.0.1:${port}`, "--name", "ada"]);
  const bob = new Chat(["join", `127.0.0.1:${port}`, "--name", "bob", "--retry-for", "0"]);
  await ada.waitFor(/connected/);
  await bob.waitFor(/connected/);
  assert.equal(await stop(serve), 0);
  await ada.waitForStderr(/the server is shutting down; reconnecting in/);
  await ada.waitForStderr(/connection refused.*reconnecting in/);
  assert.equal(await ada.exit(), 6); // end of input while still away: nothing more to wait for
  assert.match(ada.stderr, /disconnected: .*connection refused/);
  assert.equal(await bob.child.status.then((s) => s.code), 6); // --retry-for 0: no retry
  assert.equal(await bob.exit(), 6);
  assert.match(bob.stderr, /disconnected: the server is shutting down/);
});

Deno.test("exit codes: refused connection 3, name taken 4, usage 2", async () => {
  const { serve, port } = await startServe("--quiet");
  try {
    const first = new Chat(["join", `127.0.0.1:${port}`, "--name", "ada"]);
    await first.waitFor(/connected/);
    const second = new Chat(["join", `127.0.0.1:${port}`, "--name", "ADA"]);
    assert.equal(await second.exit(), 4);
    assert.match(second.stderr, /the name "ADA" is taken/);
    assert.equal(await first.exit(), 0);
  } finally {
    assert.equal(await stop(serve), 0);
  }
  const refused = new Chat(["join", `127.0.0.1:${port}`]);
  assert.equal(await refused.exit(), 3);
  assert.match(refused.stderr, /could not connect to 127\.0\.0\.1:\d+: connection refused/);

  for (
    const args of [["frobnicate"], [], ["join", "--bogus"], ["serve", "--port", "http"], [
      "join",
      "a:b:c",
    ]]
  ) {
    const bad = new Chat(args);
    assert.equal(await bad.exit(), 2, args.join(" "));
    assert.match(bad.stderr, /^chat: .*\n.*help/, args.join(" "));
  }
});

Deno.test("join exits 5 when the other side is not a chat server", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const answering = (async () => {
    const conn = await listener.accept();
    await conn.write(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n"));
    await conn.readable.cancel().catch(() => {});
  })();
  const client = new Chat(["join", `127.0.0.1:${listener.addr.port}`]);
  assert.equal(await client.exit(), 5);
  assert.match(
    client.stderr,
    /(sent something this client cannot read|instead of a welcome).*is it a chat server/,
  );
  await answering;
  listener.close();
});

Deno.test("serve exits 3 with advice when the port is taken", async () => {
  const { serve, port } = await startServe("--quiet");
  try {
    const second = new Chat(["serve", "--host", "127.0.0.1", "--port", String(port)]);
    assert.equal(await second.exit(), 3);
    assert.match(second.stderr, /already in use.*--port/);
  } finally {
    assert.equal(await stop(serve), 0);
  }
});

Deno.test("help and version", async () => {
  for (const args of [["help"], ["--help"], ["serve", "--help"], ["join", "--help"]]) {
    const help = new Chat(args);
    assert.equal(await help.exit(), 0);
    assert.match(help.stdout.join("\n"), /Usage/);
  }
  const version = new Chat(["--version"]);
  assert.equal(await version.exit(), 0);
  assert.deepEqual(version.stdout, [`chat ${config.version}`]);
});

Deno.test("every compile task bakes in the same flags, and compile:all covers the lab's five targets", () => {
  const tasks = config.tasks as Record<string, string>;
  const flags = (task: string) =>
    tasks[task].split(/\s+/).filter((w) =>
      w.startsWith("--allow-") || w.startsWith("--unstable-") || w.startsWith("--v8-flags")
    );
  const targets = Object.keys(tasks).filter((name) => /^compile:(?!all$)/.test(name));
  for (const name of targets) {
    assert.deepEqual(flags(name), SHIPPED_FLAGS, name);
    assert.match(tasks[name], /--target \S+ --output dist\/\S+ main\.ts$/, name);
  }
  assert.match(tasks.compile, /--output dist\/chat main\.ts$/);
  assert.deepEqual(flags("serve"), SHIPPED_FLAGS, "deno task serve runs as the binary does");
  // The database thread's module is loaded as a worker, which deno compile does not follow.
  for (const name of ["compile", ...targets]) {
    assert.match(tasks[name], /--include store\/worker\.ts /, `${name} embeds the worker`);
    assert.match(tasks[name], /--include web\/ /, `${name} embeds the web page`);
  }
  const all = tasks["compile:all"];
  for (const name of targets) assert.ok(all.includes(`deno task ${name}`), name);
  const triples = targets.map((name) => /--target (\S+)/.exec(tasks[name])![1]).sort();
  assert.deepEqual(triples, [
    "aarch64-apple-darwin",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "x86_64-pc-windows-msvc",
    "x86_64-unknown-linux-gnu",
  ]);
});

Deno.test("chat join A,B tries the addresses in turn, on connecting and on reconnecting", async () => {
  // Nothing listens on the first address: a port taken and released.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dead = probe.addr.port;
  probe.close();
  const none = new Chat(["join", `127.0.0.1:${dead},127.0.0.1:${dead}`, "--name", "bob"]);
  assert.equal(await none.exit(), 3);
  assert.match(none.stderr, /127\.0\.0\.1:\d+.*; .*127\.0\.0\.1:\d+/, "both failures told");

  const a = await startServe();
  const b = await startServe();
  const list = `127.0.0.1:${dead},127.0.0.1:${a.port},127.0.0.1:${b.port}`;
  const ada = new Chat(["join", list, "--name", "ada"]);
  try {
    await a.serve.waitForStderr(/connect 127\.0\.0\.1:\d+ ada/);
    await ada.waitFor(/connected to/);
    await stop(a.serve); // a node lost: the next address in the list takes over
    await b.serve.waitForStderr(/connect 127\.0\.0\.1:\d+ ada/);
    await ada.waitForStderr(/reconnected/);
  } finally {
    await ada.exit();
    await stop(b.serve);
  }
});

Deno.test("--web-origin is kept as a browser writes an origin", async () => {
  const { parseServeArgs } = await import("../server.ts");
  const options = parseServeArgs(["--web", "0", "--web-origin", "http://Chat.Lab.example:80"]);
  assert.ok(options !== "help");
  assert.deepEqual(options.webOrigins, ["http://chat.lab.example"]);
  assert.throws(() => parseServeArgs(["--web", "0", "--web-origin", "chat.lab.example"]), /origin/);
});

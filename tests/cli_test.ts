/**
 * End to end: the `chat` command line as users run it, in subprocesses, with
 * exactly the permissions the compile task bakes into the binary.
 */
import assert from "node:assert/strict";
import { deadline } from "./helpers.ts";

const root = new URL("../", import.meta.url);
const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
/** The `--allow-*` flags of the compile task: what the shipped binary may do. */
const PERMISSIONS: string[] = (config.tasks.compile as string)
  .split(/\s+/)
  .filter((word) => word.startsWith("--allow-"));

/** A running `chat` process whose output a test can wait on. */
class Chat {
  readonly child: Deno.ChildProcess;
  readonly stdout: string[] = [];
  stderr = "";
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reading: Promise<void>;
  #wake = () => {};

  constructor(args: string[]) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", ...PERMISSIONS, new URL("main.ts", root).pathname, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#writer = this.child.stdin.getWriter();
    this.#reading = Promise.all([
      this.#lines(this.child.stdout, (line) => this.stdout.push(line)),
      this.#lines(this.child.stderr, (line) => this.stderr += line + "\n"),
    ]).then(() => {});
  }

  async #lines(stream: ReadableStream<Uint8Array>, each: (line: string) => void): Promise<void> {
    let held = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      held += text;
      const lines = held.split("\n");
      held = lines.pop()!;
      lines.forEach(each);
      this.#wake();
    }
    if (held) each(held);
    this.#wake();
  }

  /** Waits for a stdout line matching `pattern`; returns it. */
  async waitFor(pattern: RegExp, ms = 15_000): Promise<string> {
    return await deadline(
      new Promise<string>((resolve) => {
        const check = () => {
          const line = this.stdout.find((l) => pattern.test(l));
          if (line !== undefined) resolve(line);
        };
        this.#wake = check;
        check();
      }),
      ms,
      `stdout line ${pattern}; got:\n${this.stdout.join("\n")}\nstderr:\n${this.stderr}`,
    );
  }

  async write(text: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(text));
  }

  async closeStdin(): Promise<void> {
    await this.#writer.close().catch(() => {});
  }

  /** Waits for the exit (closing stdin first) and all output. */
  async exit(ms = 15_000): Promise<number> {
    await this.closeStdin();
    const status = await deadline(this.child.status, ms, "process exit");
    await this.#reading;
    return status.code;
  }
}

/** Starts `chat serve` on a free loopback port; returns it and the port. */
async function startServe(...extra: string[]): Promise<{ serve: Chat; port: number }> {
  const serve = new Chat(["serve", "--host", "127.0.0.1", "--port", "0", ...extra]);
  const line = await serve.waitFor(/listening on/);
  return { serve, port: Number(/:(\d+)$/.exec(line)![1]) };
}

async function stop(serve: Chat): Promise<number> {
  serve.child.kill("SIGTERM");
  return await serve.exit();
}

Deno.test("serve + two joins piping stdin: they chat, leave cleanly, and the server stops on SIGTERM", async () => {
  const { serve, port } = await startServe();
  try {
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

Deno.test("a client sees the server shut down and exits 6 with the reason", async () => {
  const { serve, port } = await startServe("--quiet");
  const ada = new Chat(["join", `127.0.0.1:${port}`, "--name", "ada"]);
  await ada.waitFor(/connected/);
  assert.equal(await stop(serve), 0);
  assert.equal(await ada.exit(), 6);
  assert.match(ada.stderr, /disconnected: the server is shutting down/);
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

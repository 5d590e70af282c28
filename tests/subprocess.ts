/**
 * The \`chat\` command line as users run it, in subprocesses, with exactly the
 * permissions the compile task bakes into the binary.
 *
 * @module
 */
import { deadline } from "./helpers.ts";

export const root = new URL("../", import.meta.url);
export const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", root)));
/** The `--allow-*` and `--v8-flags` of the compile task: how the shipped binary runs. */
export const SHIPPED_FLAGS: string[] = (config.tasks.compile as string)
  .split(/\s+/)
  .filter((word) =>
    word.startsWith("--allow-") || word.startsWith("--unstable-") ||
    word.startsWith("--v8-flags")
  );

/** A running `chat` process whose output a test can wait on. */
export class Chat {
  readonly child: Deno.ChildProcess;
  readonly stdout: string[] = [];
  stderr = "";
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reading: Promise<void>;
  readonly #wakers = new Set<() => void>();

  /** Runs `chat ARGS`, with `env` added to the environment. */
  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", ...SHIPPED_FLAGS, new URL("main.ts", root).pathname, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...env },
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
      this.#wakers.forEach((wake) => wake());
    }
    if (held) each(held);
    this.#wakers.forEach((wake) => wake());
  }

  /** Waits for a stdout line matching `pattern`; returns it. */
  waitFor(pattern: RegExp, ms = 15_000): Promise<string> {
    return this.#until(
      () => this.stdout.find((l) => pattern.test(l)),
      `stdout line ${pattern}`,
      ms,
    );
  }

  /** Waits for stderr to match `pattern`. */
  waitForStderr(pattern: RegExp, ms = 15_000): Promise<string> {
    return this.#until(() => pattern.exec(this.stderr)?.[0], `stderr ${pattern}`, ms);
  }

  /** Waits until `test` returns something. */
  async #until<T>(test: () => T | undefined, what: string, ms: number): Promise<T> {
    let wake = () => {};
    try {
      return await deadline(
        new Promise<T>((resolve) => {
          wake = () => {
            const found = test();
            if (found !== undefined) resolve(found);
          };
          this.#wakers.add(wake);
          wake();
        }),
        ms,
        `${what}; got:\n${this.stdout.join("\n")}\nstderr:\n${this.stderr}`,
      );
    } finally {
      this.#wakers.delete(wake);
    }
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
export function startServe(...extra: string[]): Promise<{ serve: Chat; port: number }> {
  return startServeWith({}, ...extra);
}

/** Starts `chat serve` as {@linkcode startServe} does, with `env` added to its environment. */
export async function startServeWith(
  env: Record<string, string>,
  ...extra: string[]
): Promise<{ serve: Chat; port: number }> {
  const serve = new Chat(["serve", "--host", "127.0.0.1", "--port", "0", ...extra], env);
  const line = await serve.waitFor(/listening on/);
  return { serve, port: Number(/:(\d+)(?: |$)/.exec(line)![1]) };
}

export async function stop(serve: Chat): Promise<number> {
  serve.child.kill("SIGTERM");
  return await serve.exit();
}
